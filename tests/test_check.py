"""Issue 12 item 3: `airig check` holds the plan (summary.json's `served`) against what the
engines reported, read from published logs here (tests/data/engine_logs/) and from a real
llama-server in the site scenario."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from airig import check
from airig.cli import app
from airig.planner.memory import MIB

LOGS = Path(__file__).resolve().parent / "data" / "engine_logs"


def served(engine: str, unit: str, context: int, users: int, **planned: float) -> dict[str, Any]:
    return {
        "engine": engine,
        "unit": unit,
        "model": "m",
        "quant": "Q4_K_M",
        "context": context,
        "sequences": users,
        "device": "GPU",
        "devices": 1,
        "planned": {"weights_gb": 0.0, "kv_gb": 0.0, "overhead_gb": 0.0, **planned},
    }


def run(tmp_path: Path, entries: list[dict[str, Any]], *logs: str, json_out: bool = False):  # type: ignore[no-untyped-def]
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"served": entries}))
    args = ["check", "--summary", str(summary), *[a for log in logs for a in ("--log", log)]]
    return CliRunner().invoke(app, [*args, *(["--json"] if json_out else [])])


def test_cpu_repack_copies_are_overhead_not_weights() -> None:
    """llama.cpp on a CPU with AMX (the container's host) keeps a repacked second copy of the
    tiny model's output matrix beside the mapped file: the file is the weights, the copy the
    engine's overhead on that CPU (the MiB lines are the molecule llama_cpp run's)."""
    entry = {**served("llama_cpp", "u", 4096, 2, weights_gb=0.03906), "device": "CPU"}
    entry["devices"] = 0
    log = "\n".join(
        [
            "load_tensors:   CPU_Mapped model buffer size =    37.20 MiB",
            "load_tensors:          AMX model buffer size =    18.70 MiB",
            "llama_context:        CPU compute buffer size =     6.17 MiB",
        ]
    )
    terms = check.compare(entry, log)["terms"]
    assert terms["weights"]["actual_gb"] == round(37.20 * MIB / 1e9, 6)
    assert terms["overhead"]["actual_gb"] == round((18.70 + 6.17) * MIB / 1e9, 6)


def test_a_promise_kept_exits_0_with_the_table(tmp_path: Path) -> None:
    unit = "airig-llama-server@m.service"
    entry = served("llama_cpp", unit, 131072, 2, kv_gb=9.758)
    result = run(tmp_path, [entry], f"{unit}={LOGS / 'llama_server_rocm_iswa.log'}")
    assert result.exit_code == 0, result.output
    assert "131072 tokens x 2 user(s) promised, 131072 x 2 allocated" in " ".join(
        result.output.split()
    )
    assert max(len(line) for line in result.output.splitlines()) <= 80
    kv = next(line for line in result.output.splitlines() if " kv " in line)
    assert kv.split()[-3:] == ["9.8", "9.8", "+0.0"]  # 9306 MiB = 9.76 GB


def test_fewer_users_than_promised_exits_1_with_what_to_do(tmp_path: Path) -> None:
    unit = "airig-llama-server@m.service"
    entry = served("llama_cpp", unit, 131072, 4)
    result = run(tmp_path, [entry], f"{unit}={LOGS / 'llama_server_rocm_iswa.log'}")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "promises 131072 tokens x 4 user(s), but the engine allocated 131072 x 2" in text
    assert "Lower the model's context or concurrency" in text


def test_vllm_pool_is_read_as_users_at_the_promised_context(tmp_path: Path) -> None:
    """1,823,372 tokens: 1.74 requests of 1,048,576 (vLLM's own "Maximum concurrency")."""
    unit = "airig-vllm.service"
    log = f"{unit}={LOGS / 'vllm_v1_tokens.log'}"
    assert run(tmp_path, [served("vllm", unit, 1_048_576, 1)], log).exit_code == 0
    result = run(tmp_path, [served("vllm", unit, 1_048_576, 2)], log, json_out=True)
    assert result.exit_code == 1
    (got,) = json.loads(result.output)["results"]
    assert got["status"] == "short" and got["delivered"]["users"] == 1


def test_no_start_up_lines_is_a_failure_that_says_where_to_look(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_text("")
    unit = "airig-vllm.service"
    result = run(tmp_path, [served("vllm", unit, 8192, 1)], f"{unit}={empty}")
    assert result.exit_code == 1
    assert "journalctl -u airig-vllm.service" in " ".join(result.output.split())


def test_a_model_across_boxes_is_said_not_compared() -> None:
    # Each box holds one pipeline stage (docs/scale.md); its report is not the whole model's.
    entry = {**served("vllm", "airig-vllm.service", 8192, 4), "nodes": 2}
    (got,) = check.check({"served": [entry]}, {})
    assert got["status"] == "ok" and "served across 2 boxes" in got["message"]
    assert got["terms"] == {}


def test_ollama_without_a_loaded_model_is_not_a_failure() -> None:
    (got,) = check.check({"served": [served("ollama", "airig-ollama.service", 8192, 1)]}, {})
    assert got["status"] == "ok" and "first request" in got["message"]


def test_json_has_the_drift_per_term_for_calibration(tmp_path: Path) -> None:
    unit = "airig-vllm.service"
    entry = served("vllm", unit, 8192, 1, weights_gb=9.0, overhead_gb=11.0)
    result = run(tmp_path, [entry], f"{unit}={LOGS / 'vllm_v1_summary.log'}", json_out=True)
    data = json.loads(result.output)
    drift = data["calibration"]["vllm/m"]
    assert drift["weights"]["drift_gb"] == pytest.approx(8.58 * 2**30 / 1e9 - 9.0, abs=0.001)
    assert drift["weights"]["ratio"] == pytest.approx(8.58 * 2**30 / 1e9 / 9.0, abs=0.001)
    assert drift["overhead"]["drift_gb"] == pytest.approx(10.68 * 2**30 / 1e9 - 11.0, abs=0.001)
    assert drift["kv"]["ratio"] is None  # nothing planned, nothing to scale


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--log", "no-equals-sign"], "--log: bad value 'no-equals-sign': expected UNIT=FILE"),
        (["--log", "u=/nonexistent/x.log"], "--log: cannot read /nonexistent/x.log"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, args: list[str], needle: str) -> None:
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"served": []}))
    result = CliRunner().invoke(app, ["check", "--summary", str(summary), *args])
    assert result.exit_code == 2 and needle in " ".join(result.output.split())


