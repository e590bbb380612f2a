"""Models planned from their own description: a Hugging Face ``config.json`` (with its
``quantization_config``) or a GGUF file's header and tensor table (issue 28).

Each family's memory facts come from the config's own fields:
- dense and grouped-query attention: ``num_key_value_heads`` x ``head_dim`` per layer;
- sliding-window and mixed local/global layers: ``layer_types``, ``sliding_window_pattern``
  (Gemma 3), Llama 4's chunked local attention (``attention_chunk_size``, ``no_rope_layers``);
- multi-head latent attention (DeepSeek V2/V3, Kimi K2): ``kv_lora_rank`` + ``qk_rope_head_dim``;
- hybrid linear attention (Qwen3-Next, Qwen3.5): ``layer_types`` / ``full_attention_interval``,
  the Gated DeltaNet layers' fixed state per sequence from ``linear_*`` fields;
- mixtures of experts with shared experts and dense leading layers;
- a vision tower from ``vision_config``.
Parameters are counted from the shapes (SwiGLU MLPs, the projections each attention kind has),
so a model's size is the config's own, not a borrowed one. Fields the planner does not use and
does not know to be irrelevant to memory are named in the answer.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airig.errors import InputError
from airig.planner.catalog import ModelSpec, QuantFormat

CONFIG_MAX_BYTES = 4 << 20


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Name of the format a quantized checkpoint is planned in, and of a GGUF file's own.
CHECKPOINT = "checkpoint"
GGUF = "gguf"
# Fields that change nothing the planner counts (token ids, training and sampling settings,
# norms' epsilons, RoPE's base frequency, routing details that keep the shapes).
IRRELEVANT = _names(
    """
    architectures model_type auto_map transformers_version torch_dtype dtype bos_token_id
    eos_token_id pad_token_id image_token_id image_token_index video_token_id
    vision_start_token_id vision_end_token_id boi_token_index eoi_token_index
    attention_dropout attention_bias hidden_dropout dropout initializer_range hidden_act
    hidden_activation rms_norm_eps layer_norm_eps norm_eps use_cache rope_theta
    rope_local_base_freq rope_interleave partial_rotary_factor pretraining_tp aux_loss_alpha
    router_aux_loss_coef output_router_logits router_jitter_noise norm_topk_prob scoring_func
    topk_method topk_group n_group routed_scaling_factor seq_aux ep_size use_qk_norm
    qk_layernorm attn_logit_softcapping final_logit_softcapping query_pre_attn_scalar
    cache_implementation attn_scale attn_temperature_tuning floor_scale for_llm_compressor
    moe_layer_freq swiglu_limit mlp_bias attention_k_eq_v _name_or_path initial_context_length
    mamba_ssm_dtype decoder_sparse_step output_gate_type use_sliding_window max_window_layers
    rope_scaling rope_parameters mrope_section mrope_interleaved is_causal generation_config
    language_model_only mm_tokens_per_image mtp_num_hidden_layers mtp_use_dedicated_embeddings
    num_nextn_predict_layers attn_output_gate sliding_window_pattern layer_types
    full_attention_interval no_rope_layers attention_chunk_size moe_layers
    interleave_moe_layer_step mlp_only_layers first_k_dense_replace head_dim
    num_key_value_heads text_config vision_config quantization_config tie_word_embeddings
    router_dtype
    """
)
# Config fields read below (a field in neither set is reported as not used).
USED = _names(
    """
    hidden_size num_hidden_layers num_attention_heads vocab_size max_position_embeddings
    intermediate_size intermediate_size_mlp moe_intermediate_size n_routed_experts num_experts
    num_local_experts num_experts_per_tok experts_per_token n_shared_experts
    shared_expert_intermediate_size kv_lora_rank q_lora_rank qk_rope_head_dim qk_nope_head_dim
    v_head_dim sliding_window linear_num_key_heads linear_num_value_heads linear_key_head_dim
    linear_value_head_dim linear_conv_kernel_dim
    """
)
GATED_ATTENTION_TYPES = {"qwen3_next", "qwen3_next_text"}
# What transformers' config class fills in when a published config.json leaves a field out
# (the class defaults in transformers' configuration_<model>.py): Gemma 3's configs omit these.
MODEL_TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "gemma3_text": {
        "vocab_size": 262208,
        "max_position_embeddings": 131072,
        "sliding_window_pattern": 6,
        "head_dim": 256,
        "sliding_window": 4096,
        "tie_word_embeddings": True,
    },
}


@dataclass(frozen=True)
class Described:
    model: ModelSpec
    quants: tuple[QuantFormat, ...]
    notes: tuple[str, ...]


def _name(raw: str) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", raw.strip().lower()).strip("-.")
    return name[:80] or "model"


def read_config(path: Path) -> tuple[dict[str, Any], Path]:
    """The config.json at ``path`` (a file, or a directory holding one)."""
    file = path / "config.json" if path.is_dir() else path
    try:
        if file.stat().st_size > CONFIG_MAX_BYTES:
            raise InputError(f"--hf-config: {file} is over {CONFIG_MAX_BYTES >> 20} MiB")
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"--hf-config: {file} does not exist") from None
    except UnicodeDecodeError:
        raise InputError(f"--hf-config: {file} is not a text file (config.json is JSON)") from None
    except OSError as exc:
        raise InputError(f"--hf-config: cannot read {file}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"--hf-config: {file} is not JSON (line {exc.lineno}: {exc.msg})"
        ) from None
    if not isinstance(data, dict):
        raise InputError(f"--hf-config: {file} holds no JSON object")
    return data, file


class _Fields:
    """A config's text fields (text_config merged over the top level), remembering which were
    read."""

    def __init__(self, config: dict[str, Any], file: Path) -> None:
        text = config.get("text_config")
        self.top = config
        self.text: dict[str, Any] = {**config, **text} if isinstance(text, dict) else config
        self.file = file
        self.read: set[str] = set()
        defaults = MODEL_TYPE_DEFAULTS.get(str(self.text.get("model_type", "")), {})
        self.defaulted = sorted(k for k in defaults if self.text.get(k) is None)
        self.text = {**defaults, **self.text}

    def get(self, *keys: str, default: Any = None) -> Any:
        for key in keys:
            self.read.add(key)
            if self.text.get(key) is not None:
                return self.text[key]
        return default

    def count(self, *keys: str, default: int | None = None, minimum: int = 1) -> int:
        value = self.get(*keys)
        if value is None:
            if default is None:
                raise InputError(
                    f"--hf-config: {self.file}: no {' or '.join(keys)}: is it a model's "
                    "config.json?"
                )
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InputError(
                f"--hf-config: {self.file}: {keys[0]}: bad value {value!r}: expected a whole "
                f"number >= {minimum}"
            )
        return value

    def unused(self) -> list[str]:
        keys = set(self.text) | set(self.top)
        return sorted(k for k in keys - self.read - IRRELEVANT - USED if not k.startswith("_"))


@dataclass
class _Params:
    embed: float = 0.0
    lm_head: float = 0.0
    attention: float = 0.0
    dense_mlp: float = 0.0
    shared_experts: float = 0.0
    routed_experts: float = 0.0
    router: float = 0.0
    vision: float = 0.0
    norms: float = 0.0

    @property
    def total(self) -> float:
        return float(sum(vars(self).values()))


def _layer_kinds(f: _Fields, layers: int) -> tuple[list[str], list[str]]:
    """Each layer's attention: full, sliding, linear; and notes on how that was read."""
    types = f.get("layer_types")
    if isinstance(types, list) and len(types) == layers:
        kinds = []
        for t in types:
            t = str(t)
            windowed = "sliding" in t or "chunk" in t
            kinds.append("linear" if "linear" in t else "sliding" if windowed else "full")
        return kinds, []
    interval = f.get("full_attention_interval")
    if isinstance(interval, int) and interval > 0 and f.get("linear_num_value_heads"):
        return ["full" if (i + 1) % interval == 0 else "linear" for i in range(layers)], []
    pattern = f.get("sliding_window_pattern")
    if isinstance(pattern, int) and pattern > 0 and f.get("sliding_window"):
        return ["full" if (i + 1) % pattern == 0 else "sliding" for i in range(layers)], []
    chunk = f.get("attention_chunk_size")
    no_rope = f.get("no_rope_layers")
    if isinstance(chunk, int) and isinstance(no_rope, list) and len(no_rope) == layers:
        # Llama 4: RoPE layers attend within chunks of attention_chunk_size, NoPE layers globally
        return ["sliding" if r else "full" for r in no_rope], [
            f"chunked local attention ({chunk} tokens) counted as a window of that size"
        ]
    window = f.get("sliding_window")
    if isinstance(window, int) and window > 0 and f.get("use_sliding_window") is not False:
        return ["sliding"] * layers, []
    return ["full"] * layers, []


