"""Weights from real bits per weight, against published file sizes (3% bound)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import yaml

from airig.errors import CatalogError
from airig.planner import Catalog
from airig.planner.memory import engine_weights_bytes, weights_bytes
from tests.conftest import DATA

PUBLISHED = yaml.safe_load((DATA / "published_sizes.yml").read_text())["sizes"]


@pytest.mark.parametrize("entry", PUBLISHED, ids=lambda e: f"{e['model']}-{e['quant']}")
def test_weights_within_3_percent_of_published_size(catalog: Catalog, entry: dict) -> None:
    got = weights_bytes(catalog.model(entry["model"]), catalog.quant(entry["quant"])) / 1e9
    assert got == pytest.approx(entry["gb"], rel=0.03), f"{got:.2f} GB vs {entry['gb']} GB"


def test_q4_k_m_is_not_4_bits(catalog: Catalog) -> None:
    q4 = catalog.quant("Q4_K_M")
    assert 4.5 < q4.bpw < 5.0


def test_linear_scope_keeps_embeddings_at_16_bit(catalog: Catalog) -> None:
    model = catalog.model("llama-3.1-8b")
    embed = 128256 * 4096 * 2  # untied: embedding and output head
    expected = (model.params_b * 1e9 - embed) * 4.16 / 8 + embed * 2
    assert weights_bytes(model, catalog.quant("AWQ")) == pytest.approx(expected)


def test_expert_format_on_a_dense_model_is_refused(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="only MoE experts"):
        weights_bytes(catalog.model("llama-3.1-70b"), catalog.quant("MXFP4"))


def test_quant_lookup_is_case_insensitive_and_suggests(catalog: Catalog) -> None:
    assert catalog.quant("q4_k_m").name == "Q4_K_M"
    with pytest.raises(CatalogError, match=r"did you mean 'Q4_K_M'"):
        catalog.quant("Q4_KM")


def test_meta_405b_fp8_keeps_attention_and_two_blocks_in_bf16(catalog: Catalog) -> None:
    """Issue 12 item 2: Meta's FP8 checkpoint quantizes only the MLPs outside the first and last
    block (Llama 3 paper, section 6.2); vLLM loads 57.752 GiB per GPU at TP 8 (vllm issue
    #6746). Every linear at 8 bit would be 47.7 GiB (-17%)."""
    model, fp8 = catalog.model("llama-3.1-405b"), catalog.quant("FP8")
    per_gpu = weights_bytes(model, fp8) / 8 / 2**30
    assert per_gpu == pytest.approx(57.752, rel=0.02)
    plain = dataclasses.replace(model, fp8_bf16_blocks=None)
    assert weights_bytes(plain, fp8) / 8 / 2**30 == pytest.approx(47.7, rel=0.01)


@pytest.mark.parametrize(("name", "gb"), [("gpt-oss-20b", 12.1), ("gpt-oss-120b", 63.4)])
def test_gguf_mxfp4_keeps_the_rest_in_q8_0(catalog: Catalog, name: str, gb: float) -> None:
    """Issue 12 item 2: the released gpt-oss GGUFs are 12.1 and 63.4 GB (llmfit pull request
    #1059): experts MXFP4, the rest Q8_0, not BF16 (+14% before)."""
    model, mxfp4 = catalog.model(name), catalog.quant("MXFP4")
    for engine in ("llama_cpp", "ollama"):
        assert engine_weights_bytes(engine, model, mxfp4) / 1e9 == pytest.approx(gb, rel=0.01)


@pytest.mark.parametrize("blocks", [-1, 127, True, 1.5])
def test_fp8_bf16_blocks_is_checked(tmp_path: Path, blocks: object) -> None:
    entry = {
        "name": "odd",
        "params_b": 1.0,
        "layers": 126,
        "hidden": 64,
        "heads": 8,
        "kv_heads": 8,
        "head_dim": 8,
        "max_context": 1024,
        "fp8_bf16_blocks": blocks,
    }
    path = tmp_path / "models.yml"
    path.write_text(yaml.safe_dump({"models": [entry]}))
    with pytest.raises(CatalogError, match="fp8_bf16_blocks: bad value"):
        Catalog.default().with_model_file(path)


def test_the_tiny_test_model_is_counted_as_its_writer_writes_it(catalog: Catalog) -> None:
    """The container scenarios compare the plan with llama-server's buffers for the catalog's
    airig-tiny: its entry must be what tests/mirror/tiny_gguf.py writes (every matrix F16, Qwen2's
    vocabulary, as Qwen3 8B's), and a person browsing the catalog does not see it."""
    sys.path.insert(0, str(Path(__file__).parent / "mirror"))
    import tiny_gguf

    tiny = catalog.model("airig-tiny")
    h, ff, layers = tiny_gguf.HIDDEN, tiny_gguf.FF, tiny_gguf.LAYERS
    vocab = catalog.model("qwen3-8b").vocab
    params = 2 * vocab * h + layers * (4 * h * h + 3 * ff * h) + (2 * layers + 1) * h
    assert tiny.params_b * 1e9 == pytest.approx(params, rel=1e-12)
    assert (tiny.layers, tiny.hidden, tiny.heads, tiny.kv_heads, tiny.head_dim, tiny.vocab) == (
        layers,
        h,
        tiny_gguf.HEADS,
        tiny_gguf.HEADS,
        h // tiny_gguf.HEADS,
        vocab,
    )
    assert weights_bytes(tiny, catalog.quant("FP16")) == pytest.approx(2 * params)
    assert "airig-tiny" not in [m.name for m in catalog.models]
