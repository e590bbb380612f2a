"""gpu_verify through ansible-playbook on localhost, pynvml loading the libnvidia-ml test double
through LD_LIBRARY_PATH; and `airig verify` as a subprocess, its exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.nvml_double import FIXTURES

BIN = Path(sys.executable).parent
PLAYBOOKS = Path(__file__).with_name("playbooks")

CASES = [
    # box, profile, matched, error_kind, a failed check that must be named
    ("home", "home", True, None, None),
    ("business", "business", True, None, None),
    ("team", "team", True, None, None),
    ("cpu_box", "cpu", True, None, None),
    ("cpu_box", "home", False, "driver_not_loaded", None),
    ("home_gpu_missing", "home", False, None, "gpu_count"),
    ("home_wrong_model", "home", False, None, "model"),
    ("home_memory_short", "home", False, None, "memory"),
    ("home_old_driver", "home", False, None, "driver_branch"),
    ("version_mismatch", "home", False, "version_mismatch", None),
    ("home_gpu_lost", "home", False, None, "gpus_present"),
    ("home_pcie_x4", "home", False, None, "pcie_width"),
    ("home_rebar_off", "home", False, None, "resizable_bar"),
    ("h100", "team", False, None, "model"),
    ("home", "business", False, None, "gpu_count"),
]


def ansible_env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("FAKE_NVML_CONFIG", None)
    return env


def playbook(
    tmp_path: Path, name: str, extra: dict[str, Any], *flags: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ansible-playbook"), *flags, "-e", json.dumps(extra), str(PLAYBOOKS / name)],
        cwd=REPO,
        env=ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )


def gate(
    tmp_path: Path, box: str, lib_dir: Path, *flags: str, **more: Any
) -> subprocess.CompletedProcess[str]:
    """Run the gate playbook with the double playing ``box`` from ``lib_dir``."""
    extra = {
        "box": box,
        "profile_name": "home",
        "fake_nvml_dir": str(lib_dir),
        "fixtures_dir": str(FIXTURES),
        **more,
    }
    return playbook(tmp_path, "gpu_verify_gate.yml", extra, *flags)


def test_playbook_verdicts_for_every_fixture(fake_nvml_dir: Path, tmp_path: Path) -> None:
    results_file = tmp_path / "results.json"
    extra = {
        "cases": [{"box": b, "profile": p} for b, p, *_ in CASES],
        "fake_nvml_dir": str(fake_nvml_dir),
        "fixtures_dir": str(FIXTURES),
        "results_file": str(results_file),
    }
    run = playbook(tmp_path, "gpu_verify_fixtures.yml", extra)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(results_file.read_text())
    assert len(results) == len(CASES)
    for (box, prof, matched, kind, check), res in zip(CASES, results, strict=True):
        label = f"{box} vs {prof}"
        assert res["matched"] is matched, (label, res.get("msg"))
        assert res["error_kind"] == kind, label
        assert res["reboot_required"] is (kind == "version_mismatch"), label
        assert res["changed"] is False
        if check:
            failed = [c for c in res["checks"] if c["verdict"] == "fail"]
            assert check in {c["check"] for c in failed}, label
            assert all(c["message"] for c in failed), label


@pytest.mark.parametrize(
    ("box", "rc", "needle"),
    [
        ("home", 0, "verified 2 GPU(s), driver 580.95.05"),
        ("home_wrong_model", 2, "GPU 1: found NVIDIA GeForce RTX 4090, profile expects NVIDIA"),
        ("version_mismatch", 2, "reboot the host, then verify again"),
    ],
)
def test_gate_playbook(fake_nvml_dir: Path, tmp_path: Path, box: str, rc: int, needle: str) -> None:
    run = gate(tmp_path, box, fake_nvml_dir)
    out = " ".join((run.stdout + run.stderr).split())
    assert run.returncode == rc, out
    assert needle in out


def test_gate_without_a_driver_says_run_the_driver_role(tmp_path: Path) -> None:
    empty = tmp_path / "no-driver"
    empty.mkdir()
    run = gate(tmp_path, "home", empty)
    out = " ".join(run.stdout.split())
    if run.returncode == 0:
        pytest.skip("this machine has a real libnvidia-ml.so.1 on the loader path")
    assert run.returncode == 2
    assert (
        "no NVIDIA driver is installed (libnvidia-ml.so.1 not found): run the nvidia_driver" in out
    )
    assert "library_not_found" in out


def test_gate_on_a_host_without_pynvml(fake_nvml_dir: Path, tmp_path: Path) -> None:
    """A target whose Python lacks nvidia-ml-py: the real missing_required_lib failure."""
    bare = Path("/usr/bin/python3")
    probe = subprocess.run([str(bare), "-c", "import pynvml"], capture_output=True)
    if not bare.exists() or probe.returncode == 0:
        pytest.skip("needs a system python3 without pynvml")
    run = gate(tmp_path, "home", fake_nvml_dir, ansible_python_interpreter=str(bare))
    out = " ".join(run.stdout.split())
    assert run.returncode == 2
    assert "Failed to import the required Python library (nvidia-ml-py (import name pynvml))" in out
    assert "pynvml_missing" in out


def test_gate_check_mode_with_diff(fake_nvml_dir: Path, tmp_path: Path) -> None:
    # Ansible shows a diff for tasks that did not fail: let the play decide instead.
    run = gate(tmp_path, "home_pcie_x4", fake_nvml_dir, "--check", "--diff", gate_fail=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "- 'gpu1.pcie_width: x16'" in run.stdout
    assert "- 'gpu1.pcie_width: x4 (max x16)'" in run.stdout


def test_gate_refuses_a_profile_typo_before_touching_the_host(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    run = gate(tmp_path, "home", fake_nvml_dir, profile_name="hme")
    assert run.returncode == 2
    assert "unknown profile 'hme' (did you mean 'home'?)" in " ".join(run.stdout.split())


# ---- airig verify, as a user runs it --------------------------------------------------------


def airig_verify(
    tmp_path: Path, lib_dir: Path, box: str | None, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LD_LIBRARY_PATH": str(lib_dir), "COLUMNS": "250", "HOME": str(tmp_path)}
    env.pop("AIRIG_PROFILES_PATH", None)
    if box:
        env["FAKE_NVML_CONFIG"] = str(FIXTURES / f"{box}.json")
    return subprocess.run(
        [str(BIN / "airig"), "verify", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("box", "args", "rc", "needle"),
    [
        ("home", ["-p", "home"], 0, "matches profile home"),
        ("home", [], 0, "matches profile home"),
        ("team", [], 0, "matches profile team"),
        ("business", ["--profile", "auto"], 0, "matches profile business"),
        ("home_gpu_missing", ["-p", "home"], 1, "does not match profile home"),
        ("home_wrong_model", [], 1, "does not match closest profile home"),
        ("h100", [], 1, "does not match closest profile"),
        ("cpu_box", ["-p", "home"], 2, "modprobe nvidia"),
        ("cpu_box", [], 0, "matches profile cpu"),
        ("version_mismatch", ["-p", "home"], 3, "reboot the host"),
    ],
)
def test_airig_verify_exit_codes(
    fake_nvml_dir: Path, tmp_path: Path, box: str, args: list[str], rc: int, needle: str
) -> None:
    run = airig_verify(tmp_path, fake_nvml_dir, box, *args)
    assert run.returncode == rc, run.stdout + run.stderr
    assert needle in " ".join((run.stdout + run.stderr).split())


def test_airig_verify_library_not_found(tmp_path: Path) -> None:
    empty = tmp_path / "no-driver"
    empty.mkdir()
    run = airig_verify(tmp_path, empty, None, "-p", "home", "--json")
    if run.returncode == 0:
        pytest.skip("this machine has a real libnvidia-ml.so.1 on the loader path")
    assert run.returncode == 2, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["error_kind"] == "library_not_found"
    assert "run the nvidia_driver role" in report["message"]


def test_airig_verify_json(fake_nvml_dir: Path, tmp_path: Path) -> None:
    run = airig_verify(tmp_path, fake_nvml_dir, "home_rebar_off", "--json")
    assert run.returncode == 1
    report = json.loads(run.stdout)
    assert report["profile"] == "home" and report["matched"] is False
    assert report["gpu_facts"]["gpus"][0]["bar1_total_mib"] == 256
    assert any("Resizable BAR is off" in m for m in report["closest_misses"])
    assert {c["check"] for c in report["checks"]} >= {"resizable_bar", "model", "memory"}


def test_airig_verify_bad_advisory(fake_nvml_dir: Path, tmp_path: Path) -> None:
    run = airig_verify(tmp_path, fake_nvml_dir, "home", "--advisory", "pci")
    assert run.returncode == 2 and "--advisory: unknown check(s) pci" in run.stderr


def test_check_step_reads_nvml_memory_per_engine_unit(fake_nvml_dir: Path, tmp_path: Path) -> None:
    """site.yml's check step on a GPU box (playbooks/tasks/check_nvml.yml): NVML's per-process
    memory (the double plays the home box with processes on both GPUs) summed per systemd
    service through /proc/PID/cgroup (a fixture tree: a kernel's files cannot be made here).
    A desktop process and one that ended in between are not the engine's."""
    unit = "airig-llama-server@qwen3-32b.service"
    box = json.loads((FIXTURES / "home.json").read_text())
    gib = 1024**3
    box["gpus"][0]["processes"] = [[4242, 20 * gib], [5151, 1 * gib], [999999, 3 * gib]]
    box["gpus"][1]["processes"] = [[4242, 18 * gib]]
    config = tmp_path / "box.json"
    config.write_text(json.dumps(box))
    cgroups = {
        4242: rf"0::/system.slice/system-airig\x2dllama\x2dserver.slice/{unit}",
        5151: "0::/user.slice/user-1000.slice/session-3.scope",
    }
    for pid, text in cgroups.items():
        (tmp_path / "proc" / str(pid)).mkdir(parents=True)
        (tmp_path / "proc" / str(pid) / "cgroup").write_text(text + "\n")
    results_file = tmp_path / "results.json"
    extra = {
        "fake_nvml_dir": str(fake_nvml_dir),
        "nvml_config": str(config),
        "proc_dir": str(tmp_path / "proc"),
        "unit": unit,
        "log_file": str(REPO / "tests/data/engine_logs/llama_server_2x3090_old.log"),
        "results_file": str(results_file),
    }
    run = playbook(tmp_path, "check_nvml.yml", extra)
    assert run.returncode == 0, run.stdout + run.stderr
    (result,) = json.loads(results_file.read_text())["results"]
    assert result["unit"] == unit
    assert result["nvml_gb"] == round(38 * gib / 1e9, 3)
    assert result["terms"]["weights"]["actual_gb"] > 0
