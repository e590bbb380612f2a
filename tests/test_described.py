"""Models planned from their own description (issue 28): published config.json files, each
family's KV cache from its own formula, quantization_config formats, GGUF headers, the engines'
flags and MoE experts in system RAM."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from gguf import GGUFWriter
from typer.testing import CliRunner

from airig.cli import app
from airig.errors import InputError
from airig.planner import described
from airig.planner import memory as mem
from airig.planner.catalog import CONFIGS_DIR, Catalog
from airig.planner.fit import PlanRequest, plan
from tests.conftest import profile

ROOT = Path(__file__).resolve().parents[1]
SOURCES = yaml.safe_load((CONFIGS_DIR / "SOURCES.yml").read_text(encoding="utf-8"))["configs"]


def config(name: str) -> described.Described:
    return described.from_hf_config(CONFIGS_DIR / name)


def plan_json(runner: CliRunner, *args: str) -> list[dict]:
    result = runner.invoke(app, ["plan", "--json", *args])
    assert result.exit_code == 0, result.output
    rows: list[dict] = json.loads(result.output)
    return rows


# Published totals (billions) each stored config must reproduce (SOURCES.yml `checked`), and the
# share the count may be off: shapes give the matrices, not every bias and norm.
PUBLISHED_B = {
    "deepseek-v3.json": 671.0,  # DeepSeek-V3 report: 671B without the 14B MTP module
    "kimi-k2-instruct.json": 1026.0,  # 1.03T on Moonshot's model page
    "qwen3-next-80b-a3b-instruct.json": 80.0,
    "gemma-3-27b-it.json": 27.4,
    "llama-4-scout-17b-16e-instruct.json": 109.0,
    "glm-4.5.json": 355.0 - 2.6,  # 355B with its MTP layer (one 5120-wide MoE layer, ~2.6B)
    "gpt-oss-120b.json": 116.83,
}


@pytest.mark.parametrize(("file", "billions"), sorted(PUBLISHED_B.items()))
def test_parameters_counted_from_each_config_match_the_publisher(
    file: str, billions: float
) -> None:
    assert config(file).model.params_b == pytest.approx(billions, rel=0.012)


def test_every_stored_config_has_its_source_and_loads_into_the_catalog(catalog: Catalog) -> None:
    files = {p.name for p in CONFIGS_DIR.glob("*.json")}
    assert files == {e["file"] for e in SOURCES}
    for entry in SOURCES:
        assert entry["source"].startswith("https://huggingface.co/"), entry
        assert entry["source"].endswith("/config.json"), entry
        if entry.get("catalog", True):
            model = catalog.model(entry["name"])
            assert entry["source"] in model.note
    names = {m.name for m in catalog.models}
    for family in ("deepseek-v3", "kimi-k2-instruct", "qwen3-next-80b-a3b", "gemma-3-27b"):
        assert family in names
    assert {"llama-4-scout", "glm-4.5", "qwen3.5-27b"} <= names


def test_mla_caches_one_latent_per_token_and_layer() -> None:
    """DeepSeek-V2 paper, section 2.1.2: MLA caches (d_c + d_h^R) x l elements per token:
    kv_lora_rank 512 + qk_rope_head_dim 64 = 576 values per layer, for all 128 heads together,
    against 2 x n_h x d_h x l for standard attention."""
    for file in ("deepseek-v3.json", "kimi-k2-instruct.json"):
        model = config(file).model
        assert model.mla
        per_token = mem.kv_bytes_per_token_layer(model, "bf16")
        assert per_token == (512 + 64) * 2
        kv = mem.kv_cache_bytes(model, "bf16", 8192, 3, "vllm")
        assert kv == 61 * 576 * 2 * 8192 * 3
    dsv3 = config("deepseek-v3.json").model
    standard = 2 * dsv3.heads * dsv3.head_dim * 2  # 128 heads x 192 dims, K and V
    assert standard / mem.kv_bytes_per_token_layer(dsv3, "bf16") == pytest.approx(85.33, rel=1e-3)


def test_mla_latent_is_replicated_on_every_tensor_parallel_gpu(runner: CliRunner) -> None:
    rows = plan_json(
        runner, "--hf-config", str(CONFIGS_DIR / "deepseek-v3.json"), "-p", "team",
        "--context", "65536", "--concurrency", "2",
    )  # fmt: skip
    row = rows[0]
    kv_one_copy = 61 * 576 * 2 * 65536 * 2 / 1e9
    assert row["kv_cache_gb"] == pytest.approx(4 * kv_one_copy, rel=1e-6)
    assert any("whole latent cache" in n for n in row["notes"])


def test_hybrid_linear_attention_counts_full_layers_per_token_and_state_per_user() -> None:
    """Qwen3-Next: one full-attention layer in four (full_attention_interval 4) holds
    2 x 2 KV heads x 256 per token; each Gated DeltaNet layer holds, per sequence, the
    convolution's last 3 inputs over q, k, v (2 x 16 x 128 + 32 x 128 channels) and one
    128 x 128 state per value head (32), at 16 bits (its config names no float32 state)."""
    model = config("qwen3-next-80b-a3b-instruct.json").model
    assert (model.layers, model.attention_layers) == (48, 12)
    conv = (2 * 16 * 128 + 32 * 128) * 3 * 2
    recurrent = 32 * 128 * 128 * 2
    assert model.linear_state_bytes == 36 * (conv + recurrent)
    kv = mem.kv_cache_bytes(model, "bf16", 4096, 5, "vllm")
    assert kv == (12 * 2 * 2 * 256 * 2 * 4096 + model.linear_state_bytes) * 5
    # Qwen3.5 keeps its recurrent state in float32 (mamba_ssm_dtype)
    q35 = config("qwen3.5-27b-fp8.json").model
    assert q35.attention_layers == 16
    conv35 = (2 * 16 * 128 + 48 * 128) * 3 * 2
    assert q35.linear_state_bytes == 48 * (conv35 + 48 * 128 * 128 * 4)


def test_hybrid_state_lowers_the_users_that_fit(catalog: Catalog) -> None:
    model = config("qwen3-next-80b-a3b-instruct.json").model
    stateless = replace(model, name="no-state", linear_state_bytes=0.0)
    rows = plan(
        PlanRequest(models=(model, stateless), quants=("Q4_K_M",), profiles=(profile("home"),)),
        catalog.with_models([model, stateless]),
    )
    users = {r.model: r.max_concurrency for r in rows}
    assert users[model.name] < users["no-state"]
    state_per_gpu = model.linear_state_bytes / 2  # two GPUs, layers split
    assert users["no-state"] - users[model.name] >= 1
    assert state_per_gpu > 10 * 2**20


def test_mixed_local_and_global_layers() -> None:
    """Gemma 3: five local layers (1024-token window) to one global; gpt-oss alternates 128-token
    sliding and full layers (layer_types); Llama 4 Scout attends within 8192-token chunks on
    its RoPE layers and globally on every fourth (no_rope_layers)."""
    gemma = config("gemma-3-27b-it.json").model
    assert (gemma.sliding_window, gemma.sliding_window_layers, gemma.layers) == (1024, 52, 62)
    kv = mem.kv_cache_bytes(gemma, "bf16", 32768, 1, "vllm")
    assert kv == 2 * 16 * 128 * 2 * (10 * 32768 + 52 * 1024)
    oss = config("gpt-oss-120b.json").model
    assert (oss.sliding_window, oss.sliding_window_layers) == (128, 18)
    scout = config("llama-4-scout-17b-16e-instruct.json").model
    assert (scout.sliding_window, scout.sliding_window_layers) == (8192, 36)


def test_config_model_agrees_with_the_calibrated_catalog_entry(catalog: Catalog) -> None:
    """gpt-oss-120b from its config against the hand-written entry that bench/plan_accuracy.py
    checks against vLLM: same shape, experts within 0.5%, and the MXFP4 checkpoint within 1% of
    the 60.8 GiB OpenAI publishes."""
    got = config("gpt-oss-120b.json")
    entry = catalog.model("gpt-oss-120b")
    for field in ("layers", "hidden", "heads", "kv_heads", "head_dim", "vocab", "sliding_window"):
        assert getattr(got.model, field) == getattr(entry, field), field
    assert got.model.expert_params_b == pytest.approx(entry.expert_params_b, rel=5e-3)
    (checkpoint,) = got.quants
    weights = mem.weights_bytes(got.model, checkpoint)
    assert weights == pytest.approx(60.8 * mem.GIB, rel=0.01)


def test_moe_with_shared_experts_and_dense_leading_layers() -> None:
    dsv3 = config("deepseek-v3.json").model
    assert dsv3.expert_layers == 58  # first_k_dense_replace 3
    assert dsv3.expert_params_b == pytest.approx(58 * 256 * 3 * 7168 * 2048 / 1e9)
    assert dsv3.ffn_active == 8 * 2048 + 2048  # 8 routed + 1 shared expert
    glm = config("glm-4.5.json").model
    assert (glm.expert_layers, glm.ffn_active) == (89, 8 * 1536 + 1536)
    scout = config("llama-4-scout-17b-16e-instruct.json").model
    assert scout.ffn_active == 8192 + 8192  # one routed expert and the shared one


def test_vision_tower_is_counted_and_profiled_by_vllm() -> None:
    gemma = config("gemma-3-27b-it.json")
    assert gemma.model.vision_params_b == pytest.approx(0.42, abs=0.02)  # "400M SigLIP"
    assert (gemma.model.vision_patches, gemma.model.vision_tokens) == (4096, 256)
    encoder = mem.vllm_encoder_bytes(gemma.model, 2048)
    patches = 8 * 4096  # 2048 budget tokens / 256 per image
    assert encoder == patches * 2 * (3 * 4304 + 8 * 1152) + 8 * 256 * 5376 * 2
    text_only = config("deepseek-v3.json").model
    assert mem.vllm_encoder_bytes(text_only, 2048) == 0.0
    scout = config("llama-4-scout-17b-16e-instruct.json").model
    assert scout.vision_tokens == 576 // 4  # pixel_shuffle_ratio 0.5


def test_checkpoint_formats_keep_what_their_config_leaves_16_bit() -> None:
    dsv3 = config("deepseek-v3.json")
    (fp8,) = dsv3.quants
    assert fp8.name == described.CHECKPOINT
    assert "128x128 blocks" in fp8.source
    assert "lm head" in fp8.source and "embed" in fp8.source
    oss = config("gpt-oss-120b.json")
    (mx,) = oss.quants
    assert "attention" in mx.source  # modules_to_not_convert: model.layers.*.self_attn


def _quantized(q: dict[str, object]) -> described.Described:
    base = json.loads((CONFIGS_DIR / "glm-4.5.json").read_text(encoding="utf-8"))
    return described.model_from_config({**base, "quantization_config": q}, Path("glm.json"))


@pytest.mark.parametrize(
    ("q", "bits"),
    [
        ({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}, 4 + 20 / 128),
        ({"quant_method": "gptq", "bits": 4, "group_size": 32, "sym": True}, 4 + 20 / 32),
        ({"quant_method": "auto-round", "bits": 4, "group_size": 128}, 4 + 20 / 128),
        ({"quant_method": "fp8", "activation_scheme": "dynamic"}, 8.0),
        ({"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16}, 4.5),
        (
            {
                "quant_method": "compressed-tensors",
                "format": "nvfp4-pack-quantized",
                "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "float"}}},
            },
            4.5,
        ),
    ],
)
def test_quantization_configs(q: dict[str, object], bits: float) -> None:
    got = _quantized(q)
    (fmt,) = got.quants
    glm = got.model
    dense_16 = (glm.embedding_params_b + glm.vision_params_b) * 1e9
    weights = mem.weights_bytes(glm, fmt)
    # everything but the embedding, output head, router and norms at `bits`
    assert weights > dense_16 * 2
    low = glm.params_b * 1e9 - dense_16
    assert weights == pytest.approx(low * bits / 8 + dense_16 * 2, rel=0.003)


def test_ignored_modules_stay_16_bit() -> None:
    q = {"quant_method": "fp8", "ignore": ["re:.*self_attn.*", "lm_head"]}
    with_ignore = _quantized(q)
    without = _quantized({"quant_method": "fp8"})
    assert with_ignore.quants[0].bpw > without.quants[0].bpw
    assert "attention" in with_ignore.quants[0].source


def test_unknown_fields_are_named_never_dropped(tmp_path: Path, runner: CliRunner) -> None:
    data = json.loads((CONFIGS_DIR / "glm-4.5.json").read_text(encoding="utf-8"))
    data["index_topk"] = 2048  # GLM-5's sparse attention: nothing the planner counts
    path = tmp_path / "GLM-next"
    path.mkdir()
    (path / "config.json").write_text(json.dumps(data), encoding="utf-8")
    rows = plan_json(runner, "--hf-config", str(path), "-p", "team", "-q", "Q4_K_M")
    assert rows[0]["model"] == "glm-next"
    assert any("not use: index_topk" in n for n in rows[0]["notes"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON (line 1"),
        ('["a list"]', "holds no JSON object"),
        ('{"num_hidden_layers": 2}', "no hidden_size"),
        (
            '{"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, '
            '"vocab_size": 10, "quantization_config": {"quant_method": "hqq"}}',
            "quant_method 'hqq' is not one the planner knows",
        ),
        (
            '{"hidden_size": 64, "num_hidden_layers": -2, "num_attention_heads": 4, '
            '"vocab_size": 10}',
            "num_hidden_layers: bad value -2",
        ),
    ],
)
def test_bad_configs_say_what_is_wrong(
    tmp_path: Path, runner: CliRunner, content: str, message: str
) -> None:
    path = tmp_path / "config.json"
    path.write_text(content, encoding="utf-8")
    result = runner.invoke(app, ["plan", "--hf-config", str(path), "-p", "team"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_and_binary_configs(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(app, ["plan", "--hf-config", str(tmp_path), "-p", "team"])
    assert result.exit_code == 2 and "config.json does not exist" in result.output
    blob = tmp_path / "blob.json"
    blob.write_bytes(b"\x1f\x8b\x08\x00\xff\xfe")
    result = runner.invoke(app, ["plan", "--hf-config", str(blob), "-p", "team"])
    assert result.exit_code == 2 and "not a text file" in result.output


# --- GGUF ----------------------------------------------------------------------------------------


def _write_moe_gguf(path: Path) -> dict[str, int]:
    """A small MoE GGUF (qwen3moe layout) written by the gguf package, with mixed tensor types."""
    hidden, layers, experts, ff, vocab = 64, 3, 4, 32, 256
    w = GGUFWriter(str(path), "qwen3moe")
    w.add_name("tiny moe")
    w.add_context_length(32768)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_key_length(16)
    w.add_expert_count(experts)
    w.add_expert_used_count(2)
    w.add_file_type(1)  # MOSTLY_F16
    counts = {"params": 0, "bytes": 0, "experts": 0}

    def add(name: str, array: np.ndarray) -> None:
        w.add_tensor(name, array)
        counts["params"] += array.size
        counts["bytes"] += array.nbytes
        if "_exps" in name:
            counts["experts"] += array.size

    add("token_embd.weight", np.zeros((vocab, hidden), dtype=np.float16))
    add("output.weight", np.zeros((vocab, hidden), dtype=np.float16))
    add("output_norm.weight", np.ones(hidden, dtype=np.float32))
    for b in range(layers):
        add(f"blk.{b}.attn_q.weight", np.zeros((64, hidden), dtype=np.float16))
        add(f"blk.{b}.attn_k.weight", np.zeros((32, hidden), dtype=np.float16))
        add(f"blk.{b}.attn_v.weight", np.zeros((32, hidden), dtype=np.float16))
        add(f"blk.{b}.attn_output.weight", np.zeros((hidden, 64), dtype=np.float16))
        add(f"blk.{b}.ffn_gate_inp.weight", np.zeros((experts, hidden), dtype=np.float32))
        for part in ("gate", "up"):
            add(f"blk.{b}.ffn_{part}_exps.weight", np.zeros((experts, ff, hidden), np.float16))
        add(f"blk.{b}.ffn_down_exps.weight", np.zeros((experts, hidden, ff), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return counts


def test_gguf_header_and_tensor_table_are_read_as_written(tmp_path: Path) -> None:
    path = tmp_path / "tiny-moe.gguf"
    counts = _write_moe_gguf(path)
    got = described.from_gguf(path)
    model, (fmt,) = got.model, got.quants
    assert model.params_b * 1e9 == counts["params"]
    assert mem.weights_bytes(model, fmt) == pytest.approx(counts["bytes"], rel=1e-12)
    assert model.expert_params_b is not None
    assert model.expert_params_b * 1e9 == counts["experts"]
    assert (model.layers, model.hidden, model.heads, model.kv_heads, model.head_dim) == (
        3, 64, 4, 2, 16,
    )  # fmt: skip
    assert model.vocab == 256 and not model.tied_embeddings
    assert "F16" in fmt.source and "F32" in fmt.source


def test_the_tiny_test_models_gguf_plans_as_its_catalog_entry(
    tmp_path: Path, runner: CliRunner
) -> None:
    """tests/mirror/tiny_gguf.py (the container scenarios' model) written here with a small
    vocabulary GGUF made for the test: its header and tensors give the catalog entry's shape,
    and the bytes are what the file's tensors hold."""
    sys.path.insert(0, str(ROOT / "tests" / "mirror"))
    import tiny_gguf

    vocab_path = tmp_path / "vocab.gguf"
    tokens = ["<eos>", "<bos>", *tiny_gguf.REPLY_TOKENS, *[f"t{i}" for i in range(26)]]
    v = GGUFWriter(str(vocab_path), "llama")
    v.add_tokenizer_model("gpt2")
    v.add_tokenizer_pre("qwen2")
    v.add_token_list(tokens)
    v.add_token_types([1] * len(tokens))
    v.add_token_merges(["Ġ f"])
    v.add_eos_token_id(0)
    v.add_bos_token_id(1)
    v.write_header_to_file()
    v.write_kv_data_to_file()
    v.write_tensors_to_file()
    v.close()
    template = tmp_path / "t.jinja"
    template.write_text("{{ messages }}", encoding="utf-8")
    out = tiny_gguf.write(vocab_path, template, tmp_path / "tiny.gguf")
    got = described.from_gguf(out)
    entry = Catalog.default().model("airig-tiny")
    for field in ("layers", "hidden", "heads", "kv_heads", "head_dim", "max_context"):
        assert getattr(got.model, field) == getattr(entry, field), field
    assert got.model.vocab == len(tokens)
    h, ff, layers = tiny_gguf.HIDDEN, tiny_gguf.FF, tiny_gguf.LAYERS
    params = 2 * len(tokens) * h + layers * (4 * h * h + 3 * ff * h) + (2 * layers + 1) * h
    assert got.model.params_b * 1e9 == params
    rows = plan_json(runner, "--gguf", str(out), "-p", "cpu")
    assert rows[0]["quant"] == described.GGUF and rows[0]["fits"]


def test_not_a_gguf_is_refused_with_a_sentence(tmp_path: Path, runner: CliRunner) -> None:
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"GGUF\x00" * 3)
    result = runner.invoke(app, ["plan", "--gguf", str(bad), "-p", "home"])
    assert result.exit_code == 2, result.output
    assert "is not a GGUF file it can read" in result.output
    result = runner.invoke(app, ["plan", "--gguf", str(tmp_path / "none.gguf"), "-p", "home"])
    assert result.exit_code == 2 and "is not a file" in result.output


