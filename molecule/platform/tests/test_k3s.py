"""The k3s role's result inside a systemd container (testinfra): the pinned binary in place
(the mirror's TEST DOUBLE, not k3s), the config as k3s reads it, the unit loaded and verified
by the container's own systemd; k3s is not started (nothing here can run it)."""

import hashlib
import json
import urllib.request

import yaml

MANIFEST = "http://127.0.0.1:8765/manifest.json"


def test_binary_is_the_pinned_one(host):
    binary = host.file("/usr/local/bin/k3s")
    assert binary.mode == 0o755 and binary.user == "root"
    with urllib.request.urlopen(MANIFEST, timeout=10) as fh:
        pin = json.load(fh)["k3s/v0.0.0-airig-standin/k3s"]["sha256"]
    assert hashlib.sha256(binary.content).hexdigest() == pin
    assert "airig-standin" in host.check_output("/usr/local/bin/k3s --version")


def test_config_as_k3s_reads_it(host):
    config = host.file("/etc/rancher/k3s/config.yaml")
    assert config.mode == 0o600 and config.user == "root"
    assert yaml.safe_load(config.content_string) == {
        "token-file": "/etc/airig/k3s-token",
        "node-label": ["airig.dev/gpu-model=rtx-pro-6000-blackwell-workstation-edition"],
        "server": "https://10.40.0.11:6443",
        "node-ip": "10.40.0.12",
        "flannel-iface": "lo",
        "default-runtime": "nvidia",
    }


def test_unit_is_loaded_and_verified_by_systemd(host):
    assert host.run("systemctl daemon-reload").rc == 0
    show = host.check_output("systemctl show -p LoadState -p ActiveState -p ExecStart k3s-agent")
    assert "LoadState=loaded" in show and "ActiveState=inactive" in show
    assert "/usr/local/bin/k3s agent --config /etc/rancher/k3s/config.yaml" in show
    verify = host.run("systemd-analyze verify /etc/systemd/system/k3s-agent.service")
    assert verify.rc == 0, verify.stderr
    assert "k3s-agent.service" not in verify.stderr
