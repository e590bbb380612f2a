"""Shared fixtures: profiles, the catalog and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from airig import profiles
from airig.planner import Catalog

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

# Tests import the collection's Python (ansible_collections.airig.rig...) from this checkout,
# never from a copy an editable install left in site-packages.
sys.path.insert(0, str(REPO / "collections"))


def load_file(path: Path) -> Any:
    """A Python file that is not in a package (a role's files/, scripts/) as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def play_tasks(
    tmp_path: Path, tasks: list[dict[str, Any]], extra: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    """Run tasks on localhost (no facts gathered) with extra vars, through this checkout's
    ansible-playbook, as the roles' render and refusal tests do."""
    book = tmp_path / "play.yml"
    book.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "t")}
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-e", json.dumps(extra), str(book)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(autouse=True)
def _isolated_profile_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the user's own profiles out of every test."""
    monkeypatch.setattr(profiles, "USER_DIR", tmp_path / "no-user-profiles")
    monkeypatch.delenv(profiles.ENV_PATH, raising=False)


@pytest.fixture
def catalog() -> Catalog:
    return Catalog.default()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def profile(name: str) -> profiles.Profile:
    return profiles.load(name)


def overcommitted(name: str = "business") -> dict[str, object]:
    """Profile data whose engines cannot share the GPUs: business's vLLM model plus a 70B
    Q8_0 on llama.cpp at 32k x 4 (the planner refuses it, naming the engine to shrink)."""
    import copy

    data = copy.deepcopy(profiles.load(name).raw)
    data["models"].append(
        {
            "name": "llama-3.1-70b",
            "quant": "Q8_0",
            "engine": "llama_cpp",
            "context": 32768,
            "concurrency": 4,
        }
    )
    return data


@pytest.fixture(scope="session")
def fake_nvml_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding the freshly built libnvidia-ml.so.1 test double."""
    from tests import nvml_double

    return nvml_double.build(tmp_path_factory.mktemp("fake-nvml")).parent


@pytest.fixture(scope="session")
def fake_nvml_loaded(fake_nvml_dir: Path) -> Path:
    """Load the double into this process under its soname, before pynvml looks for it."""
    import ctypes

    ctypes.CDLL(str(fake_nvml_dir / "libnvidia-ml.so.1"), mode=ctypes.RTLD_GLOBAL)
    return fake_nvml_dir


@pytest.fixture
def nvml_box(fake_nvml_loaded: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Select which fixture box the double plays: nvml_box('home')."""
    from tests.nvml_double import FIXTURES

    def use(name: str) -> Path:
        path = FIXTURES / f"{name}.json"
        assert path.is_file(), path
        monkeypatch.setenv("FAKE_NVML_CONFIG", str(path))
        return path

    return use


def run_config_lookup(tmp_path: Path, setting: str, label: str) -> str:
    """What the real ansible-playbook run of `airig provision` has for an Ansible setting
    (through Ansible's own config lookup): the run's stdout.log, with 'LABEL=<value>' in it."""
    import os

    from airig import provision

    book = tmp_path / "show.yml"
    book.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n"
        f"        msg: \"{label}={{{{ lookup('ansible.builtin.config', '{setting}') }}}}\"\n"
    )
    os.environ["AIRIG_RUNS_DIR"] = str(tmp_path / "runs")
    try:
        outcome = provision.run("", provision.target(None, None), playbook=str(book))
    finally:
        del os.environ["AIRIG_RUNS_DIR"]
    assert outcome.exit_code == 0
    return (outcome.run_dir / "stdout.log").read_text()
