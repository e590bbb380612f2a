"""`airig plan --gpu NAME --gpus N` plans a box without a profile (issue 30 item 9), from the
table of NVIDIA cards in src/airig/data/gpus.yml."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from airig import gpus
from airig.cli import app
from airig.planner import memory as mem


def test_the_card_table_is_whole() -> None:
    names = [c["name"] for c in gpus.cards()]
    assert len(names) == len(set(names))
    keys = [
        k for c in gpus.cards() for k in {gpus._key(str(a)) for a in [c["name"], *c["aliases"]]}
    ]
    assert len(keys) == len(set(keys)), "an alias names two cards"
    for c in gpus.cards():
        assert c["memory_gib"] > 0 and c["sm_count"] > 0, c
        assert re.fullmatch(r"\d{1,2}\.\d", c["compute_capability"]), c
    assert gpus.find("rtx 5090")["name"] == "NVIDIA GeForce RTX 5090"
    assert gpus.find("NVIDIA GeForce RTX 4090")["memory_gib"] == 24
    assert gpus.find("RTX-PRO-6000")["compute_capability"] == "12.0"


def test_plan_for_cards_without_a_profile(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["plan", "--json", "--gpu", "RTX 4090", "--gpus", "2", "-m", "qwen3-32b"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {r["profile"] for r in rows} == {"2x-rtx-4090"} and {r["gpus"] for r in rows} == {2}
    capacity = 24 * mem.GIB * mem.NVML_VISIBLE_FRACTION / 1e9
    assert rows[0]["per_gpu_capacity_gb"] == pytest.approx(capacity, rel=1e-6)


def test_cards_with_host_memory_plan_experts_in_ram(runner: CliRunner) -> None:
    args = ["plan", "--json", "--gpu", "5090", "-m", "gpt-oss-120b", "-q", "Q4_K_M"]
    with_ram = json.loads(runner.invoke(app, [*args, "--ram-gb", "128"]).output)[0]
    assert with_ram["fits"] and with_ram["cpu_moe_layers"]
    without = json.loads(runner.invoke(app, args).output)[0]
    assert not without["fits"] and "host.ram_gb" in without["reason"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpu", "RTX 4091"], "did you mean 'rtx 4090'"),
        (["--gpu", "RTX 4090", "--gpus", "0"], "--gpus: bad value 0"),
        (["--gpu", "RTX 4090", "-p", "home"], "give one of them, not both"),
        (["--gpu", "RTX 4090", "--ram-gb", "-5"], "--ram-gb: bad value -5"),
    ],
)
def test_bad_cards_say_what_to_fix(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["plan", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
