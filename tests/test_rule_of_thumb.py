"""The seed guide's table: params x {Q4 0.5, Q8 1, FP16 2} x 1.2, rounded to whole GB."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from airig.cli import app
from airig.planner import Catalog, PlanRequest, plan
from tests.conftest import profile

# (nominal size in B, Q4 GB, Q8 GB) exactly as the seed guide prints them.
SEED_TABLE = [
    (8, 5, 10),
    (32, 19, 38),
    (70, 42, 84),
    (122, 73, 146),
    (235, 141, 282),
    (405, 243, 486),
]
CATALOG_FOR_SIZE = {
    8: "llama-3.1-8b",
    32: "qwen3-32b",
    70: "llama-3.1-70b",
    122: "qwen3.5-122b-a10b",
    235: "qwen3-235b-a22b",
    405: "llama-3.1-405b",
}


@pytest.mark.parametrize(("size", "q4", "q8"), SEED_TABLE)
def test_catalog_models_reproduce_the_seed_table(
    catalog: Catalog, size: int, q4: int, q8: int
) -> None:
    model = catalog.model(CATALOG_FOR_SIZE[size])
    request = PlanRequest(
        models=(model,), quants=("Q4", "Q8"), profiles=(profile("home"),), method="rule-of-thumb"
    )
    rows = {r.quant: r for r in plan(request, catalog)}
    assert round(rows["Q4"].total_gb) == q4
    assert round(rows["Q8"].total_gb) == q8


def test_cli_json_reproduces_the_seed_table(runner: CliRunner) -> None:
    result = runner.invoke(app, ["plan", "--method", "rule-of-thumb", "--json", "-p", "home"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    got = {(r["model"], r["quant"]): round(r["total_gb"]) for r in rows}
    for size, q4, q8 in SEED_TABLE:
        name = CATALOG_FOR_SIZE[size]
        assert (got[(name, "Q4")], got[(name, "Q8")]) == (q4, q8)
        assert got[(name, "FP16")] == round(size * 2 * 1.2)


@pytest.mark.parametrize(("size", "q4", "q8"), SEED_TABLE)
def test_params_option_reproduces_the_seed_table(
    runner: CliRunner, size: int, q4: int, q8: int
) -> None:
    result = runner.invoke(
        app,
        [
            "plan",
            "--method",
            "rule-of-thumb",
            "--json",
            "-p",
            "home",
            "--params",
            str(size),
            "-q",
            "Q4",
            "-q",
            "Q8",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    custom = {r["quant"]: r for r in rows if r["model"].startswith("custom-")}
    assert (round(custom["Q4"]["total_gb"]), round(custom["Q8"]["total_gb"])) == (q4, q8)


def test_rule_of_thumb_capacity_is_the_builds_nominal_vram(catalog: Catalog) -> None:
    rows = plan(
        PlanRequest(
            models=(catalog.model("llama-3.1-70b"),),
            quants=("Q8",),
            profiles=(profile("home"), profile("business"), profile("team")),
            method="rule-of-thumb",
        ),
        catalog,
    )
    capacity = {r.profile: r.capacity_gb for r in rows}
    assert capacity == {"home": 64.0, "business": 256.0, "team": 384.0}
    fits = {r.profile: r.fits for r in rows}
    assert fits == {"home": False, "business": True, "team": True}  # 84 GB


def test_rule_of_thumb_rejects_gguf_format_names(runner: CliRunner) -> None:
    result = runner.invoke(app, ["plan", "--method", "rule-of-thumb", "-q", "Q4_K_M"])
    assert result.exit_code == 2
    assert "not a rule-of-thumb format" in result.output
    assert "Q4, Q8, FP16" in result.output