# --- the engines' flags -------------------------------------------------------------------------


def _vllm(runner: CliRunner, *flags: str) -> dict:
    rows = plan_json(runner, "-m", "llama-3.1-8b", "-q", "BF16", "-p", "team", *flags)
    return rows[0]


def test_vllm_cuda_graphs_follow_the_version_and_eager_flag(runner: CliRunner) -> None:
    default = _vllm(runner)
    eager = _vllm(runner, "--enforce-eager")
    old = _vllm(runner, "--vllm-version", "0.20.2")
    graphs_gb = mem.VLLM_CUDA_GRAPH_GIB * mem.GIB / 1e9
    assert default["per_gpu_need_gb"] - eager["per_gpu_need_gb"] == pytest.approx(graphs_gb, 1e-4)
    assert old["per_gpu_need_gb"] == eager["per_gpu_need_gb"]
    bad = runner.invoke(app, ["plan", "-m", "llama-3.1-8b", "--vllm-version", "latest\n"])
    assert bad.exit_code == 2 and "--vllm-version: bad value" in bad.output


def test_vllm_batched_tokens_and_seqs_size_the_profile_run(runner: CliRunner) -> None:
    small = _vllm(runner, "--max-num-batched-tokens", "2048")
    large = _vllm(runner, "--max-num-batched-tokens", "16384")
    assert large["per_gpu_need_gb"] > small["per_gpu_need_gb"]
    seqs = _vllm(runner, "--max-num-seqs", "1024")
    assert seqs["per_gpu_need_gb"] > small["per_gpu_need_gb"]  # sampler warm-up over 1024 rows


