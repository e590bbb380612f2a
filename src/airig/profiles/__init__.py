"""Build profiles: YAML data validated against ``schema.json`` (the single source of truth).

Search order (later wins on a name clash): the built-in profiles shipped with airig,
``~/.config/airig/profiles``, every directory in ``$AIRIG_PROFILES_PATH`` (``:``-separated),
then directories passed explicitly. A path to a ``.yml`` file is also accepted as a name.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from airig import _yaml
from airig._suggest import allowed_list, did_you_mean
from airig.errors import CatalogError, ProfileError

BUILTIN_DIR = Path(__file__).parent / "builtin"
DRIVERS_PATH = Path(__file__).parent.parent / "data" / "drivers.yml"
SCHEMA_PATH = Path(__file__).parent / "schema.json"
USER_DIR = Path("~/.config/airig/profiles")
ENV_PATH = "AIRIG_PROFILES_PATH"
REFERENCE_BUILDS = ("home", "business", "team")


@dataclass(frozen=True)
class GpuSpec:
    count: int
    model: str | None = None
    accepted_models: tuple[str, ...] = ()
    memory_gib: float = 0.0
    compute_capability: str | None = None
    sm_count: int | None = None
    pcie_generation: int | None = None
    pcie_width: int | None = None
    power_limit_w: int | None = None


@dataclass(frozen=True)
class ServedModel:
    name: str
    quant: str
    engine: str | None = None
    context: int | None = None
    concurrency: int | None = None
    source: str | None = None
    sha256: str | None = None
    file: str | None = None
    revision: str | None = None
    nodes: int = 1  # vllm: boxes serving it together (pipeline parallel across them)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    gpus: GpuSpec
    driver_min_branch: int | None
    open_kernel_modules: bool
    engines: tuple[str, ...]
    models: tuple[ServedModel, ...]
    ram_gb: float | None = None
    source: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def total_vram_gib(self) -> float:
        return self.gpus.count * self.gpus.memory_gib

    @property
    def summary(self) -> str:
        if self.gpus.count == 0:
            ram = f", {self.ram_gb:g} GB RAM" if self.ram_gb else ""
            return f"no GPU{ram}"
        return (
            f"{self.gpus.count} x {self.gpus.model} ({self.gpus.memory_gib:g} GB each, "
            f"{self.total_vram_gib:g} GB)"
        )


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def _strict_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    r"""JSON Schema ``pattern`` where ``$`` means the end of the text.

    jsonschema runs ``re.search``, whose ``$`` also matches before a trailing newline:
    ``"12.0\n"`` would pass ``^[0-9]+\.[0-9]+$`` and carry the newline into a unit or an
    env file. A pattern ending in ``$`` is checked with ``\Z`` instead.
    """
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "string"):
        return
    anchored = pattern.endswith("$") and not pattern.endswith("\\$")
    strict = pattern[:-1] + r"\Z" if anchored else pattern
    if re.search(strict, instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def _validator() -> Any:
    """One schema validator for every profile file (building it is the costly part)."""
    from jsonschema import Draft202012Validator, validators

    strict = validators.extend(Draft202012Validator, {"pattern": _strict_pattern})
    return strict(schema())


def search_dirs(extra: tuple[Path, ...] = ()) -> list[Path]:
    """Directories searched for profiles, lowest priority first."""
    dirs = [BUILTIN_DIR, USER_DIR.expanduser()]
    env = os.environ.get(ENV_PATH, "")
    dirs += [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    dirs += [p.expanduser() for p in extra]
    return dirs


def _field_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe_schema_error(err: Any) -> tuple[str, str, str]:
    """Turn one jsonschema error into (field, bad value, what is allowed)."""
    where = _field_path(err.absolute_path)
    value = json.dumps(err.instance, default=str)
    sub = err.schema if isinstance(err.schema, dict) else {}
    kind = err.validator
    if kind == "enum":
        allowed = "one of " + allowed_list(str(v) for v in err.validator_value)
        allowed += did_you_mean(str(err.instance), (str(v) for v in err.validator_value))
    elif kind == "additionalProperties":
        known = list(sub.get("properties", {}))
        extras = [k for k in err.instance if k not in known]
        where = _field_path([*err.absolute_path, extras[0]]) if extras else where
        value = json.dumps(extras[0]) if extras else value
        hint = did_you_mean(extras[0], known) if extras else ""
        allowed = f"unknown field{hint}; allowed fields: {allowed_list(known)}"
    elif kind == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        where = _field_path([*err.absolute_path, missing])
        value = "(missing)"
        allowed = f"required field; {_describe_property(err.schema, missing)}"
    elif kind == "type":
        allowed = f"a value of type {err.validator_value}"
    elif kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
        allowed = f"a number {op[kind]} {err.validator_value}"
    elif kind == "pattern":
        desc = sub.get("description", "")
        allowed = f"text matching {err.validator_value}" + (f" ({desc})" if desc else "")
    elif kind == "uniqueItems":
        allowed = "a list without repeated entries"
    else:
        allowed = err.message
    return where, value, allowed


def _describe_property(parent_schema: Any, prop: str) -> str:
    if not isinstance(parent_schema, dict):
        return ""
    desc = parent_schema.get("properties", {}).get(prop, {}).get("description", "")
    return str(desc)


def validate_data(data: Any, source: str) -> None:
    """Raise ProfileError naming file, field, bad value and what is allowed."""
    if not isinstance(data, dict):
        raise ProfileError(
            f"{source}: a profile must be a YAML mapping with the fields "
            f"{allowed_list(schema()['required'])}; found {type(data).__name__}"
        )
    errors = sorted(_validator().iter_errors(data), key=lambda e: (len(e.absolute_path), e.path))
    if errors:
        lines = []
        for err in errors:
            where, value, allowed = _describe_schema_error(err)
            lines.append(f"  field {where}: bad value {value}: expected {allowed}")
        raise ProfileError(f"{source}: invalid profile\n" + "\n".join(lines))


def _to_profile(data: dict[str, Any], source: Path) -> Profile:
    gpus = data["gpus"]
    pcie = gpus.get("pcie", {})
    driver = data["driver"]
    return Profile(
        name=data["name"],
        description=" ".join(str(data["description"]).split()),
        gpus=GpuSpec(
            count=gpus["count"],
            model=gpus.get("model"),
            accepted_models=tuple(gpus.get("accepted_models", ())),
            memory_gib=float(gpus.get("memory_gib", 0.0)),
            compute_capability=gpus.get("compute_capability"),
            sm_count=gpus.get("sm_count"),
            pcie_generation=pcie.get("generation"),
            pcie_width=pcie.get("width"),
            power_limit_w=gpus.get("power_limit_w"),
        ),
        driver_min_branch=driver.get("min_branch"),
        open_kernel_modules=bool(driver.get("open_kernel_modules", False)),
        engines=tuple(data["engines"]),
        models=tuple(ServedModel(**m) for m in data["models"]),
        ram_gb=data.get("host", {}).get("ram_gb"),
        source=source,
        raw=data,
    )


def load_file(path: Path) -> Profile:
    """Load and validate one profile file."""
    data = _yaml.load_or_raise(path, ProfileError, str(path), "profile")
    validate_data(data, str(path))
    if data["name"] != path.stem:
        raise ProfileError(
            f"{path}: field name: bad value {json.dumps(data['name'])}: expected "
            f"{json.dumps(path.stem)} (a profile's name must match its file name)"
        )
    profile = _to_profile(data, path)
    _check_cross_fields(profile)
    return profile


def from_data(data: Any, source: str = "(inline profile)") -> Profile:
    """Validate profile data that did not come from a file (e.g. an Ansible variable)."""
    validate_data(data, source)
    profile = _to_profile(data, Path(source))
    _check_cross_fields(profile)
    return profile


@cache
def drivers() -> dict[str, Any]:
    """The driver data file (src/airig/data/drivers.yml): branches and what engines need."""
    loaded: dict[str, Any] = _yaml.load_file(DRIVERS_PATH)
    return loaded


def engines_driver_need(engines: tuple[str, ...] | list[str]) -> tuple[int, str] | None:
    """The lowest driver branch the given engines' GPU builds need, with the reason."""
    need: tuple[int, str] | None = None
    for engine in engines:
        row = drivers()["engines"].get(engine)
        if row and (need is None or int(row["min_branch"]) > need[0]):
            why = f"{row['why']}, which needs driver branch {row['min_branch']} or newer"
            need = (int(row["min_branch"]), why)
    return need


