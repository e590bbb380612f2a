"""The air-gap bundle of the demo profile (container-demo: llama.cpp, both agents, metrics):
bundle size and time (into a new directory, then again: nothing to fetch), and `airig provision`
of a fresh box from the bundle (a container with no network at all) vs from the mirror and the
public registries (a container on the host's network), each with its re-run.
Prints numbers; asserts nothing. Needs scripts/container-env and tests/mirror/build.py --serve;
the llama.cpp build uses the shared ccache when warm (both boxes alike).

    python bench/bundle.py [--keep DIR]   (DIR: bundle there and keep it; default a temp dir)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# What molecule/airgap's inventory sets: the local mirror stands in for GitHub and Hugging Face.
SETTINGS = {
    "profile_name": "container-demo",
    "profile_dirs": [str(REPO / "inventories/container/profiles")],
    "airig_allow_unpinned": True,
    "llama_cpp_ccache_dir": "/var/cache/airig-ccache",
    "llama_cpp_source_url": "http://127.0.0.1:8765/llama.cpp/llama_cpp_python-0.3.36.tar.gz",
    "agent_hermes_release": "v2026.7.20",
    "agent_hermes_release_url": "http://127.0.0.1:8765/hermes-agent",
    "agent_hermes_sha256": "ae28ddff8f094d9a169cf9b60d2151a14b8936178f10b6af6b66447c84138403",
}


def inventory(tmp: Path, name: str) -> Path:
    path = tmp / f"{name}.yml"
    hosts = {name: {"ansible_connection": "community.docker.docker",
                    "ansible_python_interpreter": "/usr/bin/python3"}}  # fmt: skip
    path.write_text(json.dumps({"all": {"hosts": hosts, "vars": SETTINGS}}))
    return path


def box(name: str, network: str) -> None:
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--hostname", name, "--cap-add", "SYS_ADMIN",
         "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
         "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
         "-v", "/var/cache/airig/ccache:/var/cache/airig-ccache:rw", "--tmpfs", "/run",
         "--tmpfs", "/run/lock", "--network", network, "airig-debian:12", "/lib/systemd/systemd"],
        check=True, capture_output=True,
    )  # fmt: skip
    for _ in range(30):
        state = subprocess.run(["docker", "exec", name, "systemctl", "is-system-running"],
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
        if state in ("running", "degraded"):
            return
        time.sleep(1)


def airig(*args: str) -> tuple[float, str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "200"}
    start = time.perf_counter()
    run = subprocess.run(
        [str(BIN / "airig"), *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    took = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(
            f"airig {' '.join(args)} failed ({run.returncode}):\n"
            + (run.stdout + run.stderr)[-4000:]
        )
    return took, " ".join(run.stdout.split())


def fetched(text: str) -> str:
    m = re.search(r"(\d+) downloaded now", text)
    return m.group(1) if m else "?"


def provision(inv: Path, name: str, *extra: str) -> str:
    took, out = airig("provision", "-i", str(inv), *extra)
    row = re.search(rf"{name}\s*│\s*(\d+)\s*│\s*(\d+)", out)
    return (
        f"{took:6.1f} s  ok={row.group(1) if row else '?'} changed={row.group(2) if row else '?'}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", type=Path, help="bundle into this directory and keep it")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="airig-bench-bundle-"))
    out = args.keep or tmp / "bundle"
    inv_gap, inv_net = inventory(tmp, "airig-bench-airgap"), inventory(tmp, "airig-bench-mirror")
    try:
        cold, text = airig("bundle", "-i", str(inv_gap), "-o", str(out))
        again, text2 = airig("bundle", "-i", str(inv_gap), "-o", str(out))
        manifest = json.loads((out / "manifest.json").read_text())
        size = sum(f["size"] for f in manifest["files"].values())
        per_role: dict[str, int] = {}
        for f in manifest["files"].values():
            key = f["role"].split(",")[0]
            per_role[key] = per_role.get(key, 0) + f["size"]
        print("airig bundle -p container-demo (Debian 12): llama.cpp, Hermes, OpenClaw, metrics")
        print(
            f"  files {len(manifest['files'])}, {size / 1e6:.1f} MB; "
            + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(per_role.items()))
        )
        print(
            f"  bundle into {'the kept' if args.keep else 'a new'} directory {cold:6.1f} s "
            f"({fetched(text)} downloaded)"
        )
        print(f"  bundle again                 {again:6.1f} s ({fetched(text2)} downloaded)")
        box("airig-bench-airgap", "none")
        print("airig provision of a fresh box")
        print(
            "  from the bundle, no network  "
            + provision(inv_gap, "airig-bench-airgap", "--bundle", str(out))
        )
        print(
            "    re-run                     "
            + provision(inv_gap, "airig-bench-airgap", "--bundle", str(out))
        )
        subprocess.run(["docker", "rm", "-f", "airig-bench-airgap"], capture_output=True)
        box("airig-bench-mirror", "host")
        print(f"  from the mirror + registries {provision(inv_net, 'airig-bench-mirror')}")
        print(f"    re-run                     {provision(inv_net, 'airig-bench-mirror')}")
        subprocess.run(["docker", "rm", "-f", "airig-bench-mirror"], capture_output=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