def test_vllm_parallel_layouts(runner: CliRunner) -> None:
    tp4 = _vllm(runner)
    tp2dp2 = _vllm(runner, "-tp", "2", "-dp", "2", "--concurrency", "4")
    assert any("tensor parallel 2, data parallel 2" in n for n in tp2dp2["notes"])
    assert tp2dp2["weights_gb"] == tp4["weights_gb"]
    assert tp2dp2["total_gb"] > tp4["total_gb"]  # two copies of the weights
    too_many = _vllm(runner, "-tp", "4", "-pp", "2")
    assert not too_many["fits"] and "needs 8 GPUs; profile team has 4" in too_many["reason"]
    moe = ["-m", "qwen3-30b-a3b", "-q", "BF16", "-p", "team", "-tp", "2", "-dp", "2"]
    plain = plan_json(runner, *moe)[0]
    ep = plan_json(runner, *moe, "--enable-expert-parallel")[0]
    assert ep["per_gpu_need_gb"] < plain["per_gpu_need_gb"]
    assert any("expert parallel over 4 GPUs" in n for n in ep["notes"])


def test_vllm_default_version_is_the_roles(catalog: Catalog) -> None:
    defaults = yaml.safe_load((ROOT / "roles/vllm/defaults/main.yml").read_text(encoding="utf-8"))
    assert defaults["vllm_version"] == mem.VLLM_DEFAULT_VERSION