def served_engine(served: ServedModel, catalog: Any) -> str:
    """The engine that serves a profile's model: its own, else its format's first."""
    return served.engine or str(catalog.quant(served.quant).engines[0])


def _check_cross_fields(profile: Profile) -> None:
    """Rules the schema cannot express: models and quants from the catalog, engines enabled."""
    from airig.planner.catalog import Catalog

    catalog = Catalog.default()
    src = profile.source
    if profile.gpus.count == 0 and "vllm" in profile.engines:
        raise ProfileError(
            f'{src}: field engines: bad value "vllm": expected ollama or llama_cpp on a '
            "profile with gpus.count 0 (vLLM needs a GPU)"
        )
    need = engines_driver_need(profile.engines) if profile.gpus.count > 0 else None
    if need and (profile.driver_min_branch or 0) < need[0]:
        raise ProfileError(
            f"{src}: field driver.min_branch: bad value {json.dumps(profile.driver_min_branch)}: "
            f"expected {need[0]} or more ({need[1]})"
        )
    for i, served in enumerate(profile.models):
        where = f"models[{i}]"
        try:
            model = catalog.model(served.name)
        except CatalogError as exc:
            raise ProfileError(f"{src}: field {where}.name: {exc}") from exc
        try:
            quant = catalog.quant(served.quant)
        except CatalogError as exc:
            raise ProfileError(f"{src}: field {where}.quant: {exc}") from exc
        engine = served_engine(served, catalog)
        if engine not in quant.engines:
            raise ProfileError(
                f'{src}: field {where}.engine: bad value "{engine}": format {quant.name} '
                f"runs on {allowed_list(quant.engines)}"
            )
        if engine not in profile.engines:
            raise ProfileError(
                f'{src}: field {where}.engine: bad value "{engine}": not in this profile\'s '
                f"engines ({allowed_list(profile.engines)}); enable it or pick one of those"
            )
        if served.source is not None:
            problem = source_problem(engine, served.source)
            if problem:
                raise ProfileError(
                    f"{src}: field {where}.source: bad value {json.dumps(served.source)}: "
                    f"expected {problem}"
                )
        if served.context and served.context > model.max_context:
            raise ProfileError(
                f"{src}: field {where}.context: bad value {served.context}: expected at most "
                f"{model.max_context} (the longest context {model.name} supports)"
            )


