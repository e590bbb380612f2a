"""Fit decisions, per-GPU splitting, max context and max concurrency."""

from __future__ import annotations

import dataclasses

import pytest

from airig.errors import InputError
from airig.planner import Catalog, ModelSpec, PlanRequest, PlanRow, plan
from airig.planner import memory as mem
from tests.conftest import profile


def one(catalog: Catalog, model: str | ModelSpec, quant: str, prof: str, **kw: object) -> PlanRow:
    spec = catalog.model(model) if isinstance(model, str) else model
    request = PlanRequest(models=(spec,), quants=(quant,), profiles=(profile(prof),), **kw)  # type: ignore[arg-type]
    rows = plan(request, catalog.with_models([spec]) if isinstance(model, ModelSpec) else catalog)
    assert len(rows) == 1
    return rows[0]


def test_totals_add_up(catalog: Catalog) -> None:
    row = one(catalog, "llama-3.1-70b", "Q4_K_M", "home", context=8192)
    assert row.total_gb == pytest.approx(
        row.weights_gb + row.kv_cache_gb + row.overhead_gb, abs=0.002
    )
    assert row.headroom_gb == pytest.approx(row.capacity_gb - row.total_gb, abs=0.002)
    assert row.capacity_gb == pytest.approx(2 * 32607 * 2**20 / 1e9, abs=0.001)
    assert row.fits and row.engine == "llama_cpp"


def test_llama_cpp_overhead_per_gpu(catalog: Catalog) -> None:
    row = one(catalog, "llama-3.1-8b", "Q4_K_M", "home")
    ctx_mib = 107 + (555 - 107) / (188 - 34) * (170 - 34)  # CUDA context at 170 SMs
    per_gpu = (ctx_mib + 1024) * 2**20 / 1e9
    assert row.overhead_gb == pytest.approx(2 * per_gpu, abs=0.002)


def test_vllm_tensor_parallel_splits_evenly(catalog: Catalog) -> None:
    row = one(catalog, "llama-3.1-70b", "FP8", "business", context=4096)
    weights = mem.weights_bytes(catalog.model("llama-3.1-70b"), catalog.quant("FP8"))
    kv = mem.kv_cache_bytes(catalog.model("llama-3.1-70b"), "fp16", 4096, 1)
    cap = 32 * 2**30 * mem.NVML_VISIBLE_FRACTION
    # vLLM on an RTX 5090 sees 31.37 GiB; at TP 8 with one sequence and 2048 batched tokens:
    # activation = the forward pass (28672 FFN / 8 x 3 + 8 x 8192 hidden, 16-bit, per token),
    # non-torch 0.25 + 1.7 GiB (tensor parallel), CUDA graphs 0.71 GiB, the RoPE table on every
    # GPU (131072 positions x head dim 128, 16-bit).
    ffn = mem.ffn_width(catalog.model("llama-3.1-70b"))
    assert ffn == pytest.approx(28672, rel=0.01)  # Llama 3.1 70B's intermediate_size
    activation = 2048 * 2 * (3 * ffn / 8 + 8 * 8192)
    rope = 131072 * 128 * 2
    overhead = cap - 0.9 * 31.37 * 2**30 + activation + (0.25 + 1.7 + 0.71) * 2**30 + rope
    assert row.per_gpu_need_gb == pytest.approx((weights / 8 + kv / 8 + overhead) / 1e9, abs=0.002)


def test_vllm_replicates_kv_heads_when_tp_exceeds_them(catalog: Catalog) -> None:
    # Qwen3 235B has 4 KV heads: at TP 8 each GPU keeps one, so the KV total doubles.
    vllm = one(catalog, "qwen3-235b-a22b", "FP8", "business")
    layer = one(catalog, "qwen3-235b-a22b", "Q4_K_M", "business")
    assert vllm.kv_cache_gb == pytest.approx(2 * layer.kv_cache_gb, rel=0.01)


def test_tp_that_does_not_divide_heads_is_refused(catalog: Catalog) -> None:
    odd = dataclasses.replace(catalog.model("llama-3.1-8b"), name="odd-heads", heads=36, kv_heads=6)
    row = one(catalog, odd, "FP16", "business")
    assert not row.fits
    assert "does not divide 36 attention heads" in row.reason
    assert row.max_context_tokens == 0


def test_busiest_gpu_decides_even_when_total_fits(catalog: Catalog) -> None:
    # 3 layers over 2 GPUs: one GPU holds 2/3 of the weights. 60 GB of weights fit in 68 GB
    # in total but not 40 GB on one 34 GB card.
    lumpy = dataclasses.replace(
        catalog.model("llama-3.1-70b"), name="lumpy", params_b=60.0, layers=3
    )
    row = one(catalog, lumpy, "Q8_0", "home")
    assert row.total_gb < row.capacity_gb
    assert not row.fits
    assert "busiest GPU" in row.reason and "the total fits" in row.reason
    assert row.per_gpu_need_gb is not None and row.per_gpu_capacity_gb is not None
    assert row.per_gpu_need_gb > row.per_gpu_capacity_gb


