"""Fit tables: for every profile x model x format, does it fit, with how much context for how
many concurrent users. Two methods: ``architecture`` (default) and the seed guide's
``rule-of-thumb``."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace

from airig.errors import CatalogError, InputError
from airig.planner import memory as mem
from airig.planner.catalog import Catalog, ModelSpec, QuantFormat
from airig.profiles import Profile

METHODS = ("architecture", "rule-of-thumb")
DEFAULT_QUANTS = {"architecture": ("Q4_K_M", "Q8_0", "FP16"), "rule-of-thumb": ("Q4", "Q8", "FP16")}
DEFAULT_CONTEXT = 8192


@dataclass(frozen=True)
class PlanRequest:
    models: tuple[ModelSpec, ...]
    quants: tuple[str, ...]
    profiles: tuple[Profile, ...]
    method: str = "architecture"
    context: int = DEFAULT_CONTEXT
    concurrency: int = 1
    kv_dtype: str = "fp16"
    engine: str | None = None
    gpu_memory_utilization: float = mem.VLLM_DEFAULT_GPU_MEMORY_UTILIZATION
    # The engines' own flags (None: what airig's roles set). vLLM:
    max_num_batched_tokens: int | None = None  # --max-num-batched-tokens (roles: 2048)
    max_num_seqs: int | None = None  # --max-num-seqs (roles: the profile's concurrency)
    enforce_eager: bool = False  # --enforce-eager: no CUDA graphs
    tensor_parallel: int | None = None  # --tensor-parallel-size (roles: every GPU)
    pipeline_parallel: int = 1  # --pipeline-parallel-size
    data_parallel: int = 1  # --data-parallel-size
    expert_parallel: bool = False  # --enable-expert-parallel
    vllm_version: str | None = None  # roles: memory.VLLM_DEFAULT_VERSION
    # llama.cpp:
    n_cpu_moe: int | None = None  # --n-cpu-moe (None: 0, or as few as fit when VRAM is short)
    ubatch: int | None = None  # --ubatch-size (llama-server's default 512)

    def validate(self) -> None:
        if self.method not in METHODS:
            raise InputError(
                f"--method: unknown method '{self.method}'; allowed: {', '.join(METHODS)}"
            )
        if self.context < 1:
            raise InputError(f"--context: bad value {self.context}: expected a token count >= 1")
        if self.concurrency < 1:
            raise InputError(f"--concurrency: bad value {self.concurrency}: expected >= 1")
        if not 0.05 <= self.gpu_memory_utilization <= 1.0:
            raise InputError(
                f"--gpu-memory-utilization: bad value "
                f"{self.gpu_memory_utilization}: expected 0.05 to 1.0"
            )
        if self.engine is not None and self.engine not in mem.ENGINES:
            raise InputError(
                f"--engine: unknown engine '{self.engine}'; allowed: {', '.join(mem.ENGINES)}"
            )
        mem.kv_element_bytes(self.kv_dtype)
        counts = {
            "--max-num-batched-tokens": self.max_num_batched_tokens,
            "--max-num-seqs": self.max_num_seqs,
            "--tensor-parallel-size": self.tensor_parallel,
            "--pipeline-parallel-size": self.pipeline_parallel,
            "--data-parallel-size": self.data_parallel,
            "--ubatch-size": self.ubatch,
        }
        for flag, value in counts.items():
            if value is not None and not 1 <= value <= 1 << 24:
                raise InputError(f"{flag}: bad value {value}: expected a whole number >= 1")
        if self.n_cpu_moe is not None and not 0 <= self.n_cpu_moe <= 4096:
            raise InputError(f"--n-cpu-moe: bad value {self.n_cpu_moe}: expected 0 or more layers")
        if self.vllm_version is not None:
            mem.vllm_version_tuple(self.vllm_version)
        if not self.models or not self.profiles or not self.quants:
            raise InputError("nothing to plan: give at least one model, format and profile")


@dataclass(frozen=True)
class PlanRow:
    """One model x format x profile. GB = 10^9 bytes. Keys of ``to_dict`` are stable."""

    model: str
    quant: str
    profile: str
    method: str
    engine: str | None
    gpus: int
    context: int
    concurrency: int
    kv_dtype: str | None
    weights_gb: float
    kv_cache_gb: float
    overhead_gb: float
    total_gb: float
    capacity_gb: float
    fits: bool
    headroom_gb: float
    per_gpu_need_gb: float | None
    per_gpu_capacity_gb: float | None
    max_context_tokens: int | None
    max_concurrency: int | None
    reason: str
    # llama.cpp with --n-cpu-moe: layers whose experts stay in host memory, and the host memory
    # the weights then need (None: everything on the GPUs, or another engine).
    cpu_moe_layers: int | None = None
    host_ram_need_gb: float | None = None
    # What the plan assumed that a person should know (parallel layout, offload, a config's
    # fields the planner does not use).
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _gb(value: float) -> float:
    return round(value / mem.GB, 6)


def _rule_of_thumb(model: ModelSpec, quant: str, profile: Profile) -> PlanRow:
    per_param = mem.RULE_OF_THUMB_BYTES_PER_PARAM[quant]
    weights = model.nominal * per_param * 1e9
    total = weights * mem.RULE_OF_THUMB_FACTOR
    if profile.gpus.count:
        capacity = profile.gpus.count * profile.gpus.memory_gib * mem.GB
    else:
        capacity = (profile.ram_gb or 0.0) * mem.GB
    fits = total <= capacity
    return PlanRow(
        model=model.name,
        quant=quant,
        profile=profile.name,
        method="rule-of-thumb",
        engine=None,
        gpus=profile.gpus.count,
        context=0,
        concurrency=0,
        kv_dtype=None,
        weights_gb=_gb(weights),
        kv_cache_gb=0.0,
        overhead_gb=_gb(total - weights),
        total_gb=_gb(total),
        capacity_gb=_gb(capacity),
        fits=fits,
        headroom_gb=_gb(capacity - total),
        per_gpu_need_gb=None,
        per_gpu_capacity_gb=None,
        max_context_tokens=None,
        max_concurrency=None,
        reason="" if fits else "needs more memory than the build has (rule of thumb)",
    )


@dataclass(frozen=True)
class _Split:
    """How one model's memory lands on the devices of a box."""

    devices: int
    device_capacity: float
    weight_share: float
    kv_share: float
    overhead: float
    problem: str
    kv_copies: float = 1.0  # how many times the KV cache exists in total (replicated heads)
    weight_copies: float = 1.0  # how many times the weights exist in total (data parallel)
    notes: tuple[str, ...] = ()


