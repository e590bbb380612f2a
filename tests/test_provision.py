"""`airig provision`: input errors before anything runs (exit 2), a real ansible-runner run of
site.yml on this machine in --check mode limited to the summary (exit 0, progress, run
directory), and a profile whose engines do not fit (exit 1, the planner's message)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import overcommitted

BIN = Path(sys.executable).parent


def provision(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AIRIG_RUNS_DIR": str(tmp_path / "runs"),
        "COLUMNS": "200",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "t"),
    }
    return subprocess.run(
        [str(BIN / "airig"), "provision", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def flat(run: subprocess.CompletedProcess[str]) -> str:
    return " ".join((run.stdout + run.stderr).split())


def test_bad_input_stops_before_anything_runs(tmp_path: Path) -> None:
    cases = [
        (["--host", "bad host!"], "--host: bad value 'bad host!'"),
        (["-i", str(tmp_path / "nope.yml")], "does not exist"),
        (["--profile", "hme"], "did you mean 'home'"),
        (
            ["--profile", "auto", "--host", "admin@10.0.0.5"],
            "--profile auto: only for this machine",
        ),
        (["-e", "novalue"], "--extra-var: bad value 'novalue'"),
    ]
    for args, message in cases:
        run = provision(tmp_path, *args)
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        assert message in flat(run), (args, flat(run))
    assert not (tmp_path / "runs").exists()


def test_check_run_on_this_machine(tmp_path: Path) -> None:
    run = provision(tmp_path, "--profile", "cpu", "--check", "--tags", "summary")
    assert run.returncode == 0, flat(run)[-3000:]
    text = flat(run)
    assert "checking this machine (local connection)" in text
    assert "check done; full log:" in text
    (run_dir,) = (tmp_path / "runs").iterdir()
    log = (run_dir / "stdout.log").read_text()
    assert "TASK [Summary]" in log and "failed=0" in log
    assert any((run_dir / "artifacts").rglob("job_events/*.json"))


def test_engines_that_do_not_fit_fail_the_run_with_the_planner_message(tmp_path: Path) -> None:
    data = overcommitted()
    data["name"] = "too-much"
    path = tmp_path / "too-much.yml"
    path.write_text(yaml.safe_dump(data))
    run = provision(tmp_path, "--profile", str(path), "--check", "--tags", "summary")
    assert run.returncode == 1, flat(run)[-3000:]
    assert "does not fit in vLLM's share" in flat(run)
    assert "FAILED" in run.stdout
