"""Engine settings for one box: which engine serves which model with which flags, and the proof
that the engines a profile enables fit in memory together.

The roles (llama_cpp, vllm, ollama) read this through the ``airig.rig.engine_plan`` filter, so
the flags in the units and the planner's table come from the same numbers. A box that cannot
hold its engines together is refused here, on the controller, before anything changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from airig.errors import InputError
from airig.planner import memory as mem
from airig.planner.catalog import Catalog
from airig.planner.fit import DEFAULT_CONTEXT, PlanRequest, PlanRow, plan
from airig.profiles import Profile, ServedModel

# Ports on 127.0.0.1: llama-server instances count up from LLAMA_CPP_PORT.
LLAMA_CPP_PORT = 8080
VLLM_PORT = 8000
OLLAMA_PORT = 11434


class EnginePlanError(InputError):
    """The profile's engines do not fit together, or a model cannot be served as asked."""


@dataclass(frozen=True)
class _Served:
    index: int
    spec: ServedModel
    engine: str
    context: int
    concurrency: int


def _resolve(profile: Profile, catalog: Catalog) -> list[_Served]:
    out = []
    for i, m in enumerate(profile.models):
        quant = catalog.quant(m.quant)
        engine = m.engine or quant.engines[0]
        out.append(_Served(i, m, engine, m.context or DEFAULT_CONTEXT, m.concurrency or 1))
    return out


def _row(
    profile: Profile, catalog: Catalog, s: _Served, utilization: float | None = None
) -> PlanRow:
    request = PlanRequest(
        models=(catalog.model(s.spec.name),),
        quants=(s.spec.quant,),
        profiles=(profile,),
        context=s.context,
        concurrency=s.concurrency,
        engine=s.engine,
        gpu_memory_utilization=utilization or mem.VLLM_DEFAULT_GPU_MEMORY_UTILIZATION,
    )
    return plan(request, catalog)[0]


def _label(s: _Served) -> str:
    return (
        f"models[{s.index}] {s.spec.name} {s.spec.quant} on {s.engine} "
        f"(context {s.context} x {s.concurrency})"
    )


def _gguf_file(s: _Served) -> str:
    return s.spec.file or f"{s.spec.name}-{s.spec.quant}.gguf"


def _llama_cpp_instance(profile: Profile, s: _Served, port: int, row: PlanRow) -> dict[str, Any]:
    gpus = profile.gpus.count
    return {
        "name": s.spec.name,
        "quant": s.spec.quant,
        "file": _gguf_file(s),
        "source": s.spec.source,
        "sha256": s.spec.sha256,
        "port": port,
        # llama-server divides --ctx-size among its --parallel slots.
        "ctx_size": s.context * s.concurrency,
        "parallel": s.concurrency,
        "n_gpu_layers": 999 if gpus else 0,
        "tensor_split": ",".join(["1"] * gpus) if gpus > 1 else "",
        "flash_attn": "on" if gpus else "auto",
        "per_gpu_gb": row.per_gpu_need_gb,
    }


