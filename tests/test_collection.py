"""The wheel carries the Ansible collection airig.rig: after installing it, Ansible finds the
plugins, roles and playbooks by FQCN from any directory, with no extra paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from this checkout and unpack it as an install would."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(REPO),
        ],
        check=True,
    )
    (wheel,) = dist.glob("airig-*.whl")
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return site


def run_outside(site: Path, tmp_path: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    """Run an Ansible command from a directory with no ansible.cfg, the wheel first on sys.path."""
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "none"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_CONFIG": str(tmp_path / "no.cfg"),
        "HOME": str(tmp_path),
    }
    env.pop("AIRIG_PROFILES_PATH", None)
    return subprocess.run(
        [str(BIN / cmd[0]), *cmd[1:]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_wheel_contains_the_collection(installed_wheel: Path) -> None:
    root = installed_wheel / "ansible_collections" / "airig" / "rig"
    for rel in (
        "galaxy.yml",
        "meta/runtime.yml",
        "plugins/lookup/profile.py",
        "plugins/filter/plan.py",
        "roles/profile/tasks/main.yml",
        "playbooks/check_profile.yml",
    ):
        assert (root / rel).is_file(), rel
    assert (installed_wheel / "airig" / "profiles" / "schema.json").is_file()
    assert (installed_wheel / "airig" / "planner" / "data" / "models.yml").is_file()


def installed_doc(site: Path, tmp_path: Path, kind: str, name: str) -> dict[str, Any]:
    """ansible-doc --json for one plugin, run outside the checkout."""
    result = run_outside(site, tmp_path, "ansible-doc", "--json", "-t", kind, name)
    assert result.returncode == 0, result.stderr
    entry: dict[str, Any] = json.loads(result.stdout)[name]
    return entry


def test_ansible_doc_finds_plugins_by_fqcn(installed_wheel: Path, tmp_path: Path) -> None:
    for kind, name, short in (
        ("lookup", "airig.rig.profile", "Load and validate an airig build profile"),
        ("filter", "airig.rig.model_fit", "Plan one model on a build profile"),
    ):
        doc = installed_doc(installed_wheel, tmp_path, kind, name)["doc"]
        assert doc["short_description"] == short
        assert str(installed_wheel) in doc["filename"]


def test_module_doc_renders(installed_wheel: Path, tmp_path: Path) -> None:
    entry = installed_doc(installed_wheel, tmp_path, "module", "airig.rig.gpu_verify")
    assert set(entry["doc"]["options"]) == {
        "profile",
        "memory_tolerance_pct",
        "advisory",
        "fail_on_mismatch",
    }
    assert {"matched", "checks", "reboot_required", "error_kind"} <= set(entry["return"])
    assert "airig.rig.gpu_verify:" in entry["examples"]
    text = run_outside(
        installed_wheel, tmp_path, "ansible-doc", "-t", "module", "airig.rig.gpu_verify"
    )
    assert text.returncode == 0 and "Driver/library version mismatch" in text.stdout


def test_playbook_role_lookup_and_filter_by_fqcn(installed_wheel: Path, tmp_path: Path) -> None:
    play = tmp_path / "play.yml"
    play.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  roles:\n"
        "    - role: airig.rig.profile\n"
        "      profile_name: home\n"
        "  tasks:\n"
        "    - name: Plan a model on the loaded profile\n"
        "      ansible.builtin.debug:\n"
        "        msg: \"fit={{ (profile_spec | airig.rig.model_fit('llama-3.1-70b', 'Q4_K_M'))"
        '.fits }}"\n'
    )
    result = run_outside(
        installed_wheel, tmp_path, "ansible-playbook", "-i", "localhost,", "-c", "local", str(play)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "localhost is profile home: 2 x NVIDIA GeForce RTX 5090" in result.stdout
    assert "fit=True" in result.stdout


def test_collection_playbook_by_fqcn_refuses_a_typo(installed_wheel: Path, tmp_path: Path) -> None:
    result = run_outside(
        installed_wheel,
        tmp_path,
        "ansible-playbook",
        "-i",
        "localhost,",
        "-c",
        "local",
        "airig.rig.check_profile",
        "-e",
        "profile_name=buisness",
    )
    assert result.returncode != 0
    assert "unknown profile 'buisness'" in result.stdout
    assert "did you mean 'business'?" in result.stdout


def test_checkout_uses_the_live_collection() -> None:
    """Inside the checkout, ansible.cfg points at collections/ -> the repo root (live files)."""
    link = REPO / "collections" / "ansible_collections" / "airig" / "rig"
    assert link.is_symlink() and link.resolve() == REPO
    result = subprocess.run(
        [str(BIN / "ansible-doc"), "--json", "-t", "lookup", "airig.rig.profile"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)["airig.rig.profile"]["doc"]
    assert doc["filename"].startswith(str(REPO / "collections"))