def test_an_old_summary_says_to_provision_again(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"profile": "home"}))
    result = CliRunner().invoke(app, ["check", "--summary", str(summary)])
    assert result.exit_code == 2 and "run airig provision again" in " ".join(result.output.split())


def test_journal_reads_only_the_units_current_run() -> None:
    calls: list[list[str]] = []

    class Done:
        def __init__(self, out: str) -> None:
            self.stdout, self.returncode = out, 0

    def fake_run(argv: list[str], **_: object) -> Done:  # the commands are checked, not run
        calls.append(argv)
        return Done("0123456789abcdef0123456789abcdef\n" if argv[0] == "systemctl" else "lines")

    assert check.journal("airig-vllm.service", run=fake_run) == "lines"
    assert calls[0] == [
        "systemctl",
        "show",
        "-p",
        "InvocationID",
        "--value",
        "--",
        "airig-vllm.service",
    ]
    assert calls[1][-1] == "_SYSTEMD_INVOCATION_ID=0123456789abcdef0123456789abcdef"


def test_the_next_plan_shows_the_measured_totals(tmp_path: Path) -> None:
    """The drift a box measured is shown as such in its next plan: weights and KV cache scaled
    by the measured ratios, the plan's own verdict kept."""
    path = tmp_path / "calibration.json"
    path.write_text(
        json.dumps({"llama_cpp/qwen3-8b": {"weights": {"ratio": 0.5}, "kv": {"ratio": 0.25}}})
    )
    args = ["plan", "-p", "home", "-m", "qwen3-8b", "-q", "Q4_K_M", "--calibration", str(path)]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    want = row["weights_gb"] * 0.5 + row["kv_cache_gb"] * 0.25 + row["overhead_gb"]
    assert row["calibrated_total_gb"] == pytest.approx(want, abs=0.002)
    table = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert "measured" in table.output and "calibration.json, from airig check" in table.output
    other = ["plan", "-p", "home", "-m", "llama-3.1-8b", "-q", "Q4_K_M"]
    result = CliRunner().invoke(app, [*other, "--calibration", str(path), "--json"])
    assert json.loads(result.output)[0]["calibrated_total_gb"] is None


