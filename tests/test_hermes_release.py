"""Issue 11 item 7: Hermes Agent from a pinned release archive. The role's helper
(roles/agent/files/hermes_release.py) run as the role runs it, with a venv's python; the real
release's schema check runs in the site scenario (molecule/site)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from airig import profiles
from tests.conftest import play_tasks

REPO = Path(__file__).resolve().parents[1]
HELPER = REPO / "roles" / "agent" / "files" / "hermes_release.py"
sys.path.insert(0, str(HELPER.parent))
import hermes_release  # noqa: E402


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A release tree. Its hermes_cli is a TEST DOUBLE of Hermes' (the real one needs its 60
    dependencies): the same names the helper reads, DEFAULT_CONFIG and its validator."""
    root = tmp_path / "hermes-agent-2026.1.2"
    write(
        root / "pyproject.toml",
        """
        [project]
        name = "hermes-agent"
        version = "0.42.0"
        requires-python = ">=3.11,<3.99"
        dependencies = ["openai==2.24.0", "pyyaml==6.0.3"]
        """,
    )
    write(root / "hermes_cli" / "__init__.py", "")
    write(root / "hermes_cli" / "main.py", "")
    write(root / "run_agent.py", "")
    write(
        root / "hermes_cli" / "config.py",
        """
        from dataclasses import dataclass
        DEFAULT_CONFIG = {"model": "", "security": {"allow_lazy_installs": True}}
        DEFAULT_CONFIG["_config_version"] = 7
        @dataclass
        class ConfigIssue:
            severity: str
            message: str
            hint: str
        def validate_config_structure(config):
            if "base_url" in config:
                return [ConfigIssue("warning", "Root-level key 'base_url' looks misplaced", "")]
            return []
        """,
    )
    return root


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / "venv"], check=True)
    # PyYAML, which a release's venv has (a Hermes dependency), from this test run's environment.
    site = next((tmp_path / "venv" / "lib").glob("python3.*/site-packages"))
    (site / "pyyaml-for-the-test.pth").write_text(str(Path(yaml.__file__).parents[1]) + "\n")
    return tmp_path / "venv"


def helper(venv: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "python"), str(HELPER), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("spec", "have", "fits"),
    [
        (">=3.11,<3.14", (3, 11, 2), True),
        (">=3.11,<3.14", (3, 14, 0), False),  # 0.19.0's bound against Python 3.14
        (">=3.14,<3.15", (3, 13, 5), False),  # what later releases ask
        (">=3.11", (3, 12, 1), True),
        ("", (3, 10, 0), True),
        ("~=3.11", (3, 11, 0), False),  # a clause the helper does not know: refused, named
    ],
)
def test_python_fits(spec: str, have: tuple[int, ...], fits: bool) -> None:
    assert hermes_release.python_fits(spec, have) is fits


def test_requires_reads_the_trees_pyproject(tree: Path, venv: Path) -> None:
    out = helper(venv, "requires", str(tree))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "version": "0.42.0",
        "requires_python": ">=3.11,<3.99",
        "python_fits": True,
        "dependencies": ["openai==2.24.0", "pyyaml==6.0.3"],
    }


def test_install_makes_the_venv_import_the_tree_once(tree: Path, venv: Path) -> None:
    assert helper(venv, "install", str(tree)).stdout.strip() == "changed"
    assert helper(venv, "install", str(tree)).stdout.strip() == "ok"
    probe = (
        "import importlib.metadata as m, hermes_cli.config as c;"
        "print(m.version('hermes-agent'), c.__file__)"
    )
    out = subprocess.run(
        [venv / "bin" / "python", "-c", probe], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["0.42.0", str(tree / "hermes_cli" / "config.py")]
    assert (tree / ".install_method").read_text() == "airig\n"


def test_install_removes_a_pip_installed_hermes_as_pip_would(
    tree: Path, venv: Path, tmp_path: Path
) -> None:
    """airig before this change installed PyPI's hermes-agent into the same venv: its code in
    site-packages would shadow the tree. Its RECORD is followed, inside the venv only."""
    site = next((venv / "lib").glob("python3.*/site-packages"))
    outside = tmp_path / "not-in-the-venv.txt"
    outside.write_text("keep")
    dist = site / "hermes_agent-0.19.0.dist-info"
    write(site / "hermes_cli" / "__init__.py", "raise ImportError('the old wheel')\n")
    write(venv / "bin" / "hermes", "#!/bin/sh\n")
    write(dist / "INSTALLER", "pip\n")
    record = ["hermes_cli/__init__.py,,", "../../../bin/hermes,,", f"{outside},,"]
    write(dist / "RECORD", "\n".join([*record, "hermes_agent-0.19.0.dist-info/RECORD,,"]) + "\n")
    assert helper(venv, "install", str(tree)).stdout.strip() == "changed"
    assert not (site / "hermes_cli").exists() and not (venv / "bin" / "hermes").exists()
    assert not dist.exists() and (site / "hermes_agent-0.42.0.dist-info").is_dir()
    assert outside.read_text() == "keep"


def test_check_config_takes_a_config_of_the_release(tree: Path, venv: Path) -> None:
    good = "model: {provider: custom}\nsecurity: {allow_lazy_installs: false}\n_config_version: 7\n"
    out = helper(venv, "check-config", str(tree), stdin=good)
    assert out.returncode == 0, out.stderr


def test_check_config_names_each_key_the_release_does_not_have(tree: Path, venv: Path) -> None:
    bad = "security: {allow_lazy_install: false}\nbase_url: x\n_config_version: 6\n"
    out = helper(venv, "check-config", str(tree), stdin=bad)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "config.yaml security.allow_lazy_install: not in this release's DEFAULT_CONFIG",
        "config.yaml base_url: not in this release's DEFAULT_CONFIG",
        "config.yaml _config_version: 6, the release's schema is 7",
        "config.yaml warning: Root-level key 'base_url' looks misplaced",
    ]


@pytest.mark.parametrize(
    "extra",
    [
        {"agent_hermes_release": "../../etc"},
        {"agent_hermes_release": "v2026.8.16\n"},
        {"agent_hermes_release": "v2026..8"},
        {"agent_hermes_sha256": "ABC"},
        {"agent_hermes_release_url": "file:///srv/hermes"},
        {"agent_hermes_release_url": "https://mirror/ x"},
        {"agent_hermes_venv": "/opt/airig/hermes/venv\ntouch /tmp/x"},
        {"agent_hermes_venv": "/opt/airig/../etc/venv"},
        {"agent_hermes_venv": "opt/venv"},
        {"agent_hermes_venv": "/venv"},
    ],
)
def test_the_role_refuses_an_odd_release_sum_or_url(tmp_path: Path, extra: dict[str, str]) -> None:
    task = {
        "name": "Validate",
        "ansible.builtin.include_role": {"name": "airig.rig.agent", "tasks_from": "validate"},
    }
    data = profiles.load("home").raw
    out = play_tasks(tmp_path, [task], {"profile_spec": data, "agent_names": ["hermes"], **extra})
    assert out.returncode != 0
    assert "agent_hermes_release must be a release tag" in " ".join(out.stdout.split())
