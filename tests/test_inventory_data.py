"""Inventories are data on the controller (issue 29 item 12, issue 30 item 3): `airig plan -i`,
`bundle -i`, `platform --inventory` and `provision -i` never run an inventory script or a
variable's lookup(), an inventory with no host is refused before anything runs, and the
playbook run reads inventories with the same plugins."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from airig import inventory as inventories
from airig import provision as provision_lib
from airig.cli import app
from airig.errors import InputError
from tests.conftest import run_config_lookup

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"


def _lookup_inventory(tmp_path: Path, marker: Path) -> Path:
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        "boxes:\n  hosts:\n    box-a:\n"
        f"      profile_name: \"{{{{ lookup('pipe', 'touch {marker}') }}}}home\"\n",
        encoding="utf-8",
    )
    return inv


COMMANDS = [
    ["plan", "-i"],
    ["bundle", "--dry-run", "-i"],
    ["platform", "--inventory"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_lookup_in_an_inventory_never_runs_on_the_controller(
    tmp_path: Path, runner: CliRunner, command: list[str]
) -> None:
    marker = tmp_path / "ran"
    inv = _lookup_inventory(tmp_path, marker)
    args = [*command, str(inv)]
    if command[0] == "platform":
        org = tmp_path / "org.yml"
        org.write_text("teams: []\n", encoding="utf-8")
        args += ["--org", str(org)]
    result = runner.invoke(app, args)
    assert not marker.exists(), "the inventory's lookup ran on the controller"
    assert result.exit_code == 2, result.output
    assert "lookup" in result.output and "as data" in result.output, result.output


def _script_inventory(tmp_path: Path, marker: Path) -> Path:
    directory = tmp_path / "inv"
    directory.mkdir()
    script = directory / "dynamic"
    script.write_text(
        f'#!/bin/sh\ntouch {marker}\necho \'{{"all": {{"hosts": ["box-a"]}}}}\'\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return directory


def test_an_executable_in_an_inventory_directory_is_never_run(
    tmp_path: Path, runner: CliRunner
) -> None:
    marker = tmp_path / "ran"
    directory = _script_inventory(tmp_path, marker)
    result = runner.invoke(app, ["plan", "-i", str(directory)])
    assert result.exit_code == 2, result.output
    assert "holds no inventory host" in result.output
    env = {**os.environ, "AIRIG_RUNS_DIR": str(tmp_path / "runs"), "COLUMNS": "200"}
    run = subprocess.run(
        [str(BIN / "airig"), "provision", "-p", "cpu", "--check", "-i", str(directory)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert "holds no inventory host" in run.stdout + run.stderr
    assert not marker.exists()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("content", ["", "all:\n  hosts: {}\n", "# nothing\n"])
def test_provision_refuses_an_inventory_with_no_host_before_anything_runs(
    tmp_path: Path, content: str
) -> None:
    inv = tmp_path / "empty.yml"
    inv.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match="holds no inventory host"):
        provision_lib.target(inv, None)


def test_the_inventorys_own_variables_still_expand() -> None:
    variables = {"inventory_dir": "/srv/inv", "site": "lab"}
    got = inventories.template(
        {"dirs": ["{{ inventory_dir }}/profiles"], "name": "{{ site }}-box", "n": 3},
        variables,
        "test",
    )
    assert got == {"dirs": ["/srv/inv/profiles"], "name": "lab-box", "n": 3}
    for bad in (
        "{{ query('file', '/etc/shadow') }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ site | ansible.builtin.to_json }}",
    ):
        with pytest.raises(InputError, match="as data"):
            inventories.template(bad, variables, "test")


def test_the_playbook_run_reads_inventories_with_the_data_plugins_only(tmp_path: Path) -> None:
    """What the real ansible-playbook process runs with, read back through Ansible's config."""
    log = run_config_lookup(tmp_path, "INVENTORY_ENABLED", "enabled")
    assert "enabled=['yaml', 'ini', 'toml']" in log