def _split(
    model: ModelSpec,
    quant: QuantFormat,
    weights: float,
    engine: str,
    profile: Profile,
    req: PlanRequest,
) -> _Split:
    gpu = profile.gpus.count > 0
    devices = profile.gpus.count if gpu else 1
    if gpu:
        capacity = profile.gpus.memory_gib * mem.GIB * mem.NVML_VISIBLE_FRACTION
    else:
        if not profile.ram_gb:
            raise InputError(
                f"profile {profile.name}: no GPUs and no host.ram_gb: set "
                "host.ram_gb so the planner knows the box's memory"
            )
        capacity = profile.ram_gb * mem.GB
    if engine == "vllm" and gpu:
        return _vllm_split(model, quant, weights, profile, req, capacity)
    overhead = mem.overhead_bytes_per_device(
        engine,
        device_capacity=capacity,
        gpu=gpu,
        sm_count=profile.gpus.sm_count,
        devices=devices,
        gpu_memory_utilization=req.gpu_memory_utilization,
        model=model,
        max_num_seqs=req.concurrency,
    )
    problem = "vLLM needs a GPU" if engine == "vllm" else ""
    if engine == "llama_cpp" and gpu:
        # llama.cpp's own layer split; the token embedding in host memory (memory.py).
        on_device = mem.llama_cpp_device_weights(model, quant, weights, devices, req.n_cpu_moe or 0)
        counts = mem.llama_cpp_layer_split(model.layers, devices)
        return _Split(
            devices,
            capacity,
            max(on_device) / weights if weights else 0.0,
            max(counts) / model.layers,
            overhead,
            problem,
        )
    # Ollama splits whole layers across GPUs (its scheduler's even split is assumed).
    return _Split(
        devices,
        capacity,
        mem.layer_share(model.layers, devices),
        mem.layer_share(model.attention_layers, devices),
        overhead,
        problem,
    )


