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
# Ollama keeps 457 MiB per GPU free (cudaMinimumMemory, discover/gpu.go).
OLLAMA_MIN_FREE_MIB = 457.0
# vLLM: non-torch memory 0.33 GiB and activation peak 1.0-1.8 GiB on an RTX 5090 (vllm issue
# #14452; we take the top of the range), NCCL buffers 200-300 MB per GPU at TP > 1 (club-3090
# docs/KV_MATH.md; top of the range). vLLM only ever uses gpu_memory_utilization x total
# (default 0.9, vLLM's engine arguments); the rest counts as overhead here.
VLLM_NON_TORCH_GIB = 0.33
VLLM_ACTIVATION_PEAK_GIB = 1.8
VLLM_NCCL_GB = 0.3
VLLM_DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
# CPU-only boxes: what the OS and other processes keep. airig's own assumption (no published
# calibration): 4 GiB.
CPU_OS_RESERVE_GIB = 4.0

ENGINES = ("llama_cpp", "vllm", "ollama")


def weights_bytes(model: ModelSpec, quant: QuantFormat) -> float:
    """Bytes of weights for ``model`` stored in ``quant``."""
    total = model.params_b * 1e9
    if quant.scope == "all":
        return total * quant.bpw / 8
    if quant.scope == "linear":
        embed = min(model.embedding_params_b * 1e9, total)
        return (total - embed) * quant.bpw / 8 + embed * 2
    if model.expert_params_b is None:
        raise CatalogError(
            f"format {quant.name} quantizes only MoE experts and {model.name} is not a MoE "
            "model with expert_params_b; pick another format"
        )
    experts = model.expert_params_b * 1e9
    return experts * quant.bpw / 8 + (total - experts) * 2


def kv_bytes_per_token_layer(model: ModelSpec, kv_dtype: str) -> float:
    """K and V for one token in one attention layer: 2 x kv_heads x head_dim x bytes."""
    return 2 * model.kv_heads * model.head_dim * kv_element_bytes(kv_dtype)


def kv_element_bytes(kv_dtype: str) -> float:
    try:
        return KV_BYTES[kv_dtype]
    except KeyError:
        raise InputError(
            f"--kv-dtype: unknown KV cache type '{kv_dtype}'; allowed: {', '.join(KV_BYTES)}"
        ) from None


def kv_cache_bytes(model: ModelSpec, kv_dtype: str, context: int, sequences: int) -> float:
    """KV cache for ``sequences`` concurrent sequences of ``context`` tokens each.

    2 x layers x kv_heads x head_dim x bytes x context x sequences, where sliding-window layers
    hold at most ``sliding_window`` tokens and layers without attention (hybrid models) none.
    """
    per_layer = kv_bytes_per_token_layer(model, kv_dtype)
    swa_layers = model.sliding_window_layers if model.sliding_window else 0
    full_layers = model.attention_layers - swa_layers
    window = min(context, model.sliding_window or context)
    return per_layer * (full_layers * context + swa_layers * window) * sequences


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
) -> float:
    """Memory an engine needs on each device besides weights and KV cache."""
    if not gpu:
        return CPU_OS_RESERVE_GIB * GIB + LLAMA_CPP_MARGIN_MIB * MIB
    if engine == "llama_cpp":
        return cuda_context_bytes(sm_count) + LLAMA_CPP_MARGIN_MIB * MIB
    if engine == "ollama":
        return cuda_context_bytes(sm_count) + OLLAMA_MIN_FREE_MIB * MIB
    if engine == "vllm":
        unused = (1.0 - gpu_memory_utilization) * device_capacity
        nccl = VLLM_NCCL_GB * GB if devices > 1 else 0.0
        return unused + (VLLM_NON_TORCH_GIB + VLLM_ACTIVATION_PEAK_GIB) * GIB + nccl
    raise InputError(f"--engine: unknown engine '{engine}'; allowed: {', '.join(ENGINES)}")


def layer_share(layers: int, devices: int) -> float:
    """Largest fraction of layers one device holds when layers are split as evenly as possible."""
    return math.ceil(layers / devices) / layers
