"""Weights from real bits per weight, against published file sizes (3% bound)."""

from __future__ import annotations

import pytest
import yaml

from airig.errors import CatalogError
from airig.planner import Catalog
from airig.planner.memory import weights_bytes
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
