"""Issue 16 B: the k3s role up to "binary in place, config rendered, unit verified". No
registry here serves k3s, so a STAND-IN binary (a shell script made by the test, served over
HTTP on 127.0.0.1 like the organisation's mirror) drives the role's real download, checksum,
config and unit tasks on localhost into a temporary root; k3s itself never runs here."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from airig import profiles
from tests.conftest import REPO, play_tasks

STAND_IN = b"#!/bin/sh\necho 'k3s version v0.0.0+airig-stand-in (not k3s)'\n"


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "mirror"
    root.mkdir()
    (root / "k3s").write_bytes(STAND_IN)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/k3s"
    server.shutdown()


def settings(tmp_path: Path, url: str, profile: str = "team", **extra: Any) -> dict[str, Any]:
    return {
        "profile_spec": profiles.load(profile, ()).raw,
        "k3s_url": url,
        "k3s_sha256": hashlib.sha256(STAND_IN).hexdigest(),
        "k3s_bin_dir": str(tmp_path / "bin"),
        "k3s_config_dir": str(tmp_path / "etc"),
        "k3s_unit_dir": str(tmp_path / "units"),
        "k3s_token_file": str(tmp_path / "etc-airig" / "k3s-token"),
        "k3s_manifests_dir": str(tmp_path / "manifests"),
        "k3s_start": False,
        # Not on this machine: the toolkit install is the platform scenario's (containers).
        "k3s_nvidia_toolkit": False,
        **extra,
    }


def run(tmp_path: Path, extra: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "bin").mkdir(exist_ok=True)
    (tmp_path / "units").mkdir(exist_ok=True)
    task = {"name": "k3s", "ansible.builtin.include_role": {"name": "airig.rig.k3s"}}
    return play_tasks(tmp_path, [task], extra)


def test_agent_on_a_gpu_box(tmp_path: Path, mirror: str) -> None:
    extra = settings(
        tmp_path,
        mirror,
        k3s_server_url="https://10.40.0.11:6443",
        k3s_node_ip="10.40.0.12",
        k3s_flannel_iface="enp65s0",
        k3s_node_labels=["airig.dev/rack=r1"],
    )
    out = run(tmp_path, extra)
    assert out.returncode == 0, out.stdout[-3000:]
    binary = tmp_path / "bin" / "k3s"
    assert binary.read_bytes() == STAND_IN and binary.stat().st_mode & 0o777 == 0o755
    assert "stand-in" in subprocess.run([binary], capture_output=True, text=True).stdout
    config_file = tmp_path / "etc" / "config.yaml"
    assert config_file.stat().st_mode & 0o777 == 0o600  # the token file's path, not the token
    config = yaml.safe_load(config_file.read_text())
    assert config == {
        "token-file": str(tmp_path / "etc-airig" / "k3s-token"),
        "node-label": [
            "airig.dev/rack=r1",
            "airig.dev/gpu-model=rtx-pro-6000-blackwell-workstation-edition",
        ],
        "server": "https://10.40.0.11:6443",
        "node-ip": "10.40.0.12",
        "flannel-iface": "enp65s0",
        "default-runtime": "nvidia",  # the device plugin sees no GPU under runc
    }
    unit = tmp_path / "units" / "k3s-agent.service"
    assert f"ExecStart={binary} agent --config {config_file}\n" in unit.read_text()
    if shutil.which("systemd-analyze"):
        check = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True
        )
        assert check.returncode == 0 and "k3s-agent.service" not in check.stderr, check.stderr
    again = run(tmp_path, extra)  # a re-run changes nothing
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-2000:]


def test_server_on_a_box_without_gpus(tmp_path: Path, mirror: str) -> None:
    out = run(tmp_path, settings(tmp_path, mirror, "cpu", k3s_node_role="server"))
    assert out.returncode == 0, out.stdout[-3000:]
    config = yaml.safe_load((tmp_path / "etc" / "config.yaml").read_text())
    assert config == {
        "token-file": str(tmp_path / "etc-airig" / "k3s-token"),
        "node-label": [],
        "agent-token-file": "/etc/airig/k3s-agent-token",
        "disable": ["traefik", "servicelb"],
    }
    assert (tmp_path / "units" / "k3s.service").exists()
    # k3s applies whatever lands in its auto-deploy directory: root's alone.
    assert (tmp_path / "manifests").stat().st_mode & 0o777 == 0o700


def test_a_binary_that_is_not_the_pinned_one_is_refused(tmp_path: Path, mirror: str) -> None:
    out = run(
        tmp_path, settings(tmp_path, mirror, k3s_sha256="0" * 64, k3s_server_url="https://s:6443")
    )
    assert out.returncode != 0 and "checksum" in out.stdout.lower()
    assert not (tmp_path / "bin" / "k3s").exists()


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("k3s_url", "file:///etc/shadow"),
        ("k3s_url", "https://x/k3s\nExecStartPre=/bin/sh"),
        ("k3s_sha256", ""),
        ("k3s_server_url", "http://10.40.0.11:6443"),
        ("k3s_server_url", "https://10.40.0.11:6443\n"),
        ("k3s_node_ip", "10.0.0.1; rm -rf /"),
        ("k3s_flannel_iface", "eth0\nserver: https://evil:6443"),
        ("k3s_node_labels", ["a=b\ndisable: [coredns]"]),
        ("k3s_bin_dir", "/usr/local/../../tmp"),
        ("k3s_node_role", "master"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, var: str, value: Any) -> None:
    extra = settings(tmp_path, "https://mirror.example/k3s", k3s_server_url="https://s:6443")
    extra[var] = value
    task = {
        "name": "k3s validate",
        "ansible.builtin.include_role": {"name": "airig.rig.k3s", "tasks_from": "validate"},
    }
    out = play_tasks(tmp_path, [task], extra)
    assert out.returncode != 0
    assert "k3s:" in out.stdout or "value of k3s_node_role must be one of" in out.stdout, (
        out.stdout[-2000:]
    )


def platform_play(
    tmp_path: Path, org: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    """playbooks/platform.yml's controller play on a copy of the example inventory."""
    inv = tmp_path / "inv"
    shutil.copytree(REPO / "inventories" / "platform", inv)
    if org is not None:
        (inv / "org.yml").write_text(yaml.safe_dump(org))
    # The controller alone (the boxes are not reachable here): localhost as a second source.
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (tmp_path / "local.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": local}}}))
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(inv / "hosts.yml"),
            "-i",
            str(tmp_path / "local.yml"),
            "--limit",
            "localhost",
            "-e",
            f"platform_org_file={inv / 'org.yml'}",
            "playbooks/platform.yml",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    )


