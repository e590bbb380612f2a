"""Issue 16 A: the planner decides when a model needs more than one box and how vLLM splits
it (tensor parallel = GPUs per box, pipeline parallel = boxes), refuses splits that do not
divide heads or layers or do not fit, and says the network it assumes."""

from __future__ import annotations

import dataclasses
import json

from typer.testing import CliRunner

from airig import profiles
from airig.cli import app
from airig.planner import multinode
from airig.planner.catalog import Catalog
from airig.planner.fit import PlanRequest

CATALOG = Catalog.default()


def split(profile: str, model: str, quant: str, **change: int) -> list[multinode.NodeSplit]:
    p = profiles.load(profile, ())
    m = dataclasses.replace(CATALOG.model(model), **change)
    req = PlanRequest(models=(m,), quants=(quant,), profiles=(p,), engine="vllm")
    return multinode.plan_nodes(m, quant, p, req, 8, CATALOG)


def test_llama_405b_at_8_bit_needs_two_team_boxes() -> None:
    rows = split("team", "llama-3.1-405b", "FP8")
    assert [r.nodes for r in rows] == [1, 2]
    one, two = rows
    assert not one.fits and "busiest GPU needs" in one.reason
    assert two.fits
    assert (two.tensor_parallel, two.pipeline_parallel) == (4, 2)
    assert two.layers_per_stage == [63, 63]
    assert two.per_gpu_need_gb < two.per_gpu_capacity_gb < one.per_gpu_need_gb
    # the network it assumes is said
    assert (
        "10 GbE" in two.network[0]
        and "tensor parallel across boxes is not planned" in (two.network[0])
    )


def test_a_model_that_fits_one_box_stays_on_one() -> None:
    rows = split("team", "gpt-oss-120b", "MXFP4")
    assert [(r.nodes, r.fits, r.pipeline_parallel) for r in rows] == [(1, True, 1)]
    assert rows[0].network == []


def test_more_boxes_means_less_per_gpu() -> None:
    rows = split("business", "llama-3.1-405b", "FP16")
    needs = [r.per_gpu_need_gb for r in rows]
    assert needs == sorted(needs, reverse=True) and rows[-1].fits and len(rows) > 2
    # GeForce boxes: no GPU peer-to-peer, said
    assert any("peer-to-peer" in n for n in rows[-1].network)


def test_heads_not_divisible_by_the_gpus_of_a_box_is_refused_at_once() -> None:
    rows = split("business", "llama-3.1-405b", "FP8", heads=12)
    assert len(rows) == 1 and not rows[0].fits
    assert "tensor parallel size 8 does not divide 12 attention heads" in rows[0].reason


def test_more_stages_than_layers_is_refused() -> None:
    rows = split("home", "llama-3.1-405b", "FP8", layers=3)
    assert not rows[-1].fits
    assert rows[-1].reason == "4 pipeline stages for 3 layers"
    assert multinode.describe(rows).endswith("no split: 4 pipeline stages for 3 layers")


def test_stage_layers_cover_every_layer_once() -> None:
    for layers in (1, 32, 61, 126):
        for stages in range(1, min(layers, 9) + 1):
            split_ = multinode.stage_layers(layers, stages)
            assert sum(split_) == layers and max(split_) - min(split_) <= 1


def test_vllm_flags_per_rank() -> None:
    two = split("team", "llama-3.1-405b", "FP8")[-1]
    head = multinode.vllm_flags(two, 0, "10.77.0.1")
    worker = multinode.vllm_flags(two, 1, "10.77.0.1")
    assert head[head.index("--node-rank") + 1] == "0" and "--headless" not in head
    assert worker[worker.index("--node-rank") + 1] == "1" and worker[-1] == "--headless"
    assert worker[worker.index("--master-addr") + 1] == "10.77.0.1"


def test_cli_across_boxes() -> None:
    args = ["plan", "-p", "team", "-m", "llama-3.1-405b", "-q", "FP8", "--across-boxes", "4"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "2 x team" in out.output and "--headless" in out.output
    out = CliRunner().invoke(app, [*args, "--json"])
    rows = json.loads(out.output)[0]
    assert rows[-1]["fits"] and rows[-1]["pipeline_parallel"] == 2
    out = CliRunner().invoke(app, [*args[:-1], "0"])
    assert out.exit_code == 0  # 0: the option is off, the usual table
    out = CliRunner().invoke(app, [*args[:-1], "99"])
    assert out.exit_code == 2 and "expected 1-64 boxes" in out.output