def test_bad_engine_flags_are_refused(runner: CliRunner) -> None:
    for flags, message in (
        (["--max-num-batched-tokens", "0"], "--max-num-batched-tokens: bad value 0"),
        (["-tp", "0"], "--tensor-parallel-size: bad value 0"),
        (["--n-cpu-moe", "-1"], "--n-cpu-moe: bad value -1"),
    ):
        result = runner.invoke(app, ["plan", "-m", "llama-3.1-8b", *flags])
        assert result.exit_code == 2, result.output
        assert message in result.output


# --- MoE experts in system RAM ------------------------------------------------------------------


def test_home_plans_gpt_oss_120b_with_experts_in_ram(runner: CliRunner) -> None:
    """Users run gpt-oss-120b on two 32 GB cards with llama.cpp's --n-cpu-moe: the plan keeps
    the fewest layers' experts in RAM that let the busiest GPU fit, and checks host.ram_gb."""
    rows = plan_json(runner, "-p", "home", "-m", "gpt-oss-120b", "-q", "Q4_K_M")
    row = rows[0]
    assert row["fits"], row["reason"]
    layers = row["cpu_moe_layers"]
    assert 0 < layers < 36
    assert row["per_gpu_need_gb"] <= row["per_gpu_capacity_gb"]
    assert 0 < row["host_ram_need_gb"] < 96
    assert any("system RAM" in n and "slows" in n for n in row["notes"])
    fewer = plan_json(
        runner, "-p", "home", "-m", "gpt-oss-120b", "-q", "Q4_K_M", "--n-cpu-moe", str(layers - 1)
    )[0]
    assert not fewer["fits"]
    none = plan_json(runner, "-p", "home", "-m", "gpt-oss-120b", "-q", "Q4_K_M", "--n-cpu-moe", "0")
    assert not none[0]["fits"] and none[0]["cpu_moe_layers"] is None
    table = runner.invoke(app, ["plan", "-p", "home", "-m", "gpt-oss-120b", "-q", "Q4_K_M"])
    assert f"--n-cpu-moe {layers}" in table.output