def _moe_layer_count(f: _Fields, layers: int) -> int:
    explicit = f.get("moe_layers")
    if isinstance(explicit, list):
        return len(explicit)
    dense = f.get("first_k_dense_replace", default=0)
    step = f.get("interleave_moe_layer_step", default=1)
    only_mlp = f.get("mlp_only_layers", default=[])
    moe = [i for i in range(layers) if i >= dense and (i + 1) % max(step, 1) == 0]
    return len([i for i in moe if i not in (only_mlp if isinstance(only_mlp, list) else [])])


def _vision(f: _Fields, hidden: int) -> tuple[dict[str, int], float, list[str]]:
    vision = f.top.get("vision_config")
    if not isinstance(vision, dict):
        return {}, 0.0, []
    width = vision.get("hidden_size") or vision.get("embed_dim") or 0
    depth = vision.get("num_hidden_layers") or vision.get("depth") or 0
    ffn = vision.get("intermediate_size") or 4 * width
    patch = vision.get("patch_size") or 14
    if not all(isinstance(v, int) and v > 0 for v in (width, depth, ffn, patch)):
        return {}, 0.0, ["vision_config without hidden_size/num_hidden_layers: tower not counted"]
    image = vision.get("image_size")
    out = vision.get("out_hidden_size") or vision.get("vision_output_dim") or width
    merge = vision.get("spatial_merge_size") or 1
    # Per layer: QKV and output (4 x width^2), the MLP (2 or 3 x width x FFN: 2 for the ViT
    # towers these configs name), and the projector into the language model.
    params = depth * (4 * width * width + 2 * width * ffn) + 3 * patch * patch * width
    params += out * merge * merge * hidden if out else width * hidden
    notes = [f"vision tower from vision_config: {params / 1e9:.2f} B parameters, kept 16-bit"]
    shape = {"vision_hidden": width, "vision_ffn": ffn, "vision_layers": depth}
    if isinstance(image, int) and image > 0:
        patches = (image // patch) ** 2
        tokens = f.top.get("mm_tokens_per_image")
        ratio = vision.get("pixel_shuffle_ratio")
        if not isinstance(tokens, int):
            shrink = merge * merge
            if isinstance(ratio, int | float) and 0 < ratio < 1:
                shrink = round(1 / (ratio * ratio))
            tokens = max(1, patches // shrink)
        shape |= {"vision_patches": patches, "vision_tokens": tokens}
    else:
        notes.append("vision_config has no image_size: vLLM's encoder profile is not counted")
    return shape, float(params), notes


def _attention(f: _Fields, hidden: int, heads: int, kv_heads: int, head_dim: int) -> float:
    if f.get("kv_lora_rank") is not None:
        rank = f.count("kv_lora_rank")
        rope = f.count("qk_rope_head_dim")
        nope = f.count("qk_nope_head_dim")
        v = f.count("v_head_dim")
        q_rank = f.get("q_lora_rank")
        q = (
            hidden * q_rank + q_rank * heads * (nope + rope)
            if q_rank
            else hidden * heads * (nope + rope)
        )
        return float(q + hidden * (rank + rope) + rank * heads * (nope + v) + heads * v * hidden)
    gate = 2 if f.get("attn_output_gate") or f.get("model_type") in GATED_ATTENTION_TYPES else 1
    return float(hidden * heads * head_dim * (gate + 1) + 2 * hidden * kv_heads * head_dim)


def _linear_attention(f: _Fields, hidden: int) -> tuple[float, float]:
    """Gated DeltaNet: parameters of one layer and its state per sequence in bytes (the
    convolution's last kernel-1 inputs over the q, k and v channels at 16 bit, and one
    key x value matrix per value head at mamba_ssm_dtype, float32 in Qwen3.5's config)."""
    k_heads = f.count("linear_num_key_heads")
    v_heads = f.count("linear_num_value_heads")
    k_dim = f.count("linear_key_head_dim")
    v_dim = f.count("linear_value_head_dim")
    kernel = f.count("linear_conv_kernel_dim", default=4)
    keys, values = k_heads * k_dim, v_heads * v_dim
    conv = 2 * keys + values
    params = hidden * (2 * keys + 2 * values + 2 * v_heads) + conv * kernel + values * hidden
    state_bytes = 4 if str(f.get("mamba_ssm_dtype", default="")) == "float32" else 2
    state = conv * (kernel - 1) * 2 + v_heads * k_dim * v_dim * state_bytes
    return float(params), float(state)


def model_from_config(config: dict[str, Any], file: Path, name: str | None = None) -> Described:
    f = _Fields(config, file)
    hidden = f.count("hidden_size", "n_embd", "d_model")
    layers = f.count("num_hidden_layers", "n_layer", "num_layers")
    heads = f.count("num_attention_heads", "n_head")
    kv_heads = f.count("num_key_value_heads", default=heads)
    vocab = f.count("vocab_size")
    max_context = f.count("max_position_embeddings", "max_seq_len", default=4096)
    tied = f.top.get("tie_word_embeddings", f.text.get("tie_word_embeddings", True)) is not False
    notes: list[str] = []
    mla = f.get("kv_lora_rank") is not None
    if mla:
        head_dim = f.count("qk_nope_head_dim") + f.count("qk_rope_head_dim")
        kv_heads = heads
    else:
        head_dim = f.count("head_dim", default=hidden // heads)
    if heads % kv_heads:
        raise InputError(
            f"--hf-config: {file}: num_key_value_heads {kv_heads} does not divide "
            f"num_attention_heads {heads}"
        )
    kinds, kind_notes = _layer_kinds(f, layers)
    notes += kind_notes
    p = _Params(embed=float(vocab * hidden), lm_head=0.0 if tied else float(vocab * hidden))
    attention = _attention(f, hidden, heads, kv_heads, head_dim)
    linear_params, linear_state = (0.0, 0.0)
    if "linear" in kinds:
        linear_params, linear_state = _linear_attention(f, hidden)
    p.attention = sum(linear_params if k == "linear" else attention for k in kinds)
    p.norms = float((2 * layers + 1) * hidden)

    experts = f.get("n_routed_experts", "num_experts", "num_local_experts", default=0)
    inter = f.count("intermediate_size", default=4 * hidden)
    ffn_active = inter
    moe_layers = 0
    if experts:
        moe_inter = f.count("moe_intermediate_size", default=inter)
        top_k = f.count("num_experts_per_tok", "experts_per_token", default=1)
        shared = f.get("shared_expert_intermediate_size")
        if shared is None:
            n_shared = f.get("n_shared_experts", default=0)
            # Llama 4: one shared expert of intermediate_size beside the routed ones
            shared = (
                n_shared * moe_inter
                if n_shared
                else (inter if f.get("model_type") in ("llama4", "llama4_text") else 0)
            )
        moe_layers = _moe_layer_count(f, layers)
        dense_inter = f.count("intermediate_size_mlp", default=inter)
        p.routed_experts = float(moe_layers * experts * 3 * hidden * moe_inter)
        p.shared_experts = float(moe_layers * 3 * hidden * shared)
        p.router = float(moe_layers * experts * hidden)
        p.dense_mlp = float((layers - moe_layers) * 3 * hidden * dense_inter)
        ffn_active = top_k * moe_inter + shared
        active = p.total - p.routed_experts + moe_layers * top_k * 3 * hidden * moe_inter
    else:
        p.dense_mlp = float(layers * 3 * hidden * inter)
        active = p.total
    vision_shape, p.vision, vision_notes = _vision(f, hidden)
    notes += vision_notes
    nextn = f.get("num_nextn_predict_layers") or f.get("mtp_num_hidden_layers")
    if nextn:
        notes.append(
            f"{nextn} multi-token-prediction layer(s) not counted (vLLM loads them only for "
            "speculative decoding)"
        )
    window = f.get("sliding_window")
    sliding = kinds.count("sliding")
    if sliding:
        window = window or f.get("attention_chunk_size")
    rope = _rope_positions(f, max_context)
    raw_name = (
        name
        or str(config.get("_name_or_path") or "")
        or (file.parent.name if file.name == "config.json" else file.stem)
    )
    model = ModelSpec(
        name=_name(raw_name.rsplit("/", 1)[-1]),
        display=raw_name,
        family=str(f.get("model_type", default="")),
        params_b=p.total / 1e9,
        active_params_b=(active + p.vision) / 1e9 if experts else None,
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        max_context=max_context,
        vocab=vocab,
        tied_embeddings=tied,
        kv_layers=layers - kinds.count("linear") if "linear" in kinds else None,
        sliding_window=int(window) if sliding and window else None,
        sliding_window_layers=sliding if window else 0,
        expert_params_b=p.routed_experts / 1e9 if experts else None,
        moe_layers=moe_layers if experts else None,
        ffn_active=ffn_active,
        kv_lora_rank=f.get("kv_lora_rank"),
        qk_rope_head_dim=f.get("qk_rope_head_dim") if mla else None,
        linear_state_bytes=linear_state * kinds.count("linear"),
        vision_params_b=p.vision / 1e9,
        rope_cache_positions=rope,
        note=f"from {file}",
        vision_hidden=vision_shape.get("vision_hidden", 0),
        vision_ffn=vision_shape.get("vision_ffn", 0),
        vision_layers=vision_shape.get("vision_layers", 0),
        vision_patches=vision_shape.get("vision_patches", 0),
        vision_tokens=vision_shape.get("vision_tokens", 0),
    )
    family = _family(model, kinds, experts)
    notes.insert(0, f"{family}; {model.params_b:.2f} B parameters counted from {file.name}")
    if f.defaulted:
        notes.append(
            f"{model.family} defaults (transformers' config class) for fields the file leaves "
            "out: " + ", ".join(f"{k}={f.text[k]}" for k in f.defaulted)
        )
    quants, quant_notes = _checkpoint_format(f, model, p)
    notes += quant_notes
    unused = f.unused()
    if unused:
        notes.append("fields the planner does not use: " + ", ".join(unused))
    return Described(model, quants, tuple(notes))


def _rope_positions(f: _Fields, max_context: int) -> tuple[int, ...] | None:
    scaling = f.get("rope_scaling") or f.get("rope_parameters")
    if not isinstance(scaling, dict):
        return None
    factor = scaling.get("factor")
    original = scaling.get("original_max_position_embeddings")
    if not isinstance(factor, int | float) or factor <= 1:
        return None
    if isinstance(original, int) and original > 0:
        return (int(original * factor),)
    if scaling.get("rope_type", scaling.get("type")) == "linear":
        return (int(max_context * factor),)
    return None


def _family(model: ModelSpec, kinds: list[str], experts: int) -> str:
    parts = []
    if model.mla:
        parts.append(f"MLA (cache {model.kv_lora_rank} + {model.qk_rope_head_dim} per token)")
    elif model.kv_heads == model.heads:
        parts.append("multi-head attention")
    else:
        parts.append(f"grouped-query attention ({model.heads}/{model.kv_heads} heads)")
    if "linear" in kinds:
        parts.append(
            f"hybrid: {kinds.count('full')} full-attention + {kinds.count('linear')} linear "
            f"layers ({model.linear_state_bytes / 2**20:.1f} MiB state per sequence)"
        )
    if model.sliding_window:
        parts.append(
            f"{model.sliding_window_layers} of {model.layers} layers windowed "
            f"({model.sliding_window} tokens)"
        )
    if experts:
        parts.append(f"MoE ({experts} experts in {model.expert_layers} layers)")
    if model.vision_params_b:
        parts.append("vision tower")
    return ", ".join(parts)


# Representative module names per parameter group, matched against a checkpoint's list of
# modules it leaves unquantized.
_MODULES = {
    "embed": ("model.embed_tokens",),
    "lm_head": ("lm_head",),
    "attention": ("model.layers.0.self_attn.q_proj", "model.layers.0.linear_attn.in_proj_qkvz"),
    "dense_mlp": ("model.layers.0.mlp.gate_proj",),
    "shared_experts": (
        "model.layers.9.mlp.shared_experts.gate_proj",
        "model.layers.9.mlp.shared_expert.gate_proj",
    ),
    "routed_experts": ("model.layers.9.mlp.experts.0.gate_proj", "model.layers.9.mlp.experts"),
    "router": ("model.layers.9.mlp.gate", "model.layers.9.mlp.router"),
    "vision": ("vision_tower", "visual", "vision_model", "multi_modal_projector"),
}
# Left 16-bit by every quantizer these configs come from (embeddings, norms, the MoE router).
_ALWAYS_16 = {"embed", "norms", "router", "vision"}


def _matches(module: str, entry: str) -> bool:
    if entry.startswith("re:"):
        try:
            return re.search(entry[3:], module) is not None
        except re.error:
            return False
    parts = module.split(".")
    for end in range(1, len(parts) + 1):
        prefix = ".".join(parts[:end])
        if fnmatch.fnmatchcase(prefix, entry):
            return True
    wanted = entry.split(".")
    return any(parts[i : i + len(wanted)] == wanted for i in range(len(parts)))


def _kept(group: str, ignore: list[str]) -> bool:
    return any(_matches(m, e) for m in _MODULES.get(group, ()) for e in ignore)


def _scheme(q: dict[str, Any], file: Path) -> tuple[str, float, list[str], list[str]]:
    """(label, bits per quantized weight, modules left 16-bit, groups quantized)."""
    method = str(q.get("quant_method", q.get("quant_algo", ""))).lower()
    ignore = [str(m) for m in q.get("modules_to_not_convert") or q.get("ignore") or []]
    ignore += [str(m) for m in q.get("ignored_layers") or q.get("exclude_modules") or []]
    # vLLM leaves the output head (ParallelLMHead) and the embedding unquantized in these.
    linear = ["attention", "dense_mlp", "shared_experts", "routed_experts"]
    if method == "fp8":
        block = q.get("weight_block_size")
        if isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) for b in block):
            scale = 32 / (block[0] * block[1])
            return f"FP8, {block[0]}x{block[1]} blocks", 8 + scale, ignore, linear
        return "FP8, per-channel scales", 8.0, ignore, linear
    if method == "mxfp4":
        return "MXFP4 (32 FP4 + one 8-bit scale)", 4.25, ignore, linear
    if method in ("nvfp4", "modelopt") or str(q.get("quant_algo", "")).upper() == "NVFP4":
        return "NVFP4 (16 FP4 + one FP8 scale)", 4.5, ignore, linear
    if method in ("awq", "gptq", "auto-round", "autoround", "auto_round"):
        bits = q.get("bits", q.get("w_bit", 4))
        group = q.get("group_size", q.get("q_group_size", 128))
        if not isinstance(bits, int) or not isinstance(group, int) or bits < 1:
            raise InputError(f"--hf-config: {file}: quantization_config bits/group_size unreadable")
        zeros = 0 if method == "awq" and q.get("zero_point") is False else bits
        per_group = (16 + zeros) / group if group > 0 else 0.0
        label = f"{method.upper()} {bits}-bit, group {group if group > 0 else 'per channel'}"
        return label, bits + per_group, ignore, linear
    if method == "compressed-tensors":
        groups = q.get("config_groups") or {}
        first: Any = next(iter(groups.values()), {}) if isinstance(groups, dict) else {}
        weights = first.get("weights", {}) if isinstance(first, dict) else {}
        bits = weights.get("num_bits")
        kind = weights.get("type", "int")
        group = weights.get("group_size") or 0
        fmt = str(q.get("format", ""))
        if not isinstance(bits, int):
            raise InputError(
                f"--hf-config: {file}: compressed-tensors config_groups without weights.num_bits"
            )
        if kind == "float" and bits == 4 and "nvfp4" in fmt:
            return "NVFP4 (compressed-tensors)", 4.5, ignore, linear
        if kind == "float" and bits == 8:
            return "FP8 (compressed-tensors)", 8.0, ignore, linear
        scale = 16 / group if isinstance(group, int) and group > 0 else 0.0
        return f"INT{bits} (compressed-tensors, group {group})", bits + scale, ignore, linear
    known = "fp8, mxfp4, nvfp4/modelopt, awq, gptq, auto-round, compressed-tensors"
    raise InputError(
        f"--hf-config: {file}: quantization_config quant_method {method!r} is not one the "
        f"planner knows ({known}); plan a format instead with -q"
    )


def _checkpoint_format(
    f: _Fields, model: ModelSpec, p: _Params
) -> tuple[tuple[QuantFormat, ...], list[str]]:
    q = f.top.get("quantization_config")
    f.read.add("quantization_config")
    if not isinstance(q, dict):
        return (), []
    label, bits, ignore, quantized = _scheme(q, f.file)
    total = 0.0
    kept = []
    for group, params in vars(p).items():
        if not params:
            continue
        low = group in quantized and group not in _ALWAYS_16 and not _kept(group, ignore)
        total += params * (bits if low else 16.0) / 8
        if not low:
            kept.append(group.replace("_", " "))
    bpw = 8 * total / (p.total or 1)
    source = (
        f"{model.name}'s quantization_config: {label} ({bits:.3f} bits per weight); 16-bit: "
        f"{', '.join(kept)}; {total / 1e9:.1f} GB in all ({bpw:.2f} bpw)"
    )
    quant = QuantFormat(name=CHECKPOINT, bpw=bpw, scope="all", engines=("vllm",), source=source)
    return (quant,), [f"format '{CHECKPOINT}': {source}"]


def from_hf_config(path: Path) -> Described:
    config, file = read_config(path)
    return model_from_config(config, file)


# --- GGUF --------------------------------------------------------------------------------------
# Sliding-window layer patterns llama.cpp applies per architecture (src/llama-model.cpp: gemma3
# "every 6th layer is global", gpt-oss and gemma2 alternate), when the header has no pattern.
GGUF_SWA_PATTERN = {"gemma3": 6, "gemma2": 2, "gpt-oss": 2, "cohere2": 4}


def from_gguf(path: Path) -> Described:
    """A model and its format from a GGUF file's header and tensor table (the ``gguf``
    package's reader: real tensor types and sizes)."""
    try:
        from gguf import GGUFReader, LlamaFileType
    except ImportError:
        raise InputError("--gguf needs the gguf package: pip install gguf") from None
    if not path.is_file():
        raise InputError(f"--gguf: {path} is not a file")
    try:
        reader = GGUFReader(str(path))
    except (ValueError, OSError, KeyError, IndexError) as exc:
        raise InputError(f"--gguf: {path} is not a GGUF file it can read ({exc})") from None

    def field(key: str) -> Any:
        found = reader.fields.get(key)
        return found.contents() if found is not None else None

    arch = str(field("general.architecture") or "")
    if not arch:
        raise InputError(f"--gguf: {path} has no general.architecture")

    def arch_int(key: str, default: int | None = None) -> int:
        value = field(f"{arch}.{key}")
        if isinstance(value, list):
            value = max(value) if value else None
        if value is None:
            if default is None:
                raise InputError(f"--gguf: {path}: no {arch}.{key} in its header")
            return default
        return int(value)

    tensors = reader.tensors
    params = float(sum(int(t.n_elements) for t in tensors))
    size = float(sum(int(t.n_bytes) for t in tensors))
    names = {t.name for t in tensors}
    expert_params = float(sum(int(t.n_elements) for t in tensors if "_exps" in t.name))
    layers = arch_int("block_count")
    hidden = arch_int("embedding_length")
    heads = arch_int("attention.head_count")
    kv_field = field(f"{arch}.attention.head_count_kv")
    kv_per_layer = kv_field if isinstance(kv_field, list) else [kv_field or heads] * layers
    kv_heads = max(int(v) for v in kv_per_layer) if kv_per_layer else heads
    attention_layers = sum(1 for v in kv_per_layer if int(v) > 0)
    head_dim = arch_int("attention.key_length", hidden // heads)
    window = field(f"{arch}.attention.sliding_window")
    notes = []
    sliding = 0
    if window:
        pattern = field(f"{arch}.attention.sliding_window_pattern")
        if isinstance(pattern, list):
            sliding = sum(1 for v in pattern if v)
        else:
            every = GGUF_SWA_PATTERN.get(arch, 1)
            sliding = layers - layers // every if every > 1 else layers
            notes.append(f"sliding window on {sliding} of {layers} layers (llama.cpp's {arch})")
    embed = next((t for t in tensors if t.name == "token_embd.weight"), None)
    vocab = int(embed.n_elements) // hidden if embed is not None else 0
    file_type = field("general.file_type")
    try:
        ftype = LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_")
    except (TypeError, ValueError):
        ftype = "unknown file type"
    kinds: dict[str, int] = {}
    for t in tensors:
        kinds[t.tensor_type.name] = kinds.get(t.tensor_type.name, 0) + 1
    mix = ", ".join(f"{k} x {n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    experts = arch_int("expert_count", 0)
    dense_first = arch_int("leading_dense_block_count", 0)
    rank = field(f"{arch}.attention.kv_lora_rank")
    model = ModelSpec(
        name=_name(str(field("general.name") or path.stem)),
        display=str(field("general.name") or path.name),
        family=arch,
        params_b=params / 1e9,
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads if heads % kv_heads == 0 else heads,
        head_dim=head_dim,
        max_context=arch_int("context_length", 4096),
        vocab=vocab,
        tied_embeddings="output.weight" not in names,
        kv_layers=attention_layers if attention_layers < layers else None,
        sliding_window=int(window) if window else None,
        sliding_window_layers=sliding,
        expert_params_b=expert_params / 1e9 if experts and expert_params else None,
        moe_layers=layers - dense_first if experts else None,
        kv_lora_rank=int(rank) if rank else None,
        qk_rope_head_dim=arch_int("rope.dimension_count", 64) if rank else None,
        note=f"from {path}",
    )
    bpw = 8 * size / params if params else 16.0
    source = f"{path.name}: {ftype}, {bpw:.2f} bpw over {params / 1e9:.3f} B parameters ({mix})"
    quant = QuantFormat(
        name=GGUF, bpw=bpw, scope="all", engines=("llama_cpp", "ollama", "vllm"), source=source
    )
    notes.insert(
        0,
        f"{arch}, {layers} layers, {len(tensors)} tensors, {size / 1e9:.3f} GB of weights read "
        f"from {path.name}",
    )
    notes.append(f"format '{GGUF}': {source}")
    if not math.isfinite(bpw):
        raise InputError(f"--gguf: {path}: no tensors")
    return Described(model, (quant,), tuple(notes))