def engine_plan(profile: Profile, catalog: Catalog | None = None) -> dict[str, Any]:
    """Settings per engine for ``profile``; raise EnginePlanError when they cannot fit."""
    catalog = catalog or Catalog.default()
    served = _resolve(profile, catalog)
    gpus = profile.gpus.count
    rows = {s.index: _row(profile, catalog, s) for s in served}
    for s in served:
        row = rows[s.index]
        if s.spec.nodes > 1 and s.engine != "vllm":
            raise EnginePlanError(
                f"{_label(s)}: nodes {s.spec.nodes}: only vLLM serves one model across boxes"
            )
        if not row.fits and s.engine != "vllm":
            raise EnginePlanError(
                f"{_label(s)} does not fit on profile {profile.name}: {row.reason}. "
                "Lower its context or concurrency, pick a smaller format, or move it off this box."
            )

    by_engine: dict[str, list[_Served]] = {e: [] for e in mem.ENGINES}
    for s in served:
        by_engine[s.engine].append(s)
    if len(by_engine["vllm"]) > 1:
        names = ", ".join(_label(s) for s in by_engine["vllm"])
        raise EnginePlanError(
            f"profile {profile.name}: one vLLM server per box serves one model; found {names}. "
            "Serve the others with llama_cpp or ollama."
        )

    capacity = _device_capacity_gb(profile, rows)
    shared = {
        e: round(sum(rows[s.index].per_gpu_need_gb or 0.0 for s in by_engine[e]), 3)
        for e in ("llama_cpp", "ollama")
    }
    others = round(sum(shared.values()), 3)
    result: dict[str, Any] = {
        "profile": profile.name,
        "gpus": gpus,
        "device": "GPU" if gpus else "CPU",
        "device_capacity_gb": capacity,
        "engines": {},
    }

    port = LLAMA_CPP_PORT
    instances = []
    for s in by_engine["llama_cpp"]:
        instances.append(_llama_cpp_instance(profile, s, port, rows[s.index]))
        port += 1
    result["engines"]["llama_cpp"] = {
        "enabled": "llama_cpp" in profile.engines,
        "instances": instances,
        "per_device_gb": shared["llama_cpp"],
    }

    olla = by_engine["ollama"]
    result["engines"]["ollama"] = {
        "enabled": "ollama" in profile.engines,
        "port": OLLAMA_PORT,
        "models": [
            {
                "name": s.spec.name,
                "quant": s.spec.quant,
                "file": _gguf_file(s),
                "source": s.spec.source,
                "sha256": s.spec.sha256,
                "context": s.context,
            }
            for s in olla
        ],
        "num_parallel": max((s.concurrency for s in olla), default=1),
        "max_loaded_models": max(1, len(olla)),
        "context_length": max((s.context for s in olla), default=DEFAULT_CONTEXT),
        "flash_attention": True,
        "kv_cache_type": "f16",
        "per_device_gb": shared["ollama"],
    }

    vllm: dict[str, Any] = {"enabled": "vllm" in profile.engines, "port": VLLM_PORT}
    if by_engine["vllm"]:
        vllm.update(_vllm(profile, catalog, by_engine["vllm"][0], capacity, others, shared))
    result["engines"]["vllm"] = vllm

    result["per_device_planned_gb"] = round(others + vllm.get("per_device_gb", 0.0), 3)
    result["endpoints"] = _endpoints(result["engines"])
    result["served"] = [_served(s, rows[s.index], result) for s in served]
    if others > capacity:
        biggest = max(shared, key=lambda e: shared[e])
        raise EnginePlanError(
            f"profile {profile.name}: the engines need {others:.1f} GB per "
            f"{result['device']} together ({_describe(shared)}) but one holds {capacity:.1f} GB. "
            f"Shrink {biggest}'s models (context, concurrency, format) or disable it."
        )
    return result


UNITS = {
    "llama_cpp": "airig-llama-server@{name}.service",
    "vllm": "airig-vllm.service",
    "ollama": "airig-ollama.service",
}


def _served(s: _Served, row: PlanRow, result: dict[str, Any]) -> dict[str, Any]:
    """What `airig check` compares with the engine's own start-up report: the plan's totals
    (all devices together) and the promise (context per user, users)."""
    return {
        "engine": s.engine,
        "nodes": s.spec.nodes,
        "unit": UNITS[s.engine].format(name=s.spec.name),
        "model": s.spec.name,
        "quant": s.spec.quant,
        "context": s.context,
        "sequences": s.concurrency,
        "device": result["device"],
        "devices": result["gpus"],
        "planned": {
            "weights_gb": row.weights_gb,
            "kv_gb": row.kv_cache_gb,
            "overhead_gb": row.overhead_gb,
        },
    }


