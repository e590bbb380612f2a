"""Read a user's YAML file as data, or say what is wrong with it (never a traceback).

Stricter than ``yaml.safe_load``: duplicate keys are an error (YAML says keys are unique;
PyYAML keeps the last one silently), alias expansion is capped (a 445-byte "billion laughs"
file would otherwise expand to gigabytes and hang every command), a self-referencing alias is
refused, the file must be UTF-8 and is capped in size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20  # a profile or model file is a few KB
MAX_ALIASES = 1000  # alias uses per file; real profiles use none
MAX_NODES = 100_000  # values once aliases are expanded


class YamlProblem(ValueError):
    """What is wrong with the file, in words for the user."""


class _StrictLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlProblem(
                    f"more than {MAX_ALIASES} aliases (*name): refused (alias bombs expand "
                    "without bound); write the values out"
                )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # PyYAML reports unhashable keys itself
            if key in seen:
                raise YamlProblem(
                    f"duplicate key {key!r} at line {key_node.start_mark.line + 1} (first at "
                    f"line {seen[key]}): keep one"
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: Any, stack: tuple[int, ...], sizes: dict[int, int]) -> int:
    """Nodes the document has once every alias is expanded (refuses a self-reference)."""
    if id(node) in stack:
        raise YamlProblem(
            f"an alias at line {node.start_mark.line + 1} refers to a node that contains it"
        )
    if id(node) in sizes:
        return sizes[id(node)]
    size = 1
    inner = (*stack, id(node))
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, inner, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            size += _expanded_size(key, inner, sizes) + _expanded_size(value, inner, sizes)
    sizes[id(node)] = size
    if size > MAX_NODES:
        raise YamlProblem(
            f"expands to more than {MAX_NODES} values through aliases (*name): refused "
            "(an alias bomb); write the values out"
        )
    return size


def load_text(text: str) -> Any:
    """Parse YAML text strictly; raise YamlProblem with a sentence on any problem."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, (), {})
        return loader.construct_document(node)
    except YamlProblem:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlProblem(f"not valid YAML{where}: {problem}") from exc
    except RecursionError as exc:
        raise YamlProblem("nested too deeply to be a profile or model file") from exc
    finally:
        loader.dispose()


def load_file(path: Path) -> Any:
    """Read and parse one file; raise OSError (unreadable) or YamlProblem (bad content)."""
    with path.open("rb") as fh:
        raw = fh.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise YamlProblem(f"larger than {MAX_BYTES // 1024} KiB; not a profile or model file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlProblem(f"not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    return load_text(text)


def load_or_raise(path: Path, error: type[Exception], prefix: str, what: str = "") -> Any:
    """``load_file`` with either problem raised as ``error`` (a user error), each sentence
    starting with ``prefix``: "PREFIX: cannot read WHAT: reason" or "PREFIX: <the problem>"."""
    try:
        return load_file(path)
    except OSError as exc:
        raise error(f"{prefix}: cannot read{' ' + what if what else ''}: {exc.strerror}") from exc
    except YamlProblem as exc:
        raise error(f"{prefix}: {exc}") from exc
