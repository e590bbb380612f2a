"""KV cache = 2 x layers x kv_heads x head_dim x bytes x context x sequences."""

from __future__ import annotations

import pytest

from airig.errors import InputError
from airig.planner import Catalog
from airig.planner.memory import kv_cache_bytes


def test_llama_70b_fp16_by_hand(catalog: Catalog) -> None:
    # 2 (K and V) x 80 layers x 8 KV heads x 128 dims x 2 bytes = 327,680 bytes per token
    per_token = 2 * 80 * 8 * 128 * 2
    assert per_token == 327_680
    got = kv_cache_bytes(catalog.model("llama-3.1-70b"), "fp16", 8192, 4)
    assert got == per_token * 8192 * 4 == 10_737_418_240


@pytest.mark.parametrize(
    ("dtype", "bytes_per"),
    [("fp16", 2), ("bf16", 2), ("fp8", 1), ("q8_0", 34 / 32), ("q4_0", 18 / 32)],
)
def test_kv_dtypes(catalog: Catalog, dtype: str, bytes_per: float) -> None:
    got = kv_cache_bytes(catalog.model("llama-3.1-8b"), dtype, 1000, 1)
    assert got == pytest.approx(2 * 32 * 8 * 128 * bytes_per * 1000)


def test_sliding_window_layers_stop_growing(catalog: Catalog) -> None:
    model = catalog.model("gpt-oss-120b")  # 36 layers, 18 of them with a 128-token window
    per_layer_token = 2 * 8 * 64 * 2
    got = kv_cache_bytes(model, "fp16", 65536, 2)
    assert got == per_layer_token * (18 * 65536 + 18 * 128) * 2
    short = kv_cache_bytes(model, "fp16", 100, 1)
    assert short == per_layer_token * 36 * 100


def test_hybrid_model_counts_only_attention_layers(catalog: Catalog) -> None:
    model = catalog.model("qwen3.5-122b-a10b")  # 12 of 48 layers keep a KV cache
    assert kv_cache_bytes(model, "fp16", 1000, 1) == 2 * 12 * 2 * 256 * 2 * 1000


def test_unknown_kv_dtype_names_the_option(catalog: Catalog) -> None:
    with pytest.raises(InputError, match=r"--kv-dtype.*fp8"):
        kv_cache_bytes(catalog.model("llama-3.1-8b"), "int3", 10, 1)