def test_experts_in_ram_must_fit_the_hosts_ram(runner: CliRunner) -> None:
    row = plan_json(runner, "-p", "home", "-m", "qwen3-235b-a22b", "-q", "Q4_K_M")[0]
    assert not row["fits"]
    assert "would need" in row["reason"] and "home has 96 GB" in row["reason"]
    # the row is the GPUs-only plan (what the box would need without offload), not a half plan
    assert row["cpu_moe_layers"] is None and row["total_gb"] > row["capacity_gb"]
    forced = plan_json(
        runner, "-p", "home", "-m", "qwen3-235b-a22b", "-q", "Q4_K_M", "--n-cpu-moe", "80"
    )[0]
    assert not forced["fits"] and forced["cpu_moe_layers"] == 80
    assert "experts in RAM need" in forced["reason"]


def test_dense_models_are_never_offloaded(runner: CliRunner) -> None:
    row = plan_json(runner, "-p", "home", "-m", "llama-3.1-70b", "-q", "Q8_0")[0]
    assert not row["fits"] and row["cpu_moe_layers"] is None


def test_gguf_moe_offload_uses_the_files_expert_tensors(tmp_path: Path) -> None:
    model = config("qwen3-next-80b-a3b-instruct.json").model
    assert mem.expert_bytes_per_layer(model, Catalog.default().quant("Q8_0")) == pytest.approx(
        model.expert_params_b * 1e9 * 8.5 / 8 / 48  # type: ignore[operator]
    )
    with pytest.raises(InputError):
        described.from_gguf(tmp_path)
