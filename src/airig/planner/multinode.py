"""One model across several boxes (issue 16 A): when a model does not fit one box, how vLLM
splits it over identical boxes, and what network that split assumes.

vLLM's guidance (docs.vllm.ai, "Parallelism and Scaling"): tensor parallel inside a node (the
GPUs of one box), pipeline parallel across nodes (one stage per box) unless the nodes share a
fast interconnect such as InfiniBand, which a Personal AI Computer does not have. So a split is
``tensor_parallel_size = GPUs per box`` and ``pipeline_parallel_size = boxes``; it is refused
when the tensor parallel size does not divide the attention heads (or mix with the KV heads),
when there are more stages than layers, or when the busiest GPU does not hold its share.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from airig.planner import memory as mem
from airig.planner.catalog import Catalog, ModelSpec
from airig.planner.fit import PlanRequest, _gb, _split
from airig.profiles import Profile

# A box's cluster link as planned: 10 GbE (1.25 GB/s). Stated, not measured.
ASSUMED_LINK_GBPS = 10.0
ACTIVATION_BYTES = 2  # bf16 hidden states cross a stage boundary
GEFORCE = ("GeForce", "RTX 4090", "RTX 5090")


@dataclass(frozen=True)
class NodeSplit:
    model: str
    quant: str
    profile: str
    nodes: int
    tensor_parallel: int
    pipeline_parallel: int
    layers_per_stage: list[int]
    per_gpu_need_gb: float
    per_gpu_capacity_gb: float
    fits: bool
    reason: str
    network: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stage_layers(layers: int, stages: int) -> list[int]:
    """Layers per pipeline stage: even, the remainder to the first stages (the last stage also
    holds the output head, so it is not given extra layers)."""
    base, extra = divmod(layers, stages)
    return [base + (1 if i < extra else 0) for i in range(stages)]


def _network(model: ModelSpec, profile: Profile, req: PlanRequest, stages: int) -> list[str]:
    notes = []
    if stages > 1:
        per_token = model.hidden * ACTIVATION_BYTES
        prefill = per_token * req.context
        seconds = prefill / (ASSUMED_LINK_GBPS * 1e9 / 8)
        notes.append(
            f"pipeline parallel across {stages} boxes: each stage boundary carries "
            f"{per_token / 1024:.0f} KiB per token ({prefill / 1e6:.0f} MB for a "
            f"{req.context}-token prompt, {seconds:.2f} s at {ASSUMED_LINK_GBPS:g} GbE); "
            "assumed: a dedicated cluster link of 10 GbE or more between the boxes "
            "(NCCL_SOCKET_IFNAME/GLOO_SOCKET_IFNAME set to it); tensor parallel across boxes "
            "is not planned (it needs InfiniBand or RoCE)"
        )
    if any(g in (profile.gpus.model or "") for g in GEFORCE) and profile.gpus.count > 1:
        notes.append(
            f"{profile.gpus.model}: no GPU peer-to-peer, so tensor parallel traffic inside the "
            "box goes through host memory over PCIe (slower than on RTX PRO or data-centre cards)"
        )
    return notes


def split_at(
    model: ModelSpec,
    quant_name: str,
    profile: Profile,
    req: PlanRequest,
    nodes: int,
    catalog: Catalog,
) -> NodeSplit:
    quant = catalog.quant(quant_name)
    weights = mem.engine_weights_bytes("vllm", model, quant)
    tp = _split(model, quant, weights, "vllm", profile, req)
    problems = [tp.problem] if tp.problem else []
    if "vllm" not in quant.engines:
        problems.append(f"vLLM does not load {quant.name}")
    stages = stage_layers(model.layers, nodes)
    if nodes > model.layers:
        problems.append(f"{nodes} pipeline stages for {model.layers} layers")
        stages = [1] * model.layers
    # The busiest stage: the most layers, plus the token embedding (first stage) or the output
    # head (last); vLLM shards both by vocabulary across the tensor parallel GPUs.
    embed = weights * (model.embedding_params_b / model.params_b) if model.params_b else 0.0
    per_layer = (weights - embed) / model.layers
    heads = embed if nodes == 1 or model.tied_embeddings else embed / 2
    stage_weights = max(stages) * per_layer + heads
    kv = mem.kv_cache_bytes(model, req.kv_dtype, req.context, req.concurrency, "vllm")
    stage_kv = kv * max(stages) / model.layers
    need = stage_weights * tp.weight_share + stage_kv * tp.kv_share + tp.overhead
    if need > tp.device_capacity and not problems:
        problems.append(
            f"busiest GPU needs {_gb(need):.1f} of its {_gb(tp.device_capacity):.1f} GB "
            f"on {nodes} box(es)"
        )
    return NodeSplit(
        model=model.name,
        quant=quant.name,
        profile=profile.name,
        nodes=nodes,
        tensor_parallel=tp.devices,
        pipeline_parallel=nodes,
        layers_per_stage=stages,
        per_gpu_need_gb=_gb(need),
        per_gpu_capacity_gb=_gb(tp.device_capacity),
        fits=not problems,
        reason="; ".join(problems),
        network=_network(model, profile, req, nodes) if not problems else [],
    )


def plan_nodes(
    model: ModelSpec,
    quant: str,
    profile: Profile,
    req: PlanRequest,
    max_nodes: int = 8,
    catalog: Catalog | None = None,
) -> list[NodeSplit]:
    """Splits over 1, 2, ... boxes of ``profile`` until one fits (or ``max_nodes``); the last
    row is the plan, or the reason none exists. A split with a structural problem (heads,
    layers) is refused at every size, so the search stops there."""
    catalog = catalog or Catalog.default()
    req.validate()
    rows = []
    for nodes in range(1, max_nodes + 1):
        row = split_at(model, quant, profile, req, nodes, catalog)
        rows.append(row)
        if row.fits or (row.reason and "busiest GPU" not in row.reason):
            break
    return rows


def vllm_flags(split: NodeSplit, rank: int, master: str, port: int = 29500) -> list[str]:
    """vLLM's own multi-node mode for one box of the split (rank 0 serves the API; the others
    run --headless)."""
    flags = [
        "--tensor-parallel-size",
        str(split.tensor_parallel),
        "--pipeline-parallel-size",
        str(split.pipeline_parallel),
    ]
    if split.nodes > 1:
        flags += ["--nnodes", str(split.nodes), "--node-rank", str(rank)]
        flags += ["--master-addr", master, "--master-port", str(port)]
        if rank > 0:
            flags.append("--headless")
    return flags


def describe(rows: list[NodeSplit]) -> str:
    last = rows[-1]
    if last.fits:
        layers = "/".join(str(n) for n in last.layers_per_stage)
        return (
            f"{last.model} {last.quant}: {last.nodes} x {last.profile} "
            f"(tensor parallel {last.tensor_parallel} per box, pipeline parallel "
            f"{last.pipeline_parallel}, layers {layers}), busiest GPU "
            f"{last.per_gpu_need_gb:.1f} of {last.per_gpu_capacity_gb:.1f} GB"
        )
    return f"{last.model} {last.quant} on {last.profile}: no split: {last.reason}"
