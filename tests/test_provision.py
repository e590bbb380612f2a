"""`airig provision`: input errors before anything runs (exit 2), a real ansible-runner run of
site.yml on this machine in --check mode limited to the summary (exit 0, progress, run
directory), and a profile whose engines do not fit (exit 1, the planner's message)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from airig import profiles
from airig import provision as provision_lib
from airig.errors import InputError
from tests.conftest import overcommitted, run_config_lookup

BIN = Path(sys.executable).parent


def provision(
    tmp_path: Path, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
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
        cwd=cwd,
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
    """Also issue 10 items 8 and 12: a profile given as a relative file path works (the playbook
    runs elsewhere), and a secret given with -e lands in no command line, environment record
    or readable file: run directories are 0700, the log 0600."""
    secret = "s3cret-value-4242"
    (tmp_path / "mybox.yml").write_text(
        (profiles.BUILTIN_DIR / "cpu.yml").read_text().replace("name: cpu", "name: mybox")
    )
    run = provision(
        tmp_path, "--profile", "./mybox.yml", "--allow-unpinned", "--check", "--tags", "summary",
        "-e", f"airig_test_secret={secret}", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, flat(run)[-3000:]
    text = flat(run)
    assert "checking this machine (local connection)" in text
    assert "check done; full log:" in text
    (run_dir,) = (tmp_path / "runs").iterdir()
    log = (run_dir / "stdout.log").read_text()
    assert "TASK [Summary]" in log and "failed=0" in log
    assert any((run_dir / "artifacts").rglob("job_events/*.json"))
    assert (tmp_path / "runs").stat().st_mode & 0o777 == 0o700
    assert run_dir.stat().st_mode & 0o777 == 0o700
    assert (run_dir / "stdout.log").stat().st_mode & 0o777 == 0o600
    assert (run_dir / "env" / "extravars").stat().st_mode & 0o777 == 0o600
    (command,) = (run_dir / "artifacts").glob("*/command")
    recorded = json.loads(command.read_text())
    assert "env" not in recorded and secret not in json.dumps(recorded["command"])
    assert "mybox" in (run_dir / "env" / "extravars").read_text()


def test_provision_speaks_json(tmp_path: Path) -> None:
    """Issue 30 item 7: `airig provision --json` prints the outcome (per host, the run
    directory) as JSON on stdout, and no progress bar."""
    run = provision(tmp_path, "-p", "cpu", "--allow-unpinned", "--check", "--tags", "summary",
                    "--json")  # fmt: skip
    assert run.returncode == 0, flat(run)[-3000:]
    outcome = json.loads(run.stdout)
    assert outcome["exit_code"] == 0 and outcome["check"] is True
    (host,) = outcome["hosts"]
    assert outcome["hosts"][host]["failed"] == 0 and outcome["hosts"][host]["ok"] > 0
    assert Path(outcome["run_dir"]).parent == tmp_path / "runs"


def test_host_key_checking_stays_on(tmp_path: Path) -> None:
    """Issue 10 item 5: ansible-runner turns SSH host key checking off unless told; the setting
    the playbook really runs with is read back through Ansible's own config lookup."""
    log = run_config_lookup(tmp_path, "HOST_KEY_CHECKING", "host_key_checking")
    assert "host_key_checking=True" in log
    remote = provision_lib.target(None, "admin@box.lan", accept_new_host_key=True)
    hostvars = remote.inventory["all"]["hosts"]["box.lan"]
    assert hostvars["ansible_ssh_extra_args"] == "-o StrictHostKeyChecking=accept-new"
    plain = provision_lib.target(None, "admin@box.lan").inventory["all"]["hosts"]["box.lan"]
    assert "ansible_ssh_extra_args" not in plain


def test_limit_that_matches_no_host_says_why(tmp_path: Path) -> None:
    """Issue 10 item 11: `--limit nosuchhost` failed with no reason given."""
    run = provision(
        tmp_path, "--profile", "cpu", "--allow-unpinned", "--check", "--limit", "nosuchhost"
    )
    assert run.returncode == 1
    assert "(before any task)" in flat(run) and "nosuchhost" in flat(run), flat(run)[-2000:]


