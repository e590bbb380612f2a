"""Memory arithmetic: weights, KV cache and engine overhead, in bytes.

Units: GB = 10^9 bytes (what the planner reports), GiB = 2^30 bytes (what NVML and GPU
vendors speak; a card sold as "32 GB" carries 32 GiB of memory chips), MiB = 2^20 bytes.
Every constant below names its source; ../shared/REFERENCES.md collects them.
"""

from __future__ import annotations

import math

from airig.errors import CatalogError, InputError
from airig.planner.catalog import ModelSpec, QuantFormat

GB = 1e9
GIB = float(2**30)
MIB = float(2**20)

# --- the seed guide's rule of thumb ----------------------------------------------------------
# Source: the seed guide's table (params x bytes per parameter x 1.2). Units there are GB.
RULE_OF_THUMB_BYTES_PER_PARAM = {"Q4": 0.5, "Q8": 1.0, "FP16": 2.0}
RULE_OF_THUMB_FACTOR = 1.2

# --- KV cache element sizes -------------------------------------------------------------------
# fp16/bf16: 2 bytes; fp8: 1 byte (vLLM --kv-cache-dtype fp8); q8_0: 34 bytes per 32 values and
# q4_0: 18 bytes per 32 values (ggml block layouts, llama.cpp --cache-type-k/-v).
KV_BYTES = {"fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
KV_DTYPES_BY_ENGINE = {
    "vllm": ("fp16", "bf16", "fp8"),
    "llama_cpp": ("fp16", "bf16", "q8_0", "q4_0"),
    "ollama": ("fp16", "q8_0", "q4_0"),
}

# --- GPU memory the driver does not hand out ----------------------------------------------------
# RTX 5090: NVML reports 32607 MiB of 32768 MiB (club-3090 PR #875). Applied as a fraction to
# every card until a measured value for it exists.
NVML_VISIBLE_FRACTION = 32607 / 32768

# --- CUDA context, grows with the SM count ------------------------------------------------------
# Measured bare CUDA contexts: 107 MiB on an RTX 4060 Ti (34 SMs), 555 MiB on an RTX PRO 6000
# Blackwell (188 SMs) (llama.cpp PR #23604). Straight line through both points.
_CTX_POINTS = ((34, 107.0), (188, 555.0))
_CTX_SLOPE_MIB = (_CTX_POINTS[1][1] - _CTX_POINTS[0][1]) / (_CTX_POINTS[1][0] - _CTX_POINTS[0][0])
_CTX_BASE_MIB = _CTX_POINTS[0][1] - _CTX_SLOPE_MIB * _CTX_POINTS[0][0]
DEFAULT_SM_COUNT = 170  # RTX 5090 (NVIDIA's GeForce RTX 5090 specifications)

# --- engine reserves ----------------------------------------------------------------------------
# llama.cpp --fit leaves 1024 MiB free per device and shrinks context first (llama.cpp PR #16653).
# Cross-check: CUDA context (~503 MiB on an RTX 5090) + 1024 MiB = 1527 MiB, close to the
# 1516.5 MiB constant of oobabooga's GGUF estimator (fitted on 19,517 measurements).
LLAMA_CPP_MARGIN_MIB = 1024.0
# llama-server's default micro-batch (-ub) and the KV cache's cell padding.
LLAMA_CPP_UBATCH = 512
LLAMA_CPP_KV_PAD = 256
# Ollama keeps 457 MiB per GPU free (cudaMinimumMemory, discover/gpu.go).
OLLAMA_MIN_FREE_MIB = 457.0
# --- vLLM: what its worker really subtracts before the KV cache ----------------------------------
# vllm/v1/worker/gpu_worker.py (determine_available_memory, memory_profiling): the KV cache gets
#   gpu_memory_utilization x total - weights - activation peak - non-torch memory
#   - CUDA graph memory (profiled before the KV cache is sized, default since vLLM 0.21.0),
# where total is what torch's cudaMemGetInfo reports, not NVML's figure. The activation peak is
# the profile run: one forward pass over --max-num-batched-tokens dummy tokens, then the sampler
# warm-up over min(--max-num-seqs, --max-num-batched-tokens) rows of fp32 logits. The planner
# sets both flags (engines.py) so the model below describes what vLLM will do. Calibration
# points and their sources: tests/data/vllm_startup_reports.yml (bench/plan_accuracy.py).
VLLM_DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
# ggml's Q8_0: 32 int8 values + one fp16 scale per block.
GGUF_Q8_0_BPW = 8.5
# vLLM's MXFP4 MoE layout pads the hidden dimension of expert weights to this multiple.
VLLM_MXFP4_PAD = 256
# What airig passes as --max-num-batched-tokens (vLLM's own default on GPUs under 70 GiB).
VLLM_MAX_NUM_BATCHED_TOKENS = 2048
# Total memory torch sees, per nominal card size in GiB (vLLM's "Free memory on device (x/TOTAL
# GiB)" and "total_gpu_memory" lines): RTX 4090 23.53 (vllm issue logs), RTX 5090 31.37 (vllm
# issue #14452), H100 80 GB 79.19, RTX PRO 6000 Blackwell 95.6. Other sizes: 0.98 x nominal
# (the smallest fraction of these).
VLLM_TORCH_TOTAL_GIB = {24: 23.53, 32: 31.37, 80: 79.19, 96: 95.6}
VLLM_TORCH_TOTAL_FRACTION = 0.98
# Sampler warm-up: about 9.5 fp32 copies of the logits (the logits, softmax, log-softmax and the
# top-k/top-p sort buffers), fitted on the calibration points (Qwen3-8B 1.40 GiB at 256 rows,
# gemma-3-4b 9.96 GiB at 1024 rows); gpt-oss-120b at 1024 rows is held out.
VLLM_SAMPLER_LOGIT_COPIES = 9.5
# Forward pass: per token, the MLP's gate/up output and its activation (3 x FFN width per GPU)
# and about 8 hidden-sized tensors (QKV, attention output, residual, norms), 16-bit.
VLLM_FORWARD_FFN_TENSORS = 3
VLLM_FORWARD_HIDDEN_TENSORS = 8
# Non-torch memory (cuBLAS/attention workspaces): 0.02-0.26 GiB on one GPU in the calibration
# logs (we take 0.25); with tensor parallelism NCCL and the custom all-reduce buffers add about
# 1.7 GiB (1.63, 1.79 and 1.84 GiB logged at TP > 1).
VLLM_NON_TORCH_GIB = 0.25
VLLM_TP_NON_TORCH_GIB = 1.7
# CUDA graphs vLLM captures (default capture sizes up to 512): 0.14-0.71 GiB logged, 0.65-0.71
# on one GPU for 4-8B models; we take the top.
VLLM_CUDA_GRAPH_GIB = 0.71
# The vLLM release airig's vllm role installs (roles/vllm/defaults/main.yml vllm_version; a test
# keeps the two equal): what `airig plan` assumes unless --vllm-version says otherwise.
VLLM_DEFAULT_VERSION = "0.33.0"
# vLLM profiles CUDA graph memory before sizing the KV cache from this release on (earlier ones
# captured graphs after, out of the KV cache's margin) - vllm pull request #20512's release.
VLLM_GRAPHS_PROFILED_SINCE = (0, 21)
# The multimodal encoder profile (vllm/v1/worker/gpu_model_runner.py profile_run): vLLM runs
# the vision tower on as many dummy items as the encoder budget holds (max of
# --max-num-batched-tokens and one item's tokens) and keeps their embeddings in the encoder
# cache while the language model's dummy forward runs. Counted like the forward pass below:
# per patch, 3 x the tower's FFN width and 8 x its width, 16-bit. Not yet compared with a
# published run (tests/data has none with a vision tower): the term is the structure only.
VLLM_ENCODER_FFN_TENSORS = 3
VLLM_ENCODER_HIDDEN_TENSORS = 8
# CPU-only boxes: what the OS and other processes keep. airig's own assumption (no published
# calibration): 4 GiB.
CPU_OS_RESERVE_GIB = 4.0

ENGINES = ("llama_cpp", "vllm", "ollama")


def weights_bytes(model: ModelSpec, quant: QuantFormat) -> float:
    """Bytes of weights for ``model`` stored in ``quant``."""
    total = model.params_b * 1e9
    if quant.scope == "all":
        return total * quant.bpw / 8
    if quant.name == "FP8" and model.fp8_bf16_blocks is not None:
        # Only the MLP layers in FP8, outside the BF16 blocks (models.yml fp8_bf16_blocks).
        embed = min(model.embedding_params_b * 1e9, total)
        attention = model.layers * attention_params_per_layer(model)
        mlp = total - embed - attention
        mlp_fp8 = mlp * (model.layers - model.fp8_bf16_blocks) / model.layers
        return mlp_fp8 * quant.bpw / 8 + (total - mlp_fp8) * 2
    if quant.scope == "linear":
        embed = min((model.embedding_params_b + model.vision_params_b) * 1e9, total)
        return (total - embed) * quant.bpw / 8 + embed * 2
    if model.expert_params_b is None:
        raise CatalogError(
            f"format {quant.name} quantizes only MoE experts and {model.name} is not a MoE "
            "model with expert_params_b; pick another format"
        )
    experts = model.expert_params_b * 1e9
    return experts * quant.bpw / 8 + (total - experts) * 2


def engine_weights_bytes(engine: str, model: ModelSpec, quant: QuantFormat) -> float:
    """Bytes of weights as ``engine`` holds them in GPU memory. vLLM's MXFP4 MoE kernels pad
    the experts' hidden dimension to a multiple of 256 (gpt-oss: 2880 to 3072): vLLM 0.14.1
    reports "Model loading took 64.38 GiB" for gpt-oss-120b on one H100 (vllm issue #33155),
    the padded experts plus the BF16 rest. llama.cpp and Ollama read GGUF files, whose MXFP4
    models keep the rest in Q8_0."""
    weights = weights_bytes(model, quant)
    if quant.name != "MXFP4" or not model.expert_params_b:
        return weights
    experts = model.expert_params_b * 1e9
    if engine == "vllm":
        padded = math.ceil(model.hidden / VLLM_MXFP4_PAD) * VLLM_MXFP4_PAD / model.hidden
        return weights + experts * quant.bpw / 8 * (padded - 1)
    # GGUF (llama.cpp, Ollama): the non-expert tensors are Q8_0, not BF16 (the released
    # gpt-oss GGUFs: 12.1 GB for 20B, 63.4 GB for 120B; llmfit pull request #1059).
    return experts * quant.bpw / 8 + (model.params_b * 1e9 - experts) * GGUF_Q8_0_BPW / 8


def kv_bytes_per_token_layer(model: ModelSpec, kv_dtype: str) -> float:
    """K and V for one token in one attention layer: 2 x kv_heads x head_dim x bytes. With
    multi-head latent attention (DeepSeek-V2 paper, section 2.1.2: "only c_t^KV and k_t^R need
    to be cached", (d_c + d_h^R) x l elements per token) one latent of kv_lora_rank +
    qk_rope_head_dim values serves every head: DeepSeek-V3's 512 + 64 = 576 values, against
    2 x 128 x 192 = 49152 for the same heads without MLA."""
    if model.kv_lora_rank is not None:
        return (model.kv_lora_rank + (model.qk_rope_head_dim or 0)) * kv_element_bytes(kv_dtype)
    return 2 * model.kv_heads * model.head_dim * kv_element_bytes(kv_dtype)


def kv_element_bytes(kv_dtype: str) -> float:
    try:
        return KV_BYTES[kv_dtype]
    except KeyError:
        raise InputError(
            f"--kv-dtype: unknown KV cache type '{kv_dtype}'; allowed: {', '.join(KV_BYTES)}"
        ) from None


def swa_cells(model: ModelSpec, engine: str | None = None, ubatch: int | None = None) -> int:
    """Tokens a sliding-window layer keeps per sequence (0: no sliding window). llama.cpp (and
    Ollama's llama.cpp runner) keep the window plus one micro-batch, padded to 256 cells: 768
    for gpt-oss's 128 at the default -ub 512; "creating SWA KV cache, size = 1280 cells" at
    -ub 1024 (ollama issue #16480)."""
    window = model.sliding_window or 0
    if window and engine in ("llama_cpp", "ollama"):
        cells = window + (ubatch or LLAMA_CPP_UBATCH)
        window = math.ceil(cells / LLAMA_CPP_KV_PAD) * LLAMA_CPP_KV_PAD
    return window


def kv_cache_bytes(
    model: ModelSpec,
    kv_dtype: str,
    context: int,
    sequences: int,
    engine: str | None = None,
    ubatch: int | None = None,
) -> float:
    """KV cache for ``sequences`` concurrent sequences of ``context`` tokens each.

    2 x layers x kv_heads x head_dim x bytes x context x sequences, where sliding-window layers
    hold at most ``swa_cells`` tokens and layers without attention (hybrid models) none; those
    keep ``linear_state_bytes`` per sequence instead (Gated DeltaNet's state does not grow with
    the context, but every user has one).
    """
    per_layer = kv_bytes_per_token_layer(model, kv_dtype)
    swa_layers = model.sliding_window_layers if model.sliding_window else 0
    full_layers = model.attention_layers - swa_layers
    window = min(context, swa_cells(model, engine, ubatch) or context)
    tokens = per_layer * (full_layers * context + swa_layers * window)
    return (tokens + model.linear_state_bytes) * sequences


def cuda_context_bytes(sm_count: int | None) -> float:
    sms = sm_count or DEFAULT_SM_COUNT
    return (_CTX_BASE_MIB + _CTX_SLOPE_MIB * sms) * MIB


def overhead_bytes_per_device(
    engine: str,
    *,
    device_capacity: float,
    gpu: bool,
    sm_count: int | None,
    devices: int,
    gpu_memory_utilization: float,
    model: ModelSpec | None = None,
    max_num_seqs: int = 1,
    max_num_batched_tokens: int = VLLM_MAX_NUM_BATCHED_TOKENS,
    cuda_graphs: bool = True,
) -> float:
    """Memory an engine needs on each device besides weights and KV cache. For vLLM: the share
    outside --gpu-memory-utilization of what torch sees, plus what its profiling subtracts."""
    if not gpu:
        return CPU_OS_RESERVE_GIB * GIB + LLAMA_CPP_MARGIN_MIB * MIB
    if engine == "llama_cpp":
        return cuda_context_bytes(sm_count) + LLAMA_CPP_MARGIN_MIB * MIB
    if engine == "ollama":
        return cuda_context_bytes(sm_count) + OLLAMA_MIN_FREE_MIB * MIB
    if engine == "vllm":
        if model is None:
            raise InputError("vLLM's overhead needs the model it serves")
        terms = vllm_overhead_terms(
            model,
            devices=devices,
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens,
            cuda_graphs=cuda_graphs,
        )
        seen = vllm_torch_total_bytes(device_capacity)
        return device_capacity - gpu_memory_utilization * seen + sum(terms.values())
    raise InputError(f"--engine: unknown engine '{engine}'; allowed: {', '.join(ENGINES)}")


def llama_cpp_layer_split(layers: int, devices: int) -> list[int]:
    """Repeating layers per GPU under llama.cpp's --split-mode layer with equal shares: it
    splits layers + 1 (the output layer counts as one) evenly and puts the output layer on the
    last GPU, so 80 layers on two GPUs land as 41 and 39 + output (xorbitsai/inference issue
    #1202: CUDA0 16854 MiB, CUDA1 16893 MiB) and 48 layers as 25 and 23 + output."""
    counts = [0] * devices
    for layer in range(layers):
        counts[min(devices - 1, layer * devices // (layers + 1))] += 1
    return counts


def expert_bytes_per_layer(model: ModelSpec, quant: QuantFormat) -> float:
    """Bytes of one MoE layer's routed experts in ``quant`` (0 for a dense model)."""
    if not model.expert_params_b:
        return 0.0
    bits = quant.bpw if quant.scope in ("all", "experts") else 16.0
    return model.expert_params_b * 1e9 * bits / 8 / model.expert_layers


def llama_cpp_device_weights(
    model: ModelSpec,
    quant: QuantFormat,
    engine_weights: float,
    devices: int,
    cpu_moe_layers: int = 0,
) -> list[float]:
    """Weight bytes on each GPU for llama.cpp: the token embedding stays in host memory
    (llama.cpp's "CUDA_Host buffer": 510.47 MiB for Qwen1.5-72B Q3_K_M = 152064 x 8192 at Q3_K's
    3.4375 bpw, xorbitsai/inference issue #1202), the output matrix sits with the last layers.
    With --n-cpu-moe N the routed experts of the first N layers stay in host memory too
    (llama.cpp's common/arg.cpp: "keep all Mixture of Experts weights of the first N layers in
    the CPU"); the first layers are the first GPU's."""
    bits = quant.bpw if quant.scope == "all" else 16.0
    matrix = model.vocab * model.hidden * bits / 8
    output = matrix  # its own tensor, or llama.cpp's duplicate of a tied embedding
    per_layer = max(engine_weights - matrix - (0 if model.tied_embeddings else output), 0.0)
    per_layer /= model.layers
    counts = llama_cpp_layer_split(model.layers, devices)
    experts = expert_bytes_per_layer(model, quant)
    dense_first = model.layers - model.expert_layers  # DeepSeek/GLM: dense layers come first
    out = []
    first = 0
    for i, n in enumerate(counts):
        on_cpu = sum(
            1
            for layer in range(first, first + n)
            if layer < cpu_moe_layers and layer >= dense_first
        )
        first += n
        out.append(n * per_layer - on_cpu * experts + (output if i == devices - 1 else 0.0))
    return out


def llama_cpp_host_bytes(model: ModelSpec, quant: QuantFormat, cpu_moe_layers: int) -> float:
    """Host memory llama.cpp holds for the weights: the token embedding and, with --n-cpu-moe,
    the experts of those layers."""
    bits = quant.bpw if quant.scope == "all" else 16.0
    moe_on_cpu = max(0, min(cpu_moe_layers, model.layers) - (model.layers - model.expert_layers))
    return model.vocab * model.hidden * bits / 8 + moe_on_cpu * expert_bytes_per_layer(model, quant)


def layer_share(layers: int, devices: int) -> float:
    """Largest fraction of layers one device holds when layers are split as evenly as possible."""
    return math.ceil(layers / devices) / layers


def vllm_torch_total_bytes(nvml_capacity: float) -> float:
    """What torch (cudaMemGetInfo) reports as a card's total, from NVML's visible capacity."""
    nominal = round(nvml_capacity / NVML_VISIBLE_FRACTION / GIB)
    gib = VLLM_TORCH_TOTAL_GIB.get(nominal, nominal * VLLM_TORCH_TOTAL_FRACTION)
    return gib * GIB


def attention_params_per_layer(model: ModelSpec) -> float:
    """Q and O projections (heads x head_dim wide), K and V (kv_heads x head_dim wide)."""
    return 2 * model.hidden * (model.heads + model.kv_heads) * model.head_dim


def ffn_width(model: ModelSpec) -> float:
    """Active MLP width per token: the layer's MLP parameters (active ones for MoE) over
    3 x hidden (gate, up, down), after attention and embeddings are taken out."""
    if model.ffn_active is not None:
        return float(model.ffn_active)
    params = (model.active_params_b or model.params_b) * 1e9 - model.embedding_params_b * 1e9
    mlp = params / model.layers - attention_params_per_layer(model)
    return max(mlp, 0.0) / (3 * model.hidden)


def vllm_rope_cache_bytes(model: ModelSpec) -> float:
    """vLLM's RoPE cos/sin tables: one per distinct RoPE, positions x rotary dim in the model's
    16-bit dtype, on every GPU, counted in "Model loading took" (vLLM's rotary_embedding:
    linear scaling builds max_position_embeddings x factor positions). Gemma 3's global layers
    (factor 8: 1048576 positions) and local ones (131072) at head dim 256 take 0.56 GiB: the gap
    between gemma-3-4b's 8.01 GiB of BF16 weights and the 8.58 GiB vLLM reported (vllm pull
    request #21489). A few MiB for most models."""
    positions = model.rope_cache_positions or (model.max_context,)
    return float(sum(positions) * model.head_dim * 2)


def vllm_version_tuple(version: str) -> tuple[int, ...]:
    """'0.33.0' -> (0, 33, 0); a bad value is an InputError naming the flag."""
    parts = version.strip().lstrip("v").split(".")
    if not 2 <= len(parts) <= 4 or not all(p.isdigit() and len(p) <= 4 for p in parts):
        raise InputError(
            f"--vllm-version: bad value {version!r}: expected a release such as "
            f"{VLLM_DEFAULT_VERSION}"
        )
    return tuple(int(p) for p in parts)


def vllm_graphs_subtracted(version: str | None, enforce_eager: bool) -> bool:
    """Whether vLLM takes CUDA graph memory out before it sizes the KV cache: never with
    --enforce-eager (no graphs are captured), and only from VLLM_GRAPHS_PROFILED_SINCE on."""
    if enforce_eager:
        return False
    return vllm_version_tuple(version or VLLM_DEFAULT_VERSION) >= VLLM_GRAPHS_PROFILED_SINCE


def vllm_encoder_bytes(model: ModelSpec, max_num_batched_tokens: int) -> float:
    """The multimodal encoder's profile peak: the vision tower's forward over the dummy items
    the encoder budget holds, plus their embeddings in the encoder cache (see the constants)."""
    if not model.vision_layers or not model.vision_tokens:
        return 0.0
    budget = max(max_num_batched_tokens, model.vision_tokens)
    items = max(1, budget // model.vision_tokens)
    patches = items * (model.vision_patches or model.vision_tokens)
    forward = (
        patches
        * 2
        * (
            VLLM_ENCODER_FFN_TENSORS * model.vision_ffn
            + VLLM_ENCODER_HIDDEN_TENSORS * model.vision_hidden
        )
    )
    cache = items * model.vision_tokens * model.hidden * 2
    return float(forward + cache)


def vllm_overhead_terms(
    model: ModelSpec,
    *,
    devices: int,
    max_num_seqs: int,
    max_num_batched_tokens: int = VLLM_MAX_NUM_BATCHED_TOKENS,
    sampler_warmup: bool = True,
    cuda_graphs: bool = True,
) -> dict[str, float]:
    """Bytes vLLM's profiling subtracts per GPU besides the checkpoint's weights: activation
    peak (the forward pass, the sampler warm-up or the multimodal encoder, whichever is
    largest), non-torch memory, CUDA graphs when this vLLM subtracts them (see the constants
    above for sources) and the RoPE tables (which vLLM reports inside its weights figure)."""
    tokens = max_num_batched_tokens
    forward = (
        tokens
        * 2
        * (
            VLLM_FORWARD_FFN_TENSORS * ffn_width(model) / devices
            + VLLM_FORWARD_HIDDEN_TENSORS * model.hidden
        )
    )
    rows = min(max_num_seqs, tokens)
    sampler = VLLM_SAMPLER_LOGIT_COPIES * rows * model.vocab * 4 if sampler_warmup else 0.0
    non_torch = VLLM_NON_TORCH_GIB + (VLLM_TP_NON_TORCH_GIB if devices > 1 else 0.0)
    encoder = vllm_encoder_bytes(model, tokens) / devices
    return {
        "activation": max(forward, sampler, encoder),
        "non_torch": non_torch * GIB,
        "cuda_graphs": VLLM_CUDA_GRAPH_GIB * GIB if cuda_graphs else 0.0,
        "rope_cache": vllm_rope_cache_bytes(model),
    }
