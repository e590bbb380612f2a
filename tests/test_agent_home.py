"""Issue 10 items 3 and 9, through the agent role's own task files run by ansible-playbook on
this machine (as root): root never follows a link the agent user planted in its home, and an
existing login is never modified."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the role chowns: run as root")


def run_agent_tasks(tmp_path: Path, step: str, extra: dict[str, Any]):
    book = tmp_path / "play.yml"
    book.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": step, "ansible.builtin.include_role": {
            "name": "airig.rig.agent", "tasks_from": step}}],
    }]))  # fmt: skip
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "t")}
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-e", json.dumps(extra), str(book)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "agent"
    path.mkdir()
    os.chown(path, pwd.getpwnam("nobody").pw_uid, -1)
    return path


def agent_vars(home: Path) -> dict[str, Any]:
    return {"agent_user": "nobody", "agent_home": str(home), "agent_names": ["hermes", "openclaw"]}


@pytest.mark.parametrize("planted", [".hermes", ".openclaw", ".openclaw/logs"])
def test_a_planted_link_is_refused_and_its_target_untouched(
    tmp_path: Path, home: Path, planted: str
) -> None:
    """Issue 10 item 3: `~/.hermes -> /etc/systemd/system` made root hand that directory to the
    agent user. Now the run stops naming the link, and the target keeps its owner and mode."""
    victim = tmp_path / "etc-systemd-system"
    victim.mkdir(mode=0o755)
    if planted != ".openclaw":
        (home / ".openclaw").mkdir()
        os.chown(home / ".openclaw", pwd.getpwnam("nobody").pw_uid, -1)
    (home / planted).symlink_to(victim)
    out = run_agent_tasks(tmp_path, "home", agent_vars(home))
    text = " ".join((out.stdout + out.stderr).split())
    assert out.returncode != 0
    assert f"{home}/{planted} is a symbolic link (to {victim})" in text, text[-2000:]
    st = victim.stat()
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o755)


def test_a_file_planted_for_a_config_is_refused(tmp_path: Path, home: Path) -> None:
    """Issue 10 item 3: a link where root writes a config (~/.hermes/config.yaml) is refused too."""
    (home / ".hermes").mkdir()
    os.chown(home / ".hermes", pwd.getpwnam("nobody").pw_uid, -1)
    (home / ".hermes" / "config.yaml").symlink_to("/etc/shadow")
    out = run_agent_tasks(tmp_path, "home", agent_vars(home))
    assert out.returncode != 0 and "config.yaml is a symbolic link" in out.stdout


def test_clean_home_gets_the_agent_directories(tmp_path: Path, home: Path) -> None:
    """Issue 10 item 3: without links the directories are made, owned by the agent user."""
    out = run_agent_tasks(tmp_path, "home", agent_vars(home))
    assert out.returncode == 0, out.stdout[-3000:]
    for sub in (".hermes", ".openclaw", ".openclaw/logs"):
        st = (home / sub).stat()
        assert st.st_uid == pwd.getpwnam("nobody").pw_uid and st.st_mode & 0o777 == 0o700, sub


def test_an_existing_login_is_never_modified(tmp_path: Path, home: Path) -> None:
    """Issue 10 item 9: `agent_user: <your login>` rewrote that login's shell and home. An
    existing user is used as it is; a home that differs stops the run saying what to set."""
    before = pwd.getpwnam("nobody")
    out = run_agent_tasks(tmp_path, "user", agent_vars(home))
    text = " ".join(out.stdout.split())
    assert out.returncode != 0
    assert f"the user nobody exists with home {before.pw_dir}" in text, text[-2000:]
    assert "airig never modifies an existing user" in text
    assert pwd.getpwnam("nobody") == before
    ok = run_agent_tasks(tmp_path, "user", {**agent_vars(home), "agent_home": before.pw_dir})
    assert ok.returncode == 0, ok.stdout[-3000:]
    assert pwd.getpwnam("nobody") == before