_HF_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}\Z")
_URL_TEXT = re.compile(r"[\x21-\x7e]+\Z")  # printable ASCII, no space or control character


def source_problem(engine: str, source: str) -> str | None:
    """Why ``source`` cannot be a model source for ``engine`` (None when it can).

    The source reaches root's curl (GGUF engines) or vLLM's download and arguments, so it is
    checked for that use: an http(s) URL with a host for llama.cpp and Ollama; a Hugging Face
    repo id (org/name) or an absolute, normalised path for vLLM. No whitespace, control
    characters, leading dash or ``..`` anywhere.
    """
    from urllib.parse import urlsplit

    if engine in ("llama_cpp", "ollama"):
        parts = urlsplit(source) if _URL_TEXT.match(source) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            return (
                f"an http:// or https:// URL of a GGUF file for {engine} (printable ASCII, "
                "no spaces; URL-encode them)"
            )
        return None
    if source.startswith("/"):
        if (
            not _URL_TEXT.match(source)
            or os.path.normpath(source) != source
            or ".." in source.split("/")
        ):
            return (
                "an absolute, normalised path of a model directory for vllm (no '..', "
                "'//', spaces or control characters)"
            )
        return None
    if not _HF_REPO.match(source) or ".." in source:
        return (
            "a Hugging Face repo id such as Qwen/Qwen3-32B-AWQ (letters, digits, '.', '_', "
            "'-' around one '/'), or an absolute path of a model directory, for vllm"
        )
    return None


def unpinned(profile: Profile) -> list[str]:
    """The profile's downloads that nothing pins: a GGUF URL without ``sha256``, a Hugging Face
    repo without ``revision`` (a moving ``main`` can change under the same name)."""
    from airig.planner.catalog import Catalog

    catalog = Catalog.default()
    found = []
    for i, served in enumerate(profile.models):
        if not served.source:
            continue
        engine = served_engine(served, catalog)
        if engine == "vllm":
            if not served.source.startswith("/") and not served.revision:
                found.append(f"models[{i}] {served.name}: Hugging Face repo without revision")
        elif not served.sha256:
            found.append(f"models[{i}] {served.name}: {served.source} without sha256")
    return found


def discover(extra_dirs: tuple[Path, ...] = ()) -> dict[str, Path]:
    """Map profile name -> file, later directories overriding earlier ones."""
    found: dict[str, Path] = {}
    for directory in search_dirs(extra_dirs):
        if directory.is_dir():
            for path in sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")]):
                found[path.stem] = path
    return found


def load(name_or_path: str, extra_dirs: tuple[Path, ...] = ()) -> Profile:
    """Load a profile by name (searching the profile path) or by file path (a name with a
    '/' or a .yml/.yaml suffix is a path)."""
    if "\0" in name_or_path or len(name_or_path) > 4096:
        raise ProfileError("profile: bad value: a name or path without NUL, at most 4096 chars")
    candidate = Path(name_or_path).expanduser()
    if "/" in name_or_path or candidate.suffix in (".yml", ".yaml"):
        try:
            is_file = candidate.is_file()
        except OSError as exc:
            raise ProfileError(f"{name_or_path}: cannot read profile: {exc.strerror}") from exc
        if not is_file:
            what = "is not a file" if candidate.exists() else "does not exist"
            raise ProfileError(
                f"profile file {name_or_path} {what} (a profile is a name from `airig "
                "profiles` or the path of a .yml file)"
            )
        return load_file(candidate)
    files = discover(extra_dirs)
    if name_or_path not in files:
        raise ProfileError(
            f"unknown profile '{name_or_path}'{did_you_mean(name_or_path, files)}; "
            f"known profiles: {allowed_list(files)} (add your own as NAME.yml in "
            f"{USER_DIR} or a directory in ${ENV_PATH})"
        )
    return load_file(files[name_or_path])


def load_all(extra_dirs: tuple[Path, ...] = ()) -> list[Profile]:
    """Load every profile on the search path; the first malformed one raises."""
    return [load_file(path) for path in discover(extra_dirs).values()]
