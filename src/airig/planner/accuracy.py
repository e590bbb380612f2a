"""The planner against what engines reported on real GPUs (issue 12): for each published vLLM
start-up report (tests/data/vllm_startup_reports.yml), the planner's figure for each term vLLM
prints, computed from the same model, format, card and flags, and the error.

Weights and KV: relative error (plan - reported) / reported; a positive KV error is memory the
plan promises that vLLM did not give (over-promised). A run where vLLM had no KV memory left
(it did not start) has no relative KV error: there the plan must say "does not fit" too
(``verdicts_agree``). Overhead terms (activation, non-torch, their sum with CUDA graphs): error
in GiB, as small terms make percentages meaningless.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airig.planner import memory as mem
from airig.planner.catalog import Catalog, ModelSpec

# Quantities compared, in the order the table prints them; RELATIVE ones in percent.
QUANTITIES = ("weights", "activation", "non_torch", "overhead", "kv")
RELATIVE = ("weights", "kv", "gpu_weights", "gpu_kv", "gpu_total")


@dataclass
class Compared:
    run: str
    set: str
    plan: dict[str, float] = field(default_factory=dict)
    reported: dict[str, float] = field(default_factory=dict)

    def error(self, quantity: str) -> float | None:
        got = self.reported.get(quantity)
        if got is None or quantity not in self.plan:
            return None
        if quantity not in RELATIVE:
            return self.plan[quantity] - got
        if got <= 0:
            return None  # vLLM did not start: see verdict_agrees
        return (self.plan[quantity] - got) / got

    @property
    def verdict_agrees(self) -> bool | None:
        """Plan and vLLM agree whether any KV memory is left (whether the engine starts); None
        for a run that reported no KV figure."""
        if "kv" not in self.reported:
            return None
        return (self.plan["kv"] > 0) == (self.reported["kv"] > 0)


def load_runs(path: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return list(data["runs"])


def _model(run: dict[str, Any], catalog: Catalog) -> ModelSpec:
    if "arch" in run:
        return ModelSpec(name=run["model"], **run["arch"])
    return catalog.model(run["model"])


def compare(run: dict[str, Any], catalog: Catalog | None = None) -> Compared:
    """The planner's per-GPU figures for one reported run, in GiB."""
    catalog = catalog or Catalog.default()
    model = _model(run, catalog)
    tp = int(run["tp"])
    weights = mem.engine_weights_bytes("vllm", model, catalog.quant(run["quant"])) / tp
    terms = mem.vllm_overhead_terms(
        model,
        devices=tp,
        max_num_seqs=int(run["seqs"]),
        max_num_batched_tokens=int(run["batched_tokens"]),
        # vLLM's v0 engine profiled the forward pass only (no sampler warm-up in the profile).
        sampler_warmup=run["engine"] == "v1",
    )
    if not run["graphs_subtracted"]:
        terms["cuda_graphs"] = 0.0  # compare like for like: that vLLM did not subtract them
    weights += terms.pop("rope_cache")  # vLLM counts its RoPE tables in "Model loading took"
    nvml = run["card_gib"] * mem.GIB * mem.NVML_VISIBLE_FRACTION
    requested = run["util"] * mem.vllm_torch_total_bytes(nvml)
    plan = {
        "weights": weights,
        "activation": terms["activation"],
        "non_torch": terms["non_torch"],
        "overhead": sum(terms.values()),
        "kv": requested - weights - sum(terms.values()),
    }
    reported = dict(run["reported"])
    parts = ["activation_and_non_torch", "activation", "non_torch"]
    if run["graphs_subtracted"]:
        parts.append("cuda_graphs")
    if any(p in reported for p in parts):
        reported["overhead"] = sum(reported.get(p, 0.0) for p in parts)
    return Compared(
        run=run["id"],
        set=run["set"],
        plan={k: v / mem.GIB for k, v in plan.items()},
        reported={k: float(v) for k, v in reported.items() if k in QUANTITIES},
    )


@dataclass
class Summary:
    quantity: str
    points: int
    median: float
    worst: float
    worst_over: float


def summarize(rows: list[Compared], quantity: str) -> Summary | None:
    """Points, median absolute error, the worst error (signed) and the largest positive one."""
    errors = [e for r in rows if (e := r.error(quantity)) is not None]
    if not errors:
        return None
    return Summary(
        quantity,
        len(errors),
        statistics.median(abs(e) for e in errors),
        max(errors, key=abs),
        max(errors),
    )


def compare_llama_cpp(run: dict[str, Any], catalog: Catalog | None = None) -> Compared:
    """The planner's llama.cpp layout for one reported run, in MiB: the busiest GPU's weights,
    one GPU's KV cache, and the busiest GPU's total (weights + KV + the planner's llama.cpp
    margin, which stands for the compute buffers) against llama.cpp's own memory breakdown."""
    catalog = catalog or Catalog.default()
    model = _model(run, catalog)
    quant = catalog.quant(run["quant"])
    gpus = int(run["gpus"])
    weights = mem.engine_weights_bytes("llama_cpp", model, quant)
    plan: dict[str, float] = {}
    reported: dict[str, float] = {}
    got = run["reported"]
    if "weights_mib" in got:
        per_gpu = mem.llama_cpp_device_weights(model, quant, weights, gpus)
        busiest = max(range(gpus), key=lambda i: got["weights_mib"][i])
        plan["gpu_weights"] = per_gpu[busiest] / mem.MIB
        reported["gpu_weights"] = float(got["weights_mib"][busiest])
    if "kv_mib" in got:
        kv = mem.kv_cache_bytes(
            model, "fp16", int(run["context"]), int(run["sequences"]), "llama_cpp", run["ubatch"]
        )
        plan["gpu_kv"] = kv / gpus / mem.MIB
        reported["gpu_kv"] = float(got["kv_mib"])
    if "total_mib" in got and "gpu_weights" in plan and "gpu_kv" in plan:
        plan["gpu_total"] = plan["gpu_weights"] + plan["gpu_kv"] + mem.LLAMA_CPP_MARGIN_MIB
        reported["gpu_total"] = float(got["total_mib"])
    return Compared(
        run=run["id"],
        set="holdout",
        plan=plan,
        reported=reported,
    )
