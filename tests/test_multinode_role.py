"""Issue 16 A: the vllm role serves one model across boxes with vLLM's own multi-node mode.
Rendered for two boxes of an inventory group on localhost (no GPU, no second box here): the
flags and environment each box's vLLM receives, the unit's address allow-list (the cluster's
ports closed to anyone else), the refusals, and the check that every box serves with the same
vLLM, torch and model. The last one runs against STAND-IN venvs (a python wrapper with fake
vllm/torch distribution metadata), since vLLM itself cannot be installed for two boxes here."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from airig import profiles
from tests.conftest import REPO

IPS = {"box-a": "10.77.0.1", "box-b": "10.77.0.2"}


def pair_profile(nodes: int = 2) -> dict[str, Any]:
    raw = copy.deepcopy(profiles.load("team", ()).raw)
    raw["name"] = "team-pair"
    raw["models"] = [
        {
            "name": "llama-3.1-405b",
            "quant": "FP8",
            "engine": "vllm",
            "nodes": nodes,
            "source": "/srv/airig/models/llama-405b-fp8",
            "context": 8192,
            "concurrency": 4,
        }
    ]
    return raw


def play(
    tmp_path: Path,
    tasks: list[dict[str, Any]],
    hostvars: dict[str, dict[str, Any]],
    extra: dict[str, Any],
    group: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    hosts = {
        name: {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "profile_name": "team-pair",
            "airig_cluster_ip": IPS[name],
            "airig_cluster_iface": "enp65s0",
            "vllm_config_dir": str(tmp_path / name / "etc"),
            "vllm_unit_dir": str(tmp_path / name / "units"),
            **hostvars.get(name, {}),
        }
        for name in IPS
    }
    inventory = {
        "all": {
            "hosts": hosts,
            "children": {
                "pair": {"hosts": {h: None for h in (group if group is not None else list(IPS))}}
            },
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    for name in IPS:
        (tmp_path / name / "units").mkdir(parents=True, exist_ok=True)
    book = [{"hosts": "all", "gather_facts": False, "tasks": tasks}]
    (tmp_path / "play.yml").write_text(json.dumps(book))
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(tmp_path / "hosts.yml"),
            "-e",
            json.dumps({"profile_spec": pair_profile(), "vllm_cluster_group": "pair", **extra}),
            str(tmp_path / "play.yml"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "t")},
    )


def role(step: str, public: bool = False) -> dict[str, Any]:
    include = {"name": "airig.rig.vllm", "tasks_from": step, "public": public}
    return {"name": f"vllm {step}", "ansible.builtin.include_role": include}


HARDENING = {
    "name": "render the sandbox drop-in",
    "ansible.builtin.template": {
        "src": str(REPO / "roles" / "engine_common" / "templates" / "hardening.conf.j2"),
        "dest": "{{ vllm_config_dir }}/hardening.conf",
        "mode": "0644",
    },
    "vars": {
        "engine_common_engine": "vllm",
        "engine_common_unit": "airig-vllm.service",
        "engine_common_gpu": True,
        "engine_common_mdwe": False,
        "engine_common_offline": True,
        "engine_common_rw_paths": ["/var/lib/airig/vllm"],
        "engine_common_peers": "{{ vllm__peers }}",  # as roles/vllm/tasks/service.yml passes it
    },
}


def test_each_box_gets_its_rank_the_cluster_link_and_only_its_peers(tmp_path: Path) -> None:
    common = {"ansible.builtin.include_vars": str(REPO / "roles/engine_common/vars/main.yml")}
    out = play(tmp_path, [role("validate"), role("config", public=True), common, HARDENING], {}, {})
    assert out.returncode == 0, out.stdout[-3000:]
    for rank, name in enumerate(IPS):
        etc = tmp_path / name / "etc"
        args = json.loads((etc / "vllm.args.json").read_text())
        flag = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}
        assert flag["--tensor-parallel-size"] == "4"
        assert flag["--pipeline-parallel-size"] == "2"
        assert flag["--nnodes"] == "2" and flag["--node-rank"] == str(rank)
        assert flag["--master-addr"] == "10.77.0.1" and flag["--master-port"] == "29500"
        assert ("--headless" in args) == (rank > 0)
        env = dict(
            line.split("=", 1)
            for line in (etc / "vllm.env").read_text().splitlines()
            if line and not line.startswith("#")
        )
        assert env["VLLM_HOST_IP"] == IPS[name]
        assert env["NCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"] == "enp65s0"
        unit = (tmp_path / name / "units" / "airig-vllm.service").read_text()
        assert "-m vllm.entrypoints.cli.main serve\n" in unit  # the CLI knows --headless
        sandbox = (etc / "hardening.conf").read_text()
        other = IPS["box-b" if name == "box-a" else "box-a"]
        assert "IPAddressDeny=any\nIPAddressAllow=localhost\n" in sandbox
        assert sandbox.count("IPAddressAllow=") == 2 and f"IPAddressAllow={other}\n" in sandbox


@pytest.mark.parametrize(
    ("case", "hostvars", "group"),
    [
        ("group smaller than the model's nodes", {}, ["box-a"]),
        ("no cluster address", {"box-b": {"airig_cluster_ip": ""}}, None),
        ("the same address twice", {"box-b": {"airig_cluster_ip": "10.77.0.1"}}, None),
        ("address with a newline", {"box-b": {"airig_cluster_ip": "10.77.0.2\nX=1"}}, None),
        (
            "interface with a newline",
            {"box-a": {"airig_cluster_iface": "eth0\nLD_PRELOAD=/x"}},
            None,
        ),
        ("another profile", {"box-b": {"profile_name": "team"}}, None),
    ],
)
def test_a_cluster_that_is_not_the_planned_one_is_refused(
    tmp_path: Path, case: str, hostvars: dict[str, dict[str, Any]], group: list[str] | None
) -> None:
    out = play(tmp_path, [role("validate")], hostvars, {}, group)
    assert out.returncode != 0, case
    assert "is served by 2 boxes" in out.stdout, out.stdout[-2000:]


def stand_in_venv(root: Path, torch: str) -> Path:
    """A STAND-IN for vLLM's venv: bin/python runs this interpreter with fake vllm and torch
    distribution metadata on its path (what the check reads), no real vLLM or torch."""
    site = root / "site"
    for dist, ver in (("vllm", "0.33.0"), ("torch", torch)):
        info = site / f"{dist}-{ver}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {ver}\n")
    (root / "bin").mkdir()
    python = root / "bin" / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    return root


def identity_play(tmp_path: Path, torch_b: str) -> subprocess.CompletedProcess[str]:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (model / "model-00001.safetensors").write_bytes(b"\0" * 64)
    hostvars = {
        "box-a": {"vllm_venv": str(stand_in_venv(tmp_path / "venv-a", "2.9.0"))},
        "box-b": {"vllm_venv": str(stand_in_venv(tmp_path / "venv-b", torch_b))},
    }
    extra = {"vllm__model_dir": str(model)}
    return play(tmp_path, [role("validate"), role("cluster")], hostvars, extra)


def test_boxes_with_the_same_vllm_torch_and_model_pass(tmp_path: Path) -> None:
    out = identity_play(tmp_path, "2.9.0")
    assert out.returncode == 0, out.stdout[-3000:]


def test_a_box_with_another_torch_stops_the_cluster(tmp_path: Path) -> None:
    out = identity_play(tmp_path, "2.8.0")
    assert out.returncode != 0
    assert "serve with the" in out.stdout and '\\"torch\\": \\"2.8.0\\"' in out.stdout, out.stdout[
        -3000:
    ]
