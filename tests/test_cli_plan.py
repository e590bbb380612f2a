"""`airig plan` through typer's test runner."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from airig.cli import app

KEYS = {
    "model",
    "quant",
    "profile",
    "method",
    "engine",
    "gpus",
    "context",
    "concurrency",
    "kv_dtype",
    "weights_gb",
    "kv_cache_gb",
    "overhead_gb",
    "total_gb",
    "capacity_gb",
    "fits",
    "headroom_gb",
    "per_gpu_need_gb",
    "per_gpu_capacity_gb",
    "max_context_tokens",
    "max_concurrency",
    "reason",
    "cpu_moe_layers",
    "host_ram_need_gb",
    "notes",
}


def run_json(runner: CliRunner, *args: str) -> list[dict]:
    result = runner.invoke(app, ["plan", "--json", *args])
    assert result.exit_code == 0, result.output
    rows: list[dict] = json.loads(result.output)
    return rows


def test_default_plan_covers_catalog_formats_and_reference_builds(runner: CliRunner) -> None:
    rows = run_json(runner)
    assert {r["profile"] for r in rows} == {"home", "business", "team"}
    assert {r["quant"] for r in rows} == {"Q4_K_M", "Q8_0", "FP16"}
    assert all(set(r) == KEYS for r in rows)
    fits = {(r["profile"], r["model"], r["quant"]): r["fits"] for r in rows}
    assert fits[("home", "llama-3.1-70b", "Q4_K_M")]
    assert not fits[("home", "llama-3.1-70b", "Q8_0")]
    assert fits[("team", "llama-3.1-70b", "FP16")]
    assert not fits[("team", "llama-3.1-405b", "FP16")]


def test_json_method_default_meets_published_size(runner: CliRunner) -> None:
    rows = run_json(runner, "-m", "llama-3.1-70b", "-q", "Q4_K_M", "-p", "home")
    assert rows[0]["weights_gb"] == pytest.approx(42.52, rel=0.03)


def test_table_output(runner: CliRunner) -> None:
    result = runner.invoke(
        app,
        ["plan", "-p", "home", "-m", "llama-3.1-70b", "-q", "Q8_0", "-q", "Q4_K_M"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "home: 2 x NVIDIA GeForce RTX 5090" in result.output
    assert "needs GB" in result.output and "GB = 10^9 bytes" in result.output


@pytest.mark.parametrize("width", [80, 120])
def test_default_table_fits_the_terminal_with_whole_numbers(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    """Issue 10 item 15: in an 80- or 120-column terminal every number was cut to `4…` and
    columns dropped. The default table fits 80 columns and cuts nothing."""
    from rich.console import Console

    from airig import cli

    term = Console(width=width, force_terminal=True, color_system=None, markup=False)
    monkeypatch.setattr(cli, "out", term)
    with term.capture() as captured:
        result = runner.invoke(app, ["plan", "-p", "home", "-p", "team", "-q", "all"])
    assert result.exit_code == 0, result.output
    text = captured.get()
    assert "…" not in text and "llama-3.1-405b" in text and "131,072" in text
    assert max(len(line) for line in text.splitlines()) <= width
    # Issue 12 item 4: whole GB in the default table (--wide keeps one decimal).
    rows = [line for line in text.splitlines() if re.search(r"\s(yes|no)\s", line)]
    assert rows and not [line for line in rows if re.search(r"\s\d+\.\d+(\s|$)", line)]
    assert not re.search(r"capacity \d+\.\d", text)


def test_piped_plan_prints_full_rows(runner: CliRunner) -> None:
    """Issue 10 item 15: output to a pipe is never cut, whatever COLUMNS says; --wide has every
    column."""
    result = runner.invoke(app, ["plan", "-p", "home", "--wide"], env={"COLUMNS": "40"})
    assert result.exit_code == 0
    assert "…" not in result.output
    for col in ("weights", "KV", "overhead", "capacity", "free", "why not", "users @8192"):
        assert col in result.output
    assert "needs" in result.output  # the why-not text of a row that does not fit


def test_concurrency_and_context_options(runner: CliRunner) -> None:
    rows = run_json(
        runner,
        "-m",
        "qwen3-32b",
        "-q",
        "Q4_K_M",
        "-p",
        "home",
        "--context",
        "32768",
        "--concurrency",
        "4",
    )
    assert rows[0]["context"] == 32768 and rows[0]["concurrency"] == 4
    assert rows[0]["max_concurrency"] >= 1


def test_fits_only(runner: CliRunner) -> None:
    rows = run_json(runner, "--fits-only", "-p", "home")
    assert rows and all(r["fits"] for r in rows)


def test_profile_all_and_path(runner: CliRunner) -> None:
    from airig.profiles import BUILTIN_DIR

    rows = run_json(runner, "-p", "all", "-m", "qwen3-8b", "-q", "Q4_K_M")
    assert {r["profile"] for r in rows} == {
        "home",
        "business",
        "team",
        "quad-5090",
        "duo-pro6000",
        "cpu",
    }
    rows = run_json(runner, "-p", str(BUILTIN_DIR / "team.yml"), "-m", "qwen3-8b", "-q", "Q4_K_M")
    assert rows[0]["profile"] == "team"


def test_user_models_file(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "mine.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "name": "my-13b",
                        "params_b": 13.0,
                        "layers": 40,
                        "hidden": 5120,
                        "heads": 40,
                        "kv_heads": 40,
                        "head_dim": 128,
                        "max_context": 4096,
                    }
                ]
            }
        )
    )
    rows = run_json(
        runner,
        "--models",
        str(path),
        "-m",
        "my-13b",
        "-q",
        "Q4_K_M",
        "-p",
        "home",
        "--context",
        "4096",
    )
    assert rows[0]["kv_cache_gb"] == pytest.approx(2 * 40 * 40 * 128 * 2 * 4096 / 1e9, abs=1e-3)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {
                "name": "bad",
                "params_b": -1,
                "layers": 4,
                "hidden": 64,
                "heads": 4,
                "kv_heads": 4,
                "head_dim": 16,
                "max_context": 128,
            },
            "field params_b: bad value -1",
        ),
        (
            {
                "name": "bad",
                "params_b": 1,
                "layers": 4,
                "hidden": 64,
                "heads": 4,
                "kv_heads": 3,
                "head_dim": 16,
                "max_context": 128,
            },
            "kv_heads: 3 must divide heads",
        ),
        (
            {"name": "bad", "params_b": 1, "layer": 4},
            "unknown field 'layer' (did you mean 'layers'?)",
        ),
        ({"name": "bad", "params_b": 1}, "field layers is required"),
    ],
)
def test_bad_models_file(runner: CliRunner, tmp_path: Path, entry: dict, message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({"models": [entry]}))
    result = runner.invoke(app, ["plan", "--models", str(path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert message in result.output and str(path) in result.output


def test_broken_models_file(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text("models: [name: x\n")
    result = runner.invoke(app, ["plan", "--models", str(path)])
    assert result.exit_code == 2 and "not valid YAML" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "llama-4-70b"], "unknown model 'llama-4-70b'"),
        (["-q", "Q4"], "unknown quantization 'Q4'"),
        (["-p", "hom"], "unknown profile 'hom'"),
        (["--context", "0"], "--context: bad value 0"),
        (["--concurrency", "-2"], "--concurrency: bad value -2"),
        (["--params", "0"], "--params: bad value 0"),
        (["--params", "-70"], "--params: bad value -70"),
        (["--kv-dtype", "int3"], "unknown KV cache type 'int3'"),
        (["--engine", "tgi"], "unknown engine 'tgi'"),
        (["--models", "/nonexistent/models.yml"], "cannot read"),
    ],
)
def test_bad_input_exits_2(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["plan", *args], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_params_option(runner: CliRunner) -> None:
    rows = run_json(runner, "--params", "70", "-p", "home", "-q", "Q4_K_M")
    assert [r["model"] for r in rows] == ["custom-70b"]
    assert rows[0]["weights_gb"] == pytest.approx(70 * 4.85 / 8, rel=1e-3)


def test_plot_writes_a_png(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "fig" / "fit.png"
    result = runner.invoke(
        app, ["plan", "--plot", str(out), "-p", "home", "-p", "team"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_models_command(runner: CliRunner) -> None:
    result = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "llama-3.1-405b" in result.output
    result = runner.invoke(app, ["models", "--quants"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "Q4_K_M" in result.output and "MXFP4" in result.output


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("airig ")


def test_models_prints_every_name_whole_and_as_json(runner: CliRunner, catalog) -> None:  # type: ignore[no-untyped-def]
    """Issue 30 item 7: `airig models` cut names at 80 columns; --json for scripts."""
    result = runner.invoke(app, ["models"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    for m in catalog.models:
        assert f" {m.name} " in result.output, m.name
    listing = json.loads(runner.invoke(app, ["models", "--json"]).output)
    assert {m["name"] for m in listing} == {m.name for m in catalog.models}
    formats = json.loads(runner.invoke(app, ["models", "--quants", "--json"]).output)
    assert "NVFP4" in {q["name"] for q in formats}


def test_short_help_works_and_help_shows_examples(runner: CliRunner) -> None:
    for args in (["-h"], ["plan", "-h"], ["profiles", "-h"], ["bundle", "-h"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.output, args
    assert "Examples: airig plan -p home" in " ".join(runner.invoke(app, ["--help"]).output.split())


def test_plot_is_refused_where_it_would_be_ignored(runner: CliRunner, tmp_path: Path) -> None:
    """Issue 30 item 8: --plot was silently ignored with --across-boxes and -i."""
    for extra in (["--across-boxes", "2", "-m", "llama-3.1-405b"], ["-i", str(tmp_path)]):
        result = runner.invoke(app, ["plan", "--plot", str(tmp_path / "x.png"), *extra])
        assert result.exit_code == 2, result.output
        assert "--plot draws the plan of boxes" in " ".join(result.output.split())
        assert not (tmp_path / "x.png").exists()


def test_wide_table_on_a_narrow_terminal_never_breaks_a_model_name(
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    catalog,  # type: ignore[no-untyped-def]
) -> None:
    """Issue 30 item 7: --wide broke names mid-word on an 80-column terminal."""
    import io

    from rich.console import Console

    from airig import cli

    screen = io.StringIO()
    monkeypatch.setattr(cli, "out", Console(file=screen, width=80, force_terminal=True))
    result = runner.invoke(app, ["plan", "--wide", "-p", "home"])
    assert result.exit_code == 0, result.output
    text = screen.getvalue()
    for m in catalog.models:
        assert m.name in text, m.name