def test_too_big_says_how_much(catalog: Catalog) -> None:
    row = one(catalog, "llama-3.1-405b", "FP16", "home")
    assert not row.fits and row.headroom_gb < 0
    assert f"needs {row.total_gb:.1f} of {row.capacity_gb:.1f} GB" in row.reason


@pytest.mark.parametrize(
    ("model", "quant", "prof", "conc"),
    [
        ("llama-3.1-70b", "Q4_K_M", "home", 1),
        ("llama-3.1-70b", "Q4_K_M", "home", 4),
        ("qwen3-32b", "FP8", "quad-5090", 8),
        ("gpt-oss-120b", "MXFP4", "team", 16),
        ("llama-3.1-405b", "Q4_K_M", "business", 1),
    ],
)
def test_max_context_is_the_edge_of_fitting(
    catalog: Catalog, model: str, quant: str, prof: str, conc: int
) -> None:
    row = one(catalog, model, quant, prof, concurrency=conc, context=1024)
    ctx = row.max_context_tokens
    assert ctx is not None and ctx > 0
    at = one(catalog, model, quant, prof, concurrency=conc, context=ctx)
    assert at.fits
    if ctx < catalog.model(model).max_context:
        # per_gpu values are rounded to MB in rows: compare on the unrounded edge instead
        over = one(catalog, model, quant, prof, concurrency=conc, context=ctx + 64)
        assert not over.fits


def test_max_concurrency_is_the_edge_of_fitting(catalog: Catalog) -> None:
    row = one(catalog, "llama-3.1-70b", "Q4_K_M", "home", context=16384)
    users = row.max_concurrency
    assert users is not None and users >= 1
    assert one(catalog, "llama-3.1-70b", "Q4_K_M", "home", context=16384, concurrency=users).fits
    assert not one(
        catalog, "llama-3.1-70b", "Q4_K_M", "home", context=16384, concurrency=users + 1
    ).fits


def test_more_users_means_less_context_each(catalog: Catalog) -> None:
    c1 = one(catalog, "llama-3.1-70b", "Q4_K_M", "home", concurrency=1).max_context_tokens
    c4 = one(catalog, "llama-3.1-70b", "Q4_K_M", "home", concurrency=4).max_context_tokens
    assert c1 is not None and c4 is not None and 0 < c4 < c1


def test_context_beyond_the_model_does_not_fit(catalog: Catalog) -> None:
    row = one(catalog, "gemma-2-27b", "Q4_K_M", "team", context=16384)
    assert not row.fits and "exceeds" in row.reason


def test_cpu_profile_uses_ram(catalog: Catalog) -> None:
    row = one(catalog, "qwen3-8b", "Q4_K_M", "cpu")
    assert row.gpus == 0 and row.capacity_gb == 32.0 and row.fits
    vllm = one(catalog, "qwen3-8b", "FP16", "cpu", engine="vllm")
    assert not vllm.fits and "vLLM needs a GPU" in vllm.reason


def test_engine_that_cannot_load_the_format(catalog: Catalog) -> None:
    row = one(catalog, "qwen3-8b", "Q4_K_M", "team", engine="vllm")
    assert not row.fits and "vllm does not load Q4_K_M" in row.reason


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("context", 0, "--context"),
        ("context", -5, "--context"),
        ("concurrency", 0, "--concurrency"),
        ("method", "guess", "--method"),
        ("engine", "tgi", "--engine"),
        ("kv_dtype", "int2", "--kv-dtype"),
        ("gpu_memory_utilization", 1.5, "--gpu-memory-utilization"),
    ],
)
def test_bad_request_values(catalog: Catalog, field: str, value: object, match: str) -> None:
    request = PlanRequest(
        models=(catalog.model("qwen3-8b"),),
        quants=("Q4_K_M",),
        profiles=(profile("home"),),
        **{field: value},
    )  # type: ignore[arg-type]
    with pytest.raises(InputError, match=match):
        plan(request, catalog)


def test_only_impossible_combinations_is_an_error(catalog: Catalog) -> None:
    request = PlanRequest(
        models=(catalog.model("qwen3-8b"),), quants=("MXFP4",), profiles=(profile("home"),)
    )
    with pytest.raises(InputError, match="only MoE experts"):
        plan(request, catalog)


@pytest.mark.parametrize("size", [0.0, -70.0, float("nan")])
def test_params_must_be_positive(catalog: Catalog, size: float) -> None:
    with pytest.raises(InputError, match="--params"):
        catalog.model_by_size(size)


def test_params_borrows_the_nearest_shape(catalog: Catalog) -> None:
    model = catalog.model_by_size(70)
    assert model.estimated_from == "llama-3.1-70b"
    assert model.params_b == 70 and model.layers == 80
