"""Model catalog and quantization formats, loaded from YAML data (built-in + user files)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from functools import cache
from pathlib import Path
from typing import Any

from airig import _yaml
from airig._suggest import allowed_list, did_you_mean
from airig.errors import CatalogError

DATA_DIR = Path(__file__).parent / "data"
# Models that exist only for airig's own tests (the container scenarios' tiny GGUF).
TEST_FAMILY = "test"


@dataclass(frozen=True)
class ModelSpec:
    """Architecture facts of one model (see data/models.yml for field meanings)."""

    name: str
    params_b: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    max_context: int
    display: str = ""
    family: str = ""
    nominal_b: float | None = None
    active_params_b: float | None = None
    vocab: int = 0
    tied_embeddings: bool = False
    kv_layers: int | None = None
    sliding_window: int | None = None
    sliding_window_layers: int = 0
    expert_params_b: float | None = None
    fp8_bf16_blocks: int | None = None
    rope_cache_positions: tuple[int, ...] | None = None
    # Multi-head latent attention (DeepSeek V2/V3, Kimi K2): the cache holds one latent vector
    # of kv_lora_rank + qk_rope_head_dim values per token and layer, for all heads together.
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    # Hybrid linear attention (Qwen3-Next, Qwen3.5): the layers outside kv_layers keep a fixed
    # state per sequence (convolution + recurrent state), whatever the context: bytes per
    # sequence over all those layers, at the dtypes the checkpoint's config names.
    linear_state_bytes: float = 0.0
    # Layers whose FFN is a mixture of experts (default: every layer, for a MoE model).
    moe_layers: int | None = None
    # Active MLP width per token (routed experts x top-k + shared experts), where the config
    # gives it; otherwise derived from active_params_b (memory.ffn_width).
    ffn_active: int | None = None
    # A vision or audio tower (in params_b; formats that keep embeddings 16-bit keep it too):
    # parameters, and the shape vLLM's encoder profile runs through (width, FFN, layers, the
    # patches one image is in the tower and the tokens it becomes in the language model).
    vision_params_b: float = 0.0
    vision_hidden: int = 0
    vision_ffn: int = 0
    vision_layers: int = 0
    vision_patches: int = 0
    vision_tokens: int = 0
    note: str = ""
    estimated_from: str | None = None

    @property
    def nominal(self) -> float:
        return self.nominal_b if self.nominal_b is not None else self.params_b

    @property
    def embedding_params_b(self) -> float:
        """Token embedding plus output head (one matrix when tied)."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2) / 1e9

    @property
    def attention_layers(self) -> int:
        return self.kv_layers if self.kv_layers is not None else self.layers

    @property
    def mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def expert_layers(self) -> int:
        return self.moe_layers if self.moe_layers is not None else self.layers


@dataclass(frozen=True)
class QuantFormat:
    name: str
    bpw: float
    scope: str
    engines: tuple[str, ...]
    source: str = ""


_INT_FIELDS = {"layers", "hidden", "heads", "kv_heads", "head_dim", "max_context", "vocab"}
_POSITIVE = {"params_b", *_INT_FIELDS}
_SCOPES = ("all", "linear", "experts")


def _model_from_dict(entry: Any, source: str) -> ModelSpec:
    if not isinstance(entry, dict):
        raise CatalogError(f"{source}: each model must be a mapping, found {entry!r}")
    name = entry.get("name", "?")
    known = {f.name for f in fields(ModelSpec)} - {"estimated_from"}
    for key in entry:
        if key not in known:
            raise CatalogError(
                f"{source}: model {name}: unknown field '{key}'{did_you_mean(key, known)}; "
                f"allowed: {allowed_list(known)}"
            )
    required = (
        "name",
        "params_b",
        "layers",
        "hidden",
        "heads",
        "kv_heads",
        "head_dim",
        "max_context",
    )
    for key in required:
        if key not in entry:
            raise CatalogError(f"{source}: model {name}: field {key} is required")
    for key in _POSITIVE:
        value = entry.get(key)
        if value is None:
            continue
        ok_type = isinstance(value, int) if key in _INT_FIELDS else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type or value <= 0:
            kind = "a whole number" if key in _INT_FIELDS else "a number"
            raise CatalogError(
                f"{source}: model {name}: field {key}: bad value {value!r}: expected {kind} > 0"
            )
    blocks = entry.get("fp8_bf16_blocks")
    if blocks is not None and (
        isinstance(blocks, bool)
        or not isinstance(blocks, int)
        or not 0 <= blocks <= entry["layers"]
    ):
        raise CatalogError(
            f"{source}: model {name}: field fp8_bf16_blocks: bad value {blocks!r}: expected a "
            f"whole number from 0 to layers ({entry['layers']})"
        )
    rope = entry.get("rope_cache_positions")
    if rope is not None:
        if (
            not isinstance(rope, list | tuple)
            or not rope
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in rope)
        ):
            raise CatalogError(
                f"{source}: model {name}: field rope_cache_positions: bad value {rope!r}: "
                "expected a list of whole numbers > 0 (positions of each distinct RoPE table)"
            )
        entry = {**entry, "rope_cache_positions": tuple(rope)}
    if entry["heads"] % entry["kv_heads"]:
        raise CatalogError(
            f"{source}: model {name}: field kv_heads: {entry['kv_heads']} must divide "
            f"heads ({entry['heads']})"
        )
    return ModelSpec(**entry)


