"""Issue 13: `airig burn` against the NVML test double playing time series (tests/nvml_fixtures/
burn_*.json, one step per 0.1 s): a box that warms up and passes, a GPU that overheats and
throttles, an XID then a GPU off the bus, a power brake, a GPU that drives a display, a Team box
whose pairs all-reduce. The load runs for real on the CPU path (numpy, one process per GPU) to
drive the orchestration, and so do the pairs' all-reduces (burn_load.py's socket TEST DOUBLE of
NCCL's transport, made to give wrong data or hang by $AIRIG_BURN_DOUBLE_FAULT); the GPU load
and NCCL (torch) need a GPU."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from airig import burn
from airig.errors import InputError
from airig.verify import nvml_utils
from tests.conftest import REPO
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
    # GeForce cards have no P2P (NVML: not supported): the all-reduce still ran, values right.
    (pair,) = report.pairs
    assert pair.gpus == (0, 1) and pair.passed and pair.p2p == "not supported"
    assert pair.result["mismatches"] == 0 and pair.result["rounds"] >= 3 and pair.fallback is None
    assert any(w.startswith("no peer-to-peer between GPU 0 and GPU 1") for w in pair.warnings)
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


def test_cuda_that_cannot_start_while_nvml_answers_says_what_to_set(  # type: ignore[no-untyped-def]
    box, tmp_path: Path
) -> None:
    """Issue 30 item 14: NVML answers (the double's GPUs report), CUDA does not start (the load
    prints what torch prints then): the GPU fails with NVIDIA's workaround named."""
    fake = tmp_path / "python"
    fake.write_text(
        "#!/bin/sh\necho 'RuntimeError: CUDA driver initialization failed, you might not have a "
        "CUDA gpu.' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    report = box("burn_warm", load="torch", python=fake)
    for g in report.gpus:
        assert any("nvidia_driver_uvm_disable_hmm: true" in f for f in g.failures), g.failures
    other = tmp_path / "other"
    other.write_text("#!/bin/sh\necho 'CUDA error: an illegal memory access' >&2\nexit 1\n")
    other.chmod(0o755)
    plain = box("burn_warm", load="torch", python=other)
    assert not any("uvm_disable_hmm" in f for g in plain.gpus for f in g.failures)


P2P = {"load": "cpu", "size": 64, "p2p_seconds": 0.2, "p2p_timeout": 5.0}


def test_every_pair_all_reduces_once_in_rounds_of_disjoint_pairs(box) -> None:  # type: ignore[no-untyped-def]
    assert burn.rounds_of_pairs([0, 1, 2, 3]) == [
        [(0, 3), (1, 2)],
        [(0, 2), (1, 3)],
        [(0, 1), (2, 3)],
    ]
    eight = [p for r in burn.rounds_of_pairs(list(range(8))) for p in r]
    assert len(burn.rounds_of_pairs(list(range(8)))) == 7 and len(set(eight)) == 28
    assert [len(r) for r in burn.rounds_of_pairs([0, 1, 2])] == [1, 1, 1]
    report = box("burn_team_p2p", **P2P)
    assert report.passed, [p.to_dict() for p in report.pairs]
    assert sorted(p.gpus for p in report.pairs) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert all(p.p2p == "ok" and not p.warnings and p.result["gbps"] > 0 for p in report.pairs)


def test_wrong_data_over_p2p_only_names_p2p_and_the_fix(
    box, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AIRIG_BURN_DOUBLE_FAULT", "corrupt-p2p@1-2")
    report = box("burn_team_p2p", **P2P)
    assert report.exit_code == 1 and all(g.passed for g in report.gpus)
    bad = {p.gpus: p for p in report.pairs if not p.passed}
    assert list(bad) == [(1, 2)]
    (failure,) = bad[(1, 2)].failures
    assert failure.startswith("all-reduce between GPU 1 and GPU 2 gave wrong data"), failure
    assert "passed with NCCL_P2P_DISABLE=1" in failure and "NCCL_P2P_DISABLE: '1'" in failure
    assert bad[(1, 2)].fallback is not None and bad[(1, 2)].fallback["mismatches"] == 0


def test_a_pair_that_hangs_either_way_is_stopped_and_blamed_on_its_gpus(
    box, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AIRIG_BURN_DOUBLE_FAULT", "hang@0-1")
    report = box("burn_team_p2p", **{**P2P, "p2p_timeout": 2.0})
    bad = [p for p in report.pairs if not p.passed]
    assert [p.gpus for p in bad] == [(0, 1)]
    (failure,) = bad[0].failures
    assert "hung: no result within 2 s" in failure and "again without peer-to-peer" in failure
    assert "burn each GPU in alone" in failure


@pytest.fixture(scope="session")
def torch_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python with torch: $AIRIG_TORCH_PYTHON, or (in the AIRIG_MOLECULE=everything run) a
    venv made from this machine's CPU torch wheel (/opt/wheels, ~30 s)."""
    given = os.environ.get("AIRIG_TORCH_PYTHON")
    if given:
        return Path(given)
    wheels = sorted(Path("/opt/wheels").glob("torch-*+cpu-*.whl"))
    if os.environ.get("AIRIG_MOLECULE") != "everything" or not wheels:
        pytest.skip("torch: set AIRIG_TORCH_PYTHON, or AIRIG_MOLECULE=everything with /opt/wheels")
    venv = tmp_path_factory.mktemp("torch") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--find-links", "/opt/wheels"]
    version = wheels[-1].name.split("-")[1]  # torch-2.13.0+cpu-cp311-...: 2.13.0+cpu
    subprocess.run([*pip, f"torch=={version}", "numpy"], check=True)
    return venv / "bin" / "python"


def test_the_torch_all_reduce_code_runs_on_the_cpu_with_gloo(torch_python: Path) -> None:
    """burn_load.py's torch.distributed path (rendezvous, all-reduce, the ranks agreeing when
    to stop, shutdown) with gloo on the CPU: the same code NCCL runs on GPUs, less its CUDA
    calls. Both ranks run the same number of rounds and every sum is right."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [str(torch_python), str(burn.LOAD_SCRIPT), "--device", "cpu", "--transport", "torch"]
    argv += ["--port", str(port), "--pair", "0-1", "--size", "64", "--seconds", "0.5"]
    ranks = [
        subprocess.Popen([*argv, "--rank", str(r)], stdout=subprocess.PIPE, text=True)
        for r in (0, 1)
    ]
    results = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in ranks]
    assert all(r["error"] is None and r["mismatches"] == 0 for r in results), results
    assert results[0]["rounds"] == results[1]["rounds"] >= 3 and results[0]["gbps"] > 0


def test_nccl_too_old_for_rtx_50_fails_the_box() -> None:
    rtx = [{"name": "NVIDIA GeForce RTX 5090", "compute_capability": "12.0"}]
    h100 = [{"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}]
    (message,) = burn._nccl_check("2.21.5", rtx)
    assert message.startswith("NCCL 2.21.5 (the vLLM venv's) is older than 2.26.2")
    assert burn._nccl_check("2.26.2", rtx) == burn._nccl_check("2.27.3", rtx) == []
    # issue 30 item 18: the advice names the NCCL wheel of the torch the vLLM lock pins
    import re

    locks = (REPO / "roles/vllm/files/requirements").glob("*.txt")
    pinned = {m for f in locks for m in re.findall(r"^(nvidia-nccl-cu\d+)==", f.read_text(), re.M)}
    assert pinned == {burn.NCCL_PACKAGE} and burn.NCCL_PACKAGE in message
    assert burn._nccl_check("2.21.5", h100) == burn._nccl_check(None, rtx) == []


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
    # A pair that gives wrong data over P2P only: the CLI names the pair and the fix.
    env["FAKE_NVML_CONFIG"] = str(FIXTURES / "burn_team_p2p.json")
    env["AIRIG_BURN_DOUBLE_FAULT"] = "corrupt-p2p@0-3"
    args = [*args[:-1], "cpu", "--size", "64", "--p2p-seconds", "0.2", "--out", str(tmp_path)]
    run = subprocess.run(args, env=env, capture_output=True, text=True)
    text = " ".join(run.stdout.split())
    assert run.returncode == 1, run.stdout + run.stderr
    assert "all-reduce between GPU pairs: 5 of 6 passed" in text, text
    assert "GPUs 0-3: all-reduce between GPU 0 and GPU 3 gave wrong data" in text, text
    pairs = json.loads((tmp_path / "burn.json").read_text())["pairs"]
    assert [p["gpus"] for p in pairs if not p["passed"]] == [[0, 3]]
