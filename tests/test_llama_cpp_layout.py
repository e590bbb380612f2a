"""Issue 12 item 2: where llama.cpp really puts a model's memory, each rule with the public
number it matches."""

from __future__ import annotations

import pytest

from airig.planner import Catalog
from airig.planner import memory as mem


@pytest.mark.parametrize(
    ("layers", "devices", "want"),
    [(48, 2, [25, 23]), (80, 2, [41, 39]), (126, 4, [32, 32, 32, 30]), (32, 1, [32])],
)
def test_layer_split_counts_the_output_layer(layers: int, devices: int, want: list[int]) -> None:
    assert mem.llama_cpp_layer_split(layers, devices) == want


def test_two_equal_gpus_hold_nearly_equal_bytes(catalog: Catalog) -> None:
    """80 layers on two RTX 3090: CUDA0 16854.41 MiB (41 layers), CUDA1 16892.66 MiB (39 layers
    + output), token embedding 510.47 MiB in CUDA_Host (xorbitsai/inference issue #1202)."""
    model, quant = catalog.model("llama-3.1-70b"), catalog.quant("Q3_K_M")
    weights = mem.engine_weights_bytes("llama_cpp", model, quant)
    first, second = mem.llama_cpp_device_weights(model, quant, weights, 2)
    assert first == pytest.approx(second, rel=0.03)
    embedding = model.vocab * model.hidden * quant.bpw / 8
    assert first + second == pytest.approx(weights - embedding)


def test_the_token_embedding_stays_in_host_memory(catalog: Catalog) -> None:
    model, quant = catalog.model("qwen3-8b"), catalog.quant("Q4_K_M")
    weights = mem.engine_weights_bytes("llama_cpp", model, quant)
    (gpu,) = mem.llama_cpp_device_weights(model, quant, weights, 1)
    assert weights - gpu == pytest.approx(151936 * 4096 * quant.bpw / 8)


def test_sliding_window_layers_keep_window_plus_a_micro_batch(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gpt-oss (window 128): 768 cells at the default -ub 512; "creating SWA KV cache, size =
    1280 cells" with -ub 1024 (ollama issue #16480). vLLM keeps the window."""
    model = catalog.model("gpt-oss-20b")
    assert mem.swa_cells(model, "llama_cpp") == 768
    assert mem.swa_cells(model, "vllm") == 128
    monkeypatch.setattr(mem, "LLAMA_CPP_UBATCH", 1024)
    assert mem.swa_cells(model, "ollama") == 1280
    monkeypatch.undo()
    per_layer = mem.kv_bytes_per_token_layer(model, "fp16")
    got = mem.kv_cache_bytes(model, "fp16", 8192, 1, "llama_cpp")
    assert got == per_layer * (12 * 8192 + 12 * 768)
