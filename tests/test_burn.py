"""Issue 13: `airig burn` against the NVML test double playing time series (tests/nvml_fixtures/
burn_*.json, one step per 0.1 s): a box that warms up and passes, a GPU that overheats and
throttles, an XID then a GPU off the bus, a power brake, a GPU that drives a display. The load
runs for real on the CPU path (numpy, one process per GPU) to drive the orchestration; the GPU
load (torch) needs a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airig import burn
from airig.errors import InputError
from airig.verify import nvml_utils
from tests.nvml_double import FIXTURES

FAST = {"seconds": 1.0, "interval": 0.1, "load": "none"}


@pytest.fixture
def box(fake_nvml_loaded: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    import pynvml

    def play(name: str, **config: object) -> burn.BurnReport:
        monkeypatch.setenv("FAKE_NVML_CONFIG", str(FIXTURES / f"{name}.json"))
        return burn.run(burn.BurnConfig(**{**FAST, **config}), nvml_utils(), pynvml)

    return play


def test_a_box_that_warms_up_under_a_real_cpu_load_passes(box, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = box("burn_warm", load="cpu", size=128)
    assert report.passed and report.exit_code == 0, report.to_dict()["gpus"]
    assert len(report.samples) >= 8
    g0 = report.gpus[0]
    assert g0.max_temp_c == 72 and g0.max_power_w == 560
    # Two load processes ran and checked their results.
    assert [g.load["device"] for g in report.gpus] == ["cpu", "cpu"]
    assert all(g.load["rounds"] > 8 and g.load["mismatches"] == 0 for g in report.gpus)
    assert any("power limit" in w for w in g0.warnings)  # normal at full load: not a failure
    json_path, png = burn.write_report(report, tmp_path / "r")
    assert json.loads(json_path.read_text())["passed"] is True
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_overheating_throttled_gpu_fails_with_what_to_do(box) -> None:  # type: ignore[no-untyped-def]
    report = box("burn_hot")
    ok, hot = report.gpus
    assert ok.passed and not hot.passed
    assert any(f.startswith("reached 93 C (limit 90 C)") for f in hot.failures), hot.failures
    assert any("clocks lowered for heat" in f for f in hot.failures), hot.failures
    assert hot.min_sm_clock_mhz is not None and hot.min_sm_clock_mhz < 1500


def test_an_xid_a_lost_gpu_a_power_brake_and_a_display(box) -> None:  # type: ignore[no-untyped-def]
    report = box("burn_xid_lost")
    g0, g1 = report.gpus
    assert report.xids and report.xids[0]["gpu"] == 0 and report.xids[0]["xid"] == 79
    assert any(f.startswith("XID 79 at") for f in g0.failures), g0.failures
    assert any(f.startswith("fell off the bus") for f in g0.failures), g0.failures
    assert any(f.startswith("hardware power brake") for f in g1.failures), g1.failures
    assert any(w.startswith("drives a display") for w in g1.warnings), g1.warnings
    assert report.exit_code == 1


def test_a_faulty_load_fails_its_gpu(box, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A load process that crashes (here a Python that is not one) is that GPU's failure."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'CUDA error: an illegal memory access' >&2\nexit 1\n")
    fake.chmod(0o755)
    report = box("burn_warm", load="torch", python=fake)
    assert all(any("the load failed: exit code 1" in f for f in g.failures) for g in report.gpus)


def test_what_cannot_run_says_why(box, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="needs NVML"):
        box("cpu_box")
    monkeypatch.setattr(burn, "TORCH_PYTHONS", ())
    with pytest.raises(InputError, match="no Python with torch"):
        box("burn_warm", load="torch")
    with pytest.raises(InputError, match="interval"):
        box("burn_warm", interval=5.0)


def test_the_cli_exit_codes_and_report(fake_nvml_dir: Path, tmp_path: Path) -> None:
    airig = Path(sys.executable).parent / "airig"
    env = {**os.environ, "LD_LIBRARY_PATH": str(fake_nvml_dir)}
    args = [str(airig), "burn", "--seconds", "1", "--interval", "0.1", "--load", "none"]
    for name, rc in (("burn_warm", 0), ("burn_hot", 1), ("cpu_box", 2)):
        env["FAKE_NVML_CONFIG"] = str(FIXTURES / f"{name}.json")
        out = tmp_path / name
        run = subprocess.run([*args, "--out", str(out)], env=env, capture_output=True, text=True)
        assert run.returncode == rc, run.stdout + run.stderr
        if rc == 1:
            assert "GPU 1: reached 93 C (limit 90 C)" in " ".join(run.stdout.split())
            assert (out / "burn.json").is_file() and (out / "burn.png").is_file()
        if rc == 2:
            assert "Traceback" not in run.stderr and "needs NVML" in run.stderr