def test_auto_on_a_gpu_box_without_driver_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10 item 8: `-p auto` on a GPU box with no driver yet matched `cpu` and exited 0.
    TEST DOUBLE: a sysfs tree with one NVIDIA 3D controller stands in for the PCI bus."""
    dev = tmp_path / "sys" / "0000:01:00.0"
    dev.mkdir(parents=True)
    (dev / "vendor").write_text("0x10de\n")
    (dev / "class").write_text("0x030200\n")
    other = tmp_path / "sys" / "0000:00:02.0"
    other.mkdir()
    (other / "vendor").write_text("0x8086\n")
    (other / "class").write_text("0x030000\n")
    assert provision_lib.nvidia_pci_devices(tmp_path / "sys") == ["0000:01:00.0"]
    monkeypatch.setattr(provision_lib, "PCI_DEVICES", tmp_path / "sys")
    with pytest.raises(InputError, match=r"1 NVIDIA GPU.*no NVIDIA driver answers yet"):
        provision_lib.resolve_profile("auto", local=True)
    monkeypatch.setattr(provision_lib, "PCI_DEVICES", tmp_path / "none")
    assert provision_lib.resolve_profile("auto", local=True) == "cpu"


def test_verify_on_a_gpu_box_without_driver_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 30 item 4: `airig verify` there said "matches profile cpu", exit 0. This machine has
    no NVIDIA driver (NVML's library is absent), as such a box; TEST DOUBLE: a sysfs tree with
    one NVIDIA 3D controller stands in for its PCI bus."""
    from typer.testing import CliRunner

    from airig import verify
    from airig.cli import app

    dev = tmp_path / "sys" / "0000:41:00.0"
    dev.mkdir(parents=True)
    (dev / "vendor").write_text("0x10de\n")
    (dev / "class").write_text("0x030000\n")
    monkeypatch.setattr(verify, "PCI_DEVICES", tmp_path / "sys")
    report = verify.run("auto")
    if report.error_kind not in ("gpu_without_driver",):
        pytest.skip(f"this machine answers NVML ({report.message}): not a box without driver")
    assert not report.matched and report.exit_code == verify.EXIT_NO_NVML
    assert "1 NVIDIA GPU(s) on the PCI bus (0000:41:00.0)" in report.message
    assert "airig provision -p" in report.message
    result = CliRunner().invoke(app, ["verify"], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert "no NVIDIA driver answers yet" in " ".join(result.output.split())
    with pytest.raises(InputError, match=r"1 NVIDIA GPU.*no NVIDIA driver answers yet"):
        provision_lib.resolve_profile("auto", local=True)
    monkeypatch.setattr(verify, "PCI_DEVICES", tmp_path / "none")
    assert verify.run("auto").profile == "cpu"


def test_old_run_directories_are_pruned(tmp_path: Path) -> None:
    """Issue 10 item 12: run directories were kept forever; the newest N stay (AIRIG_RUNS_KEEP)."""
    for i in range(5):
        (tmp_path / f"20261130-0000{i}0").mkdir()
    (tmp_path / "not-a-run").mkdir()
    removed = provision_lib.prune_runs(tmp_path, keep=2)
    assert [p.name for p in removed] == ["20261130-000000", "20261130-000010", "20261130-000020"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "20261130-000030", "20261130-000040", "not-a-run",
    ]  # fmt: skip


def test_engines_that_do_not_fit_fail_the_run_with_the_planner_message(tmp_path: Path) -> None:
    data = overcommitted()
    data["name"] = "too-much"
    path = tmp_path / "too-much.yml"
    path.write_text(yaml.safe_dump(data))
    run = provision(
        tmp_path, "--profile", str(path), "--allow-unpinned", "--check", "--tags", "summary"
    )
    assert run.returncode == 1, flat(run)[-3000:]
    assert "does not fit in vLLM's share" in flat(run)
    assert "FAILED" in run.stdout


def test_unpinned_downloads_need_consent(tmp_path: Path) -> None:
    """Issue 10 item 7: the built-in profiles' model URLs carry no sha256 (not verifiable from
    here); provisioning them stops (exit 2, naming the model) unless --allow-unpinned."""
    run = provision(tmp_path, "--profile", "cpu", "--check", "--tags", "summary")
    assert run.returncode == 2
    assert "qwen3-8b: https://huggingface.co/Qwen/Qwen3-8B-GGUF" in flat(run)
    assert "without sha256" in flat(run) and "--allow-unpinned" in flat(run)
    assert not (tmp_path / "runs").exists()
