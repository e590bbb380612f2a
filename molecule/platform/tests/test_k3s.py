"""playbooks/platform.yml's result on a k3s server and an agent (testinfra, in the containers):
the pinned binary (the mirror's TEST DOUBLE, not k3s), each node's config as k3s reads it, the
units loaded and verified by the containers' own systemd (never started: nothing here can run
k3s), the server token kept on the server and the agent given the agent token pinned to the
server's CA, and the org's manifests and the pinned add-on in the server's
auto-deploy directory, each manifest still valid."""

import hashlib
import json
import os
import urllib.request

import pytest
import testinfra
import yaml

from airig import platform

MANIFEST = "http://127.0.0.1:8765/manifest.json"
AUTO_DEPLOY = "/var/lib/rancher/k3s/server/manifests"
SERVER = "airig-molecule-k3s-server"


def mirror(path):
    with urllib.request.urlopen(MANIFEST, timeout=10) as fh:
        return json.load(fh)[path]["sha256"]


def is_server(host):
    return host.backend.get_hostname() == SERVER


def test_binary_is_the_pinned_one(host):
    binary = host.file("/usr/local/bin/k3s")
    assert binary.mode == 0o755 and binary.user == "root"
    assert hashlib.sha256(binary.content).hexdigest() == mirror("k3s/v0.0.0-airig-standin/k3s")
    assert "airig-standin" in host.check_output("/usr/local/bin/k3s --version")


def test_config_as_k3s_reads_it(host):
    config = host.file("/etc/rancher/k3s/config.yaml")
    assert config.mode == 0o600 and config.user == "root"
    got = yaml.safe_load(config.content_string)
    if is_server(host):
        assert got == {
            "token-file": "/etc/airig/k3s-token",
            "node-label": ["airig.dev/gpu-model=rtx-pro-6000-blackwell-workstation-edition"],
            "agent-token-file": "/etc/airig/k3s-agent-token",
            "disable": ["traefik", "servicelb"],
            "node-ip": "10.40.0.11",
            "flannel-iface": "lo",
            "default-runtime": "nvidia",
        }
    else:
        assert got == {
            "token-file": "/etc/airig/k3s-token",
            "node-label": ["airig.dev/gpu-model=geforce-rtx-5090"],
            "server": "https://10.40.0.11:6443",
            "node-ip": "10.40.0.12",
            "flannel-iface": "lo",
            "default-runtime": "nvidia",
        }


def test_unit_is_loaded_and_verified_by_systemd(host):
    unit = "k3s.service" if is_server(host) else "k3s-agent.service"
    role = "server" if is_server(host) else "agent"
    show = host.check_output(f"systemctl show -p LoadState -p ActiveState -p ExecStart {unit}")
    assert "LoadState=loaded" in show and "ActiveState=inactive" in show
    assert f"/usr/local/bin/k3s {role} --config /etc/rancher/k3s/config.yaml" in show
    verify = host.run(f"systemd-analyze verify /etc/systemd/system/{unit}")
    assert verify.rc == 0 and unit not in verify.stderr, verify.stderr


def server_host():
    return testinfra.get_host(
        f"ansible://{SERVER}?ansible_inventory={os.environ['MOLECULE_INVENTORY_FILE']}"
    )


def hex64(value):
    return len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


def test_k3s_agents_get_the_agent_token_pinned_to_the_ca_never_the_server_token(host):
    """Issue 29 item 9: the server token (cluster admin) stays on the server; an agent holds
    k3s' secure form of the agent token, K10<sha256 of the server's CA>::node:<agent token>."""
    token = host.file("/etc/airig/k3s-token")
    assert token.mode == 0o600 and token.user == "root"
    value = token.content_string.strip()
    server = server_host()
    server_token = server.file("/etc/airig/k3s-token").content_string.strip()
    agent_token = server.file("/etc/airig/k3s-agent-token").content_string.strip()
    assert hex64(server_token) and hex64(agent_token) and server_token != agent_token
    assert server.file("/etc/airig/k3s-agent-token").mode == 0o600
    if is_server(host):
        assert value == server_token
        return
    ca = server.file("/var/lib/rancher/k3s/server/tls/server-ca.crt").content
    assert token.content_string == f"K10{hashlib.sha256(ca).hexdigest()}::node:{agent_token}\n"
    found = host.run(f"grep -rlsF -- {server_token} /etc /var/lib/rancher")
    assert found.rc != 0 and found.stdout == "", found.stdout  # nowhere on the agent
    assert not host.file("/etc/airig/k3s-agent-token").exists


def test_manifests_handed_to_k3s(host):
    if not is_server(host):
        pytest.skip("the auto-deploy directory is the server's")
    names = sorted(host.check_output(f"ls {AUTO_DEPLOY}").split())
    # issue 29 item 10: prepare left airig-10-team-gone.yaml (a team no longer in the org): gone;
    # the admin's own file stays
    assert host.file(f"{AUTO_DEPLOY}/admins-own.yaml").exists
    names.remove("admins-own.yaml")
    assert names == [
        "airig-00-cluster.yaml",
        "airig-01-kueue.yaml",
        "airig-10-team-product.yaml",
        "airig-10-team-research.yaml",
        "airig-addon-standin.yaml",
    ]
    addon = host.file(f"{AUTO_DEPLOY}/airig-addon-standin.yaml")
    assert hashlib.sha256(addon.content).hexdigest() == mirror("k3s/addons/standin.yaml")
    kinds = []
    for name in names[:-1]:
        f = host.file(f"{AUTO_DEPLOY}/{name}")
        assert f.mode == 0o600
        for obj in yaml.safe_load_all(f.content_string):
            assert platform.validate(obj) == [], (name, obj["kind"])
            kinds.append(obj["kind"])
    assert kinds.count("ResourceFlavor") == 2 and kinds.count("ClusterQueue") == 2


def test_nvidia_container_runtime_installed_where_k3s_looks(host):
    # Both boxes have GPUs in their profiles: the toolkit package (the mirror's TEST DOUBLE)
    # provides the path k3s finds at start and offers as the "nvidia" runtime.
    assert host.package("nvidia-container-toolkit").is_installed
    runtime = host.file("/usr/bin/nvidia-container-runtime")
    assert runtime.is_file and runtime.mode == 0o755
    assert "airig stand-in" in host.run("/usr/bin/nvidia-container-runtime").stderr