def _quant_from_dict(entry: dict[str, Any], source: str) -> QuantFormat:
    if entry.get("scope") not in _SCOPES:
        raise CatalogError(
            f"{source}: format {entry.get('name')}: field scope: bad value "
            f"{entry.get('scope')!r}: expected one of {allowed_list(_SCOPES)}"
        )
    bpw = entry.get("bpw")
    if not isinstance(bpw, int | float) or bpw <= 0:
        raise CatalogError(f"{source}: format {entry.get('name')}: field bpw must be > 0")
    return QuantFormat(
        name=str(entry["name"]),
        bpw=float(bpw),
        scope=str(entry["scope"]),
        engines=tuple(entry["engines"]),
        source=str(entry.get("source", "")),
    )


def _read_yaml(path: Path, key: str) -> list[Any]:
    data = _yaml.load_or_raise(path, CatalogError, str(path))
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise CatalogError(f"{path}: expected a mapping with a list under '{key}:'")
    items: list[Any] = data[key]
    return items


CONFIGS_DIR = DATA_DIR / "configs"


def config_models() -> list[ModelSpec]:
    """The catalog entries built from published config.json files (data/configs/SOURCES.yml),
    the same way `airig plan --hf-config` reads one."""
    from airig.planner.described import from_hf_config

    out = []
    for entry in _read_yaml(CONFIGS_DIR / "SOURCES.yml", "configs"):
        if entry.get("catalog", True) is False:
            continue
        model = from_hf_config(CONFIGS_DIR / entry["file"]).model
        out.append(
            replace(
                model,
                name=entry["name"],
                display=entry.get("display", model.display),
                note=f"from its config.json ({entry['source']})",
            )
        )
    return out


class Catalog:
    """Known models and formats. Lookup is case-insensitive; errors suggest the closest name."""

    def __init__(self, models: list[ModelSpec], quants: list[QuantFormat]) -> None:
        self._models = {m.name.lower(): m for m in models}
        self._quants = {q.name.lower(): q for q in quants}

    @classmethod
    @cache
    def default(cls) -> Catalog:
        models = [
            _model_from_dict(e, "models.yml") for e in _read_yaml(DATA_DIR / "models.yml", "models")
        ]
        quants = [
            _quant_from_dict(e, "quants.yml")
            for e in _read_yaml(DATA_DIR / "quants.yml", "formats")
        ]
        return cls([*models, *config_models()], quants)

    def with_model_file(self, path: Path) -> Catalog:
        """A new catalog with the models of a user file added (same format as models.yml)."""
        added = [_model_from_dict(e, str(path)) for e in _read_yaml(path, "models")]
        return Catalog([*self._models.values(), *added], list(self._quants.values()))

    def with_models(
        self, models: list[ModelSpec], quants: list[QuantFormat] | tuple[QuantFormat, ...] = ()
    ) -> Catalog:
        return Catalog([*self._models.values(), *models], [*self._quants.values(), *quants])

    @property
    def models(self) -> list[ModelSpec]:
        """The catalog a person browses: test models (family ``test``) only when named."""
        return [m for m in self._models.values() if m.family != TEST_FAMILY]

    @property
    def quants(self) -> list[QuantFormat]:
        return list(self._quants.values())

    def model(self, name: str) -> ModelSpec:
        try:
            return self._models[name.lower()]
        except KeyError:
            names = [m.name for m in self._models.values()]
            raise CatalogError(
                f"unknown model '{name}'{did_you_mean(name, names)}; known models: "
                f"{allowed_list(names)} (add one with --models FILE, or plan by size with "
                "--params N)"
            ) from None

    def quant(self, name: str) -> QuantFormat:
        try:
            return self._quants[name.lower()]
        except KeyError:
            names = [q.name for q in self._quants.values()]
            raise CatalogError(
                f"unknown quantization '{name}'{did_you_mean(name, names)}; known formats: "
                f"{allowed_list(names)}"
            ) from None

    def model_by_size(self, params_b: float) -> ModelSpec:
        """An unknown model given only its size: shape borrowed from the nearest dense model."""
        if not math.isfinite(params_b) or params_b <= 0:
            raise CatalogError(f"--params: bad value {params_b}: expected a size in billions > 0")
        dense = [
            m
            for m in self._models.values()
            if m.expert_params_b is None and m.sliding_window is None and m.kv_layers is None
        ]
        nearest = min(dense, key=lambda m: abs(math.log(m.params_b / params_b)))
        label = f"{params_b:g}B"
        return ModelSpec(
            name=f"custom-{label.lower()}",
            display=f"Unknown {label} model (shape of {nearest.name})",
            params_b=params_b,
            nominal_b=params_b,
            layers=nearest.layers,
            hidden=nearest.hidden,
            heads=nearest.heads,
            kv_heads=nearest.kv_heads,
            head_dim=nearest.head_dim,
            vocab=nearest.vocab,
            tied_embeddings=nearest.tied_embeddings,
            max_context=nearest.max_context,
            estimated_from=nearest.name,
        )