def _endpoints(engines: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenAI-compatible endpoints on 127.0.0.1, in the order agents prefer them."""
    out = [
        {
            "engine": "llama_cpp",
            "model": i["name"],
            "context": i["ctx_size"] // i["parallel"],
            "base_url": f"http://127.0.0.1:{i['port']}/v1",
            "key": "llama_cpp",
        }
        for i in engines["llama_cpp"]["instances"]
    ]
    vllm = engines["vllm"]
    if "model" in vllm:
        out.append(
            {
                "engine": "vllm",
                "model": vllm["model"],
                "context": vllm["max_model_len"],
                "base_url": f"http://127.0.0.1:{vllm['port']}/v1",
                "key": "vllm",
            }
        )
    olla = engines["ollama"]
    out += [
        {
            "engine": "ollama",
            "model": f"{m['name']}:{m['quant'].lower()}",
            "context": m["context"],
            "base_url": f"http://127.0.0.1:{olla['port']}/v1",
            "key": None,
        }
        for m in olla["models"]
    ]
    return out


def _device_capacity_gb(profile: Profile, rows: dict[int, PlanRow]) -> float:
    for row in rows.values():
        if row.per_gpu_capacity_gb:
            return row.per_gpu_capacity_gb
    if profile.gpus.count:
        return round(profile.gpus.memory_gib * mem.GIB * mem.NVML_VISIBLE_FRACTION / mem.GB, 3)
    return round(float(profile.ram_gb or 0.0), 3)


def _describe(shared: dict[str, float]) -> str:
    return ", ".join(f"{e} {gb:.1f} GB" for e, gb in shared.items() if gb) or "nothing"


def _vllm(
    profile: Profile,
    catalog: Catalog,
    s: _Served,
    capacity: float,
    others: float,
    shared: dict[str, float],
) -> dict[str, Any]:
    """vLLM takes a fixed share of every GPU: what the other engines leave, at most 0.9."""
    left = (capacity - others) / capacity if capacity else 0.0
    util = min(mem.VLLM_DEFAULT_GPU_MEMORY_UTILIZATION, math.floor(left * 100) / 100)
    if util < 0.05:
        raise EnginePlanError(
            f"profile {profile.name}: {_label(s)} gets no GPU memory: the other engines take "
            f"{others:.1f} of {capacity:.1f} GB per GPU ({_describe(shared)}). "
            "Shrink or disable llama_cpp/ollama models, or move this model to another box."
        )
    if s.spec.nodes > 1:
        return _vllm_across(profile, catalog, s, util, capacity)
    row = _row(profile, catalog, s, util)
    if not row.fits:
        after = f" after {_describe(shared)}" if others else ""
        raise EnginePlanError(
            f"profile {profile.name}: {_label(s)} does not fit in vLLM's share "
            f"(gpu_memory_utilization {util:.2f} of {capacity:.1f} GB per GPU{after}): "
            f"{row.reason}. Lower its context or concurrency, use a smaller format, "
            "shrink/disable the other engines, or serve it across boxes (the model's nodes; "
            f"airig plan -p {profile.name} -m {s.spec.name} -q {s.spec.quant} --across-boxes 8)."
        )
    return {
        "model": s.spec.name,
        "quant": s.spec.quant,
        "source": s.spec.source,
        "revision": s.spec.revision,
        "tensor_parallel_size": max(1, profile.gpus.count),
        "max_model_len": s.context,
        "max_num_seqs": s.concurrency,
        # The planner's vLLM memory model assumes this (planner/memory.py).
        "max_num_batched_tokens": mem.VLLM_MAX_NUM_BATCHED_TOKENS,
        "gpu_memory_utilization": util,
        "per_device_gb": round(util * capacity, 3),
        "max_context_tokens": row.max_context_tokens,
    }


def _vllm_across(
    profile: Profile, catalog: Catalog, s: _Served, util: float, capacity: float
) -> dict[str, Any]:
    """vLLM settings for one box of a model served by ``nodes`` boxes of this profile
    (planner/multinode.py: tensor parallel in the box, one pipeline stage per box)."""
    from airig.planner import multinode

    model = catalog.model(s.spec.name)
    request = PlanRequest(
        models=(model,),
        quants=(s.spec.quant,),
        profiles=(profile,),
        context=s.context,
        concurrency=s.concurrency,
        engine="vllm",
        gpu_memory_utilization=util,
    )
    split = multinode.split_at(model, s.spec.quant, profile, request, s.spec.nodes, catalog)
    if not split.fits:
        raise EnginePlanError(
            f"profile {profile.name}: {_label(s)} across {s.spec.nodes} boxes: {split.reason}. "
            f"airig plan -p {profile.name} -m {model.name} -q {s.spec.quant} --across-boxes 8 "
            "says how many boxes it needs."
        )
    return {
        "model": s.spec.name,
        "quant": s.spec.quant,
        "source": s.spec.source,
        "revision": s.spec.revision,
        "tensor_parallel_size": split.tensor_parallel,
        "pipeline_parallel_size": split.pipeline_parallel,
        "nodes": split.nodes,
        "layers_per_stage": split.layers_per_stage,
        "network": split.network,
        "max_model_len": s.context,
        "max_num_seqs": s.concurrency,
        "max_num_batched_tokens": mem.VLLM_MAX_NUM_BATCHED_TOKENS,
        "gpu_memory_utilization": util,
        "per_device_gb": round(util * capacity, 3),
        "max_context_tokens": None,
    }
