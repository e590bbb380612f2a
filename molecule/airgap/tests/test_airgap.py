"""A box with no network at all, provisioned from the air-gap bundle (airig bundle) through the
docker connection: everything it installed came from the bundle on its own loopback, its own
apt configuration is untouched, and a damaged bundle or one for another release is refused."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))

from engine_checks import http  # noqa: E402

# The box; the gateway beside it: test_airgap_gateway.py.
testinfra_hosts = ["airig-molecule-airgap"]
BIN = Path(sys.executable).parent
PROFILE = os.environ.get("AIRIG_AIRGAP_PROFILE", "airgap-quick")
BUNDLE = Path(f"/var/cache/airig/bundle-{PROFILE}")
INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
REPLY = "Hello from airig"  # what tests/mirror/tiny_gguf.py scripts the model to say
AS_AGENT = "runuser -u airig-agent -- env HOME=/var/lib/airig/agent"


def airig(*args, timeout=600):
    return subprocess.run(
        [str(BIN / "airig"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", "AIRIG_RUNS_DIR": "/tmp/airig-airgap-runs"},
    )


def test_the_box_has_no_network_but_loopback(host):
    links = host.check_output("ip -o link show").splitlines()
    assert len(links) == 1 and ": lo:" in links[0]


def test_apt_read_the_bundle_only_and_the_boxs_own_sources_are_untouched(host):
    lists = host.check_output("ls /var/lib/airig/apt-bundle/lists").split()
    indices = [name for name in lists if name.endswith(("InRelease", "Packages"))]
    assert indices and all(name.startswith("127.0.0.1:8767_apt_") for name in indices)
    assert "deb.debian.org" in host.file("/etc/apt/sources.list.d/debian.sources").content_string
    assert not host.file("/etc/apt/apt.conf.d/airig-bundle.conf").exists


def test_every_file_of_the_box_copy_matches_the_manifest(host):
    manifest = json.loads(host.file("/var/lib/airig/bundle/manifest.json").content_string)
    assert manifest["profile"] == PROFILE and manifest["target"]["release"] == "bookworm"
    assert host.run("cd /var/lib/airig/bundle && sha256sum --quiet --strict -c SHA256SUMS").rc == 0


def test_the_bundle_server_is_gone_after_the_run(host):
    assert not host.service("airig-bundle-server.service").is_running
    assert host.run("ss -Hltn | grep -q ':8767 '").rc != 0


def test_the_engine_serves_the_bundled_model(host):
    if PROFILE == "airgap-quick":
        status, body = http(host, "http://127.0.0.1:11434/api/tags")
        models = {m["name"]: m for m in json.loads(body)["models"]}
        assert (
            status == 200
            and models["airig-tiny:fp16"]["from"] == "/srv/airig/models/airig-tiny.gguf"
        )
        assert json.loads(http(host, "http://127.0.0.1:11434/api/version")[1])["version"] == (
            "0.99.0-airig-standin"
        )
    else:
        key = host.file("/srv/airig/keys/llama_cpp.key").content_string.strip()
        status, body = http(
            host,
            "http://127.0.0.1:8080/v1/chat/completions",
            key=key,
            body={"model": "airig-tiny", "messages": [{"role": "user", "content": "Say hello"}]},
        )
        assert status == 200, body
        assert json.loads(body)["choices"][0]["message"]["content"].strip() == REPLY
    bundled = json.loads(host.file("/var/lib/airig/bundle/manifest.json").content_string)
    model = host.file("/srv/airig/models/airig-tiny.gguf")
    assert model.sha256sum == bundled["files"]["models/airig-tiny.gguf"]["sha256"]


def test_the_agents_answer(host):
    if PROFILE == "airgap-quick":
        pytest.skip("the quick variant has no agents; the full one (container-demo) has both")
    out = host.run(f"{AS_AGENT} hermes -z 'Say hello'")
    assert out.rc == 0 and REPLY in out.stdout, out.stdout + out.stderr
    out = host.run(f"{AS_AGENT} openclaw agent --json -m 'Say hello' 2>/dev/null")
    assert out.rc == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["result"]["payloads"][0]["text"].strip() == REPLY


def test_bundling_again_downloads_nothing():
    run = airig("bundle", "-i", INVENTORY, "-o", str(BUNDLE))
    assert run.returncode == 0, run.stdout + run.stderr
    assert ", 0 downloaded now;" in " ".join(run.stdout.split())


def _copy(tmp_path):
    """A copy of the bundle (hard links; a file to change is written anew, never in place)."""
    dest = tmp_path / "bundle"
    shutil.copytree(BUNDLE, dest, copy_function=os.link, ignore=shutil.ignore_patterns(".work"))
    return dest


def _rewrite(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def test_a_tampered_file_is_refused_with_its_name(tmp_path):
    copy = _copy(tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    victim = next(p for p in manifest["files"] if p.startswith("apt/debian/pool/"))
    _rewrite(copy / victim, (copy / victim).read_bytes() + b"tampered")
    run = airig("provision", "-i", INVENTORY, "--bundle", str(copy))
    text = " ".join((run.stdout + run.stderr).split())
    assert run.returncode == 2, text
    assert f"{victim}: changed" in text
    verify = airig("bundle", "verify", str(copy))
    assert verify.returncode == 1 and victim in " ".join(verify.stderr.split())


def _restamped(tmp_path, change):
    """A copy whose manifest says something else, stamped anew (only that differs)."""
    copy = _copy(tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    change(manifest)
    text = json.dumps(manifest, indent=1) + "\n"
    _rewrite(copy / "manifest.json", text.encode())
    digest = hashlib.sha256(text.encode()).hexdigest()
    _rewrite(copy / "manifest.json.sha256", f"{digest}  manifest.json\n".encode())
    return copy


def test_a_bundle_for_another_release_is_refused(tmp_path):
    """The manifest of a bundle made for Debian 13: the run stops at the bundle role, before
    the box changes."""
    copy = _restamped(
        tmp_path, lambda m: m["target"].update(release="trixie", version="13", python="3.13")
    )
    run = airig("provision", "-i", INVENTORY, "--bundle", str(copy))
    out = " ".join((run.stdout + run.stderr).split())
    assert run.returncode == 1, out
    assert "the bundle is for debian 13 (trixie) amd64, this box is Debian 12 amd64" in out


def test_a_bundle_for_another_profile_is_refused(tmp_path):
    copy = _restamped(tmp_path, lambda m: m.update(profile="team"))
    run = airig("provision", "-i", INVENTORY, "--bundle", str(copy))
    out = " ".join((run.stdout + run.stderr).split())
    assert run.returncode == 1, out
    assert f"was made for profile team, and airig-molecule-airgap is {PROFILE}" in out


def test_a_listener_on_the_bundles_port_stops_the_run(host):
    """Issue 29 item 5: a local user who listens on the bundle's loopback port before a run
    would have been the bundle for it (apt, pip and every download read from there); now the
    run stops at the bundle role, naming the process, before anything is fetched."""
    squat = host.run(
        "systemd-run --unit=airig-test-squatter --uid=nobody --property=PrivateTmp=yes "
        "/usr/bin/python3 -m http.server --bind 127.0.0.1 --directory /tmp 8767"
    )
    assert squat.rc == 0, squat.stderr
    try:
        host.run(
            "for i in $(seq 50); do ss -Hltn 'sport = :8767' | grep -q . && break; sleep 0.2; done"
        )
        run = airig("provision", "-i", INVENTORY, "--bundle", str(BUNDLE))
        out = " ".join((run.stdout + run.stderr).split())
        assert run.returncode == 1, out[-3000:]
        assert (
            "bundle_port 8767 (the box's loopback server of the bundle) is taken by another process"
            in out
        )
        assert "uid:65534" in out  # the squatter's owner, nobody
        assert not host.service("airig-bundle-server").is_running
    finally:
        host.run("systemctl stop airig-test-squatter")