def test_on_a_box_the_plan_shows_its_own_calibration_unasked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 item 3: the next plan for a box uses what it measured, for its own profile
    only, shown as such; --no-calibration and a box never checked give the plan alone."""
    from airig import check

    monkeypatch.setattr(check, "STATE_DIR", tmp_path)
    args = ["plan", "-p", "home", "-p", "team", "-m", "qwen3-8b", "-q", "Q4_K_M", "--json"]
    (tmp_path / "summary.json").write_text(json.dumps({"profile": "home"}))
    result = CliRunner().invoke(app, args)
    assert all("calibrated_total_gb" not in r for r in json.loads(result.output))
    (tmp_path / "calibration.json").write_text(
        json.dumps({"llama_cpp/qwen3-8b": {"weights": {"ratio": 0.5}, "kv": {"ratio": 1.0}}})
    )
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = {r["profile"]: r for r in json.loads(result.output)}
    home = rows["home"]
    want = home["weights_gb"] * 0.5 + home["kv_cache_gb"] + home["overhead_gb"]
    assert home["calibrated_total_gb"] == pytest.approx(want, abs=0.002)
    assert rows["team"]["calibrated_total_gb"] is None  # another box's measurements: not these
    table = CliRunner().invoke(app, args[:-1], env={"COLUMNS": "200"})
    assert f"this box's {tmp_path / 'calibration.json'}, from airig check" in table.output
    off = CliRunner().invoke(app, [*args, "--no-calibration"])
    assert all("calibrated_total_gb" not in r for r in json.loads(off.output))
    (tmp_path / "calibration.json").write_text("{not json")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and "calibrated_total_gb" not in result.output


def test_plot_draws_plan_against_actual(tmp_path: Path) -> None:
    unit = "airig-llama-server@m.service"
    entry = served("llama_cpp", unit, 131072, 2, kv_gb=9.758, weights_gb=3.0)
    out = tmp_path / "check.png"
    log = f"{unit}={LOGS / 'llama_server_rocm_iswa.log'}"
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"served": [entry]}))
    args = ["check", "--summary", str(summary), "--log", log, "--plot", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_service_a_process_runs_in_from_its_cgroup() -> None:
    line = "0::/system.slice/system-airig\\x2dllama\\x2dserver.slice/airig-llama-server@m.service\n"
    assert check.unit_of(4242, read=lambda path: line) == "airig-llama-server@m.service"
    assert check.unit_of(1, read=lambda path: "0::/init.scope\n") is None
    # issue 29 item 13: a local user's own manager may name a unit airig-vllm.service, in its
    # user@UID.service subtree: never airig's (it was, as the last *.service of any path)
    for forged in (
        "0::/user.slice/user-1000.slice/user@1000.service/app.slice/airig-vllm.service\n",
        "0::/user.slice/user-1000.slice/user@1000.service/system.slice/airig-vllm.service\n",
        "0::/system.slice/airig-vllm.service/../user.slice/x.service\n",
        "0::/user.slice/x/system.slice/airig-vllm.service\n",
    ):
        assert check.unit_of(7, read=lambda path, f=forged: f) is None, forged
    inside = "0::/system.slice/docker-0123456789ab.scope/system.slice/airig-vllm.service\n"
    assert check.unit_of(8, read=lambda path: inside) == "airig-vllm.service"
    v1 = "12:cpu,cpuacct:/user.slice\n1:name=systemd:/system.slice/airig-vllm.service\n"
    assert check.unit_of(9, read=lambda path: v1) == "airig-vllm.service"

    def gone(path: str) -> str:
        raise FileNotFoundError(path)

    assert check.unit_of(99999, read=gone) is None


def test_nvml_per_process_memory_is_added_per_unit(nvml_box) -> None:  # type: ignore[no-untyped-def]
    """Through the real pynvml and the libnvidia-ml TEST DOUBLE (home.json: pid 4242 uses
    1.5 GiB on GPU 0); the pid's service is given, as /proc of this machine has no such unit."""
    from airig import verify

    nvml_box("home")
    facts, error, _ = verify._probe()
    assert error is None and facts is not None
    owners = {4242: "airig-llama-server@m.service"}
    used = check.nvml_by_unit(facts, owner=owners.get)
    assert used == {"airig-llama-server@m.service": 1.5 * 2**30}
    unit = "airig-llama-server@m.service"
    entry = served("llama_cpp", unit, 131072, 2)
    text = (LOGS / "llama_server_rocm_iswa.log").read_text()
    (result,) = check.check({"served": [entry]}, {unit: text}, used)
    assert result["nvml_gb"] == pytest.approx(1.611, abs=0.001)
    assert "  NVML: 1.6 GB in use by its processes" in check.table([result])