def _vllm_split(
    model: ModelSpec,
    quant: QuantFormat,
    weights: float,
    profile: Profile,
    req: PlanRequest,
    capacity: float,
) -> _Split:
    """vLLM's layout: tensor parallel inside a replica (attention heads split, KV heads split
    or replicated; MLA's one latent replicated on every GPU), pipeline stages by layers, data
    parallel replicas each with its share of the users, and with expert parallelism the routed
    experts spread over tensor x data parallel GPUs instead of split inside each replica."""
    gpus = profile.gpus.count
    pp, dp = req.pipeline_parallel, req.data_parallel
    tp = req.tensor_parallel or max(1, gpus // (pp * dp))
    used = tp * pp * dp
    problems = []
    if used > gpus:
        problems.append(
            f"tensor {tp} x pipeline {pp} x data parallel {dp} needs {used} GPUs; "
            f"profile {profile.name} has {gpus}"
        )
    if model.heads % tp:
        problems.append(f"tensor parallel size {tp} does not divide {model.heads} attention heads")
    elif not model.mla and model.kv_heads % tp and tp % model.kv_heads:
        problems.append(f"tensor parallel size {tp} and {model.kv_heads} KV heads do not mix")
    if pp > model.layers:
        problems.append(f"{pp} pipeline stages for {model.layers} layers")
    head_share = 1.0 if model.mla else max(1, model.kv_heads // tp) / model.kv_heads
    stage = mem.layer_share(model.layers, pp)
    users = math.ceil(req.concurrency / dp) / req.concurrency
    kv_share = head_share * stage * users
    experts = 0.0
    if model.expert_params_b:
        experts = min(weights, mem.expert_bytes_per_layer(model, quant) * model.expert_layers)
    ep = tp * dp if req.expert_parallel and experts else tp
    device_weights = ((weights - experts) / tp + experts / ep) * stage
    weight_share = device_weights / weights if weights else 0.0
    overhead = mem.overhead_bytes_per_device(
        "vllm",
        device_capacity=capacity,
        gpu=True,
        sm_count=profile.gpus.sm_count,
        devices=tp,
        gpu_memory_utilization=req.gpu_memory_utilization,
        model=model,
        max_num_seqs=req.max_num_seqs or req.concurrency,
        max_num_batched_tokens=req.max_num_batched_tokens or mem.VLLM_MAX_NUM_BATCHED_TOKENS,
        cuda_graphs=mem.vllm_graphs_subtracted(req.vllm_version, req.enforce_eager),
    )
    notes = []
    if used > 1:
        layout = f"vLLM tensor parallel {tp}"
        layout += f", pipeline parallel {pp}" if pp > 1 else ""
        layout += f", data parallel {dp}" if dp > 1 else ""
        layout += f", expert parallel over {ep} GPUs" if ep != tp else ""
        notes.append(layout + (f" ({used} of {gpus} GPUs)" if used < gpus else ""))
    if model.mla and tp > 1:
        notes.append(f"MLA: each of the {tp} tensor parallel GPUs holds the whole latent cache")
    return _Split(
        used,
        capacity,
        weight_share,
        kv_share,
        overhead,
        "; ".join(problems),
        kv_share * used,
        weight_share * used,
        tuple(notes),
    )


def _max_context(
    model: ModelSpec, req: PlanRequest, split: _Split, avail: float, engine: str
) -> int:
    """Longest context per sequence at ``req.concurrency`` that fits in ``avail`` bytes (after
    each sequence's fixed linear-attention state)."""
    avail -= model.linear_state_bytes * req.concurrency * split.kv_share
    if avail <= 0:
        return 0
    per_layer = mem.kv_bytes_per_token_layer(model, req.kv_dtype) * req.concurrency
    per_layer *= split.kv_share
    swa = model.sliding_window_layers if model.sliding_window else 0
    full = model.attention_layers - swa
    window = mem.swa_cells(model, engine, req.ubatch)
    if full + swa == 0:
        return model.max_context
    tokens = avail / (per_layer * (full + swa))
    if swa and tokens > window:
        if full == 0:
            return model.max_context
        tokens = (avail - per_layer * swa * window) / (per_layer * full)
    return min(model.max_context, math.floor(tokens))


@dataclass(frozen=True)
class _Need:
    weights: float
    split: _Split
    kv: float
    device: float  # the busiest device
    cpu_moe_layers: int | None = None
    host_ram: float | None = None
    # Experts in RAM would fit the GPUs but need more host memory than the profile has.
    ram_short: float | None = None


def _need(
    model: ModelSpec,
    quant: QuantFormat,
    engine: str,
    profile: Profile,
    req: PlanRequest,
) -> _Need:
    weights = mem.engine_weights_bytes(engine, model, quant)
    split = _split(model, quant, weights, engine, profile, req)
    kv = mem.kv_cache_bytes(model, req.kv_dtype, req.context, req.concurrency, engine, req.ubatch)
    device = weights * split.weight_share + kv * split.kv_share + split.overhead
    if engine != "llama_cpp" or not profile.gpus.count:
        return _Need(weights, split, kv, device)
    layers = req.n_cpu_moe
    if layers is None:
        if device <= split.device_capacity or not model.expert_params_b:
            return _Need(weights, split, kv, device)
        layers = _fewest_cpu_moe_layers(model, quant, engine, profile, req)
        if layers is None:
            return _Need(weights, split, kv, device)
        host = mem.llama_cpp_host_bytes(model, quant, layers)
        if profile.ram_gb is not None and host > _host_ram(profile):
            # Not a plan this box can run: the row stays the GPUs-only one, with the reason.
            return _Need(weights, split, kv, device, ram_short=host)
        split = _split(model, quant, weights, engine, profile, replace(req, n_cpu_moe=layers))
        device = weights * split.weight_share + kv * split.kv_share + split.overhead
    if not layers or not model.expert_params_b:
        return _Need(weights, split, kv, device)
    host = mem.llama_cpp_host_bytes(model, quant, layers)
    return _Need(weights, split, kv, device, layers, host)


def _host_ram(profile: Profile) -> float:
    """Host memory the weights may take: host.ram_gb less what the system keeps."""
    return (profile.ram_gb or 0.0) * mem.GB - mem.CPU_OS_RESERVE_GIB * mem.GIB


def _fewest_cpu_moe_layers(
    model: ModelSpec, quant: QuantFormat, engine: str, profile: Profile, req: PlanRequest
) -> int | None:
    """The smallest --n-cpu-moe that lets the busiest GPU fit, or None when no number does."""
    weights = mem.engine_weights_bytes(engine, model, quant)
    kv = mem.kv_cache_bytes(model, req.kv_dtype, req.context, req.concurrency, engine, req.ubatch)
    for layers in range(1, model.layers + 1):
        split = _split(model, quant, weights, engine, profile, replace(req, n_cpu_moe=layers))
        if weights * split.weight_share + kv * split.kv_share + split.overhead <= (
            split.device_capacity
        ):
            return layers
    return None


def _architecture(
    model: ModelSpec, quant: QuantFormat, profile: Profile, req: PlanRequest
) -> PlanRow:
    engine = req.engine or next(
        (e for e in quant.engines if e in profile.engines), quant.engines[0]
    )
    need = _need(model, quant, engine, profile, req)
    weights, split, kv, need_device = need.weights, need.split, need.kv, need.device
    problems = [split.problem] if split.problem else []
    notes = list(split.notes)
    if model.estimated_from:
        notes.append(
            f"an unknown {model.params_b:g}B model with the shape of {model.estimated_from} "
            "(layers, heads, KV heads, head dim, vocabulary): plan it from its own config.json "
            "with --hf-config for its real KV cache"
        )
    if engine not in quant.engines:
        problems.append(f"{engine} does not load {quant.name}")
    if req.kv_dtype not in mem.KV_DTYPES_BY_ENGINE[engine]:
        problems.append(f"{engine} has no {req.kv_dtype} KV cache")
    if req.context > model.max_context:
        problems.append(f"context {req.context} exceeds {model.name}'s {model.max_context}")

    n = split.devices
    kv_total = kv * split.kv_copies  # includes KV heads replicated by tensor parallelism
    total = weights * split.weight_copies + kv_total + split.overhead * n
    if need.cpu_moe_layers:  # the GPUs' total: the experts kept in host memory are not in it
        total -= mem.llama_cpp_host_bytes(model, quant, need.cpu_moe_layers)
        total += mem.llama_cpp_host_bytes(model, quant, 0)
    capacity = split.device_capacity * n
    if need_device > split.device_capacity:
        if total <= capacity:
            problems.append(
                f"busiest GPU needs {_gb(need_device):.1f} of its "
                f"{_gb(split.device_capacity):.1f} GB (the total fits)"
            )
        else:
            problems.append(f"needs {_gb(total):.1f} of {_gb(capacity):.1f} GB")
    if need.ram_short is not None:
        problems.append(
            f"experts in RAM (llama.cpp --n-cpu-moe) would need {_gb(need.ram_short):.1f} GB of "
            f"host memory; {profile.name} has {profile.ram_gb:g} GB less "
            f"{mem.CPU_OS_RESERVE_GIB:g} GiB for the system"
        )
    if need.cpu_moe_layers:
        ram = _host_ram(profile)
        host = need.host_ram or 0.0
        notes.append(
            f"experts of {need.cpu_moe_layers} of {model.expert_layers} MoE layers in system "
            f"RAM (llama.cpp --n-cpu-moe {need.cpu_moe_layers}): {_gb(host):.1f} GB of host "
            "memory; token generation slows to what RAM bandwidth allows"
        )
        if profile.ram_gb is None:
            problems.append(
                f"experts in RAM need {_gb(host):.1f} GB of host memory: set host.ram_gb in "
                f"profile {profile.name}"
            )
        elif host > ram:
            problems.append(
                f"experts in RAM need {_gb(host):.1f} GB of host memory; {profile.name} has "
                f"{profile.ram_gb:g} GB less {mem.CPU_OS_RESERVE_GIB:g} GiB for the system"
            )
    avail = split.device_capacity - weights * split.weight_share - split.overhead
    blocked = bool(split.problem) or engine not in quant.engines
    per_seq = kv / req.concurrency * split.kv_share  # KV grows linearly with sequences
    if blocked or avail <= 0 or req.context > model.max_context:
        max_ctx, max_conc = 0, 0
    else:
        max_ctx = _max_context(model, req, split, avail, engine)
        max_conc = math.floor(avail / per_seq) if per_seq > 0 else 0
    return PlanRow(
        model=model.name,
        quant=quant.name,
        profile=profile.name,
        method="architecture",
        engine=engine,
        gpus=profile.gpus.count,
        context=req.context,
        concurrency=req.concurrency,
        kv_dtype=req.kv_dtype,
        weights_gb=_gb(weights),
        kv_cache_gb=_gb(kv_total),
        overhead_gb=_gb(split.overhead * n),
        total_gb=_gb(total),
        capacity_gb=_gb(capacity),
        fits=not problems,
        headroom_gb=_gb(capacity - total),
        per_gpu_need_gb=_gb(need_device),
        per_gpu_capacity_gb=_gb(split.device_capacity),
        max_context_tokens=max_ctx,
        max_concurrency=max_conc,
        reason="; ".join(problems),
        cpu_moe_layers=need.cpu_moe_layers,
        host_ram_need_gb=None if need.host_ram is None else _gb(need.host_ram),
        notes=tuple(notes),
    )


def resolve_quants(catalog: Catalog, names: Iterable[str], method: str) -> list[str]:
    """Validate format names for a method; 'all' expands to every format."""
    if method == "rule-of-thumb":
        allowed = list(mem.RULE_OF_THUMB_BYTES_PER_PARAM)
        out = []
        for name in names:
            if name.lower() == "all":
                return allowed
            match = next((a for a in allowed if a.lower() == name.lower()), None)
            if match is None:
                raise CatalogError(
                    f"--quant: '{name}' is not a rule-of-thumb format; allowed: "
                    f"{', '.join(allowed)}"
                )
            out.append(match)
        return out
    if any(n.lower() == "all" for n in names):
        return [q.name for q in catalog.quants]
    return [catalog.quant(n).name for n in names]


def plan(request: PlanRequest, catalog: Catalog | None = None) -> list[PlanRow]:
    """Plan every profile x model x format of ``request``.

    Combinations that cannot exist (a format that quantizes MoE experts on a dense model) are
    left out; asking only for those is an error.
    """
    request.validate()
    catalog = catalog or Catalog.default()
    quants = resolve_quants(catalog, request.quants, request.method)
    rows: list[PlanRow] = []
    skipped: list[str] = []
    for profile in request.profiles:
        for model in request.models:
            for qname in quants:
                if request.method == "rule-of-thumb":
                    rows.append(_rule_of_thumb(model, qname, profile))
                    continue
                try:
                    rows.append(_architecture(model, catalog.quant(qname), profile, request))
                except CatalogError as exc:
                    skipped.append(str(exc))
    if not rows:
        raise InputError("nothing to plan: " + "; ".join(dict.fromkeys(skipped)))
    return rows