def test_platform_playbook_plans_on_the_controller(tmp_path: Path) -> None:
    out = platform_play(tmp_path)
    assert out.returncode == 0, out.stdout[-3000:]
    written = sorted(p.name for p in (tmp_path / "inv" / "platform-manifests").glob("*.yaml"))
    assert written == [
        "00-cluster.yaml",
        "01-kueue.yaml",
        "10-team-product.yaml",
        "10-team-research.yaml",
    ]


def test_platform_playbook_stops_on_a_plan_that_does_not_hold(tmp_path: Path) -> None:
    org = yaml.safe_load((REPO / "inventories" / "platform" / "org.yml").read_text())
    org["teams"]["research"]["weight"] = 0
    out = platform_play(tmp_path, org)
    assert out.returncode != 0
    assert "fair-sharing weight > 0" in out.stdout
    assert not (tmp_path / "inv" / "platform-manifests").exists()


def test_a_gpu_box_without_a_toolkit_repository_is_told_what_to_add(tmp_path: Path) -> None:
    extra = settings(
        tmp_path,
        "https://mirror.example/k3s",
        k3s_server_url="https://s:6443",
        k3s_nvidia_toolkit=True,
        k3s_nvidia_toolkit_package="airig-no-such-toolkit",
    )
    task = {
        "name": "k3s runtime",
        "ansible.builtin.include_role": {"name": "airig.rig.k3s", "tasks_from": "runtime"},
    }
    out = play_tasks(tmp_path, [task], extra)
    assert out.returncode != 0
    assert "no configured apt repository offers airig-no-such-toolkit" in out.stdout, out.stdout[
        -2000:
    ]
