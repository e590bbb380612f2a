"""NVIDIA cards by name (data/gpus.yml), for planning a box without a profile:
`airig plan --gpu "RTX 4090" --gpus 2` (issue 30 item 9)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from airig import _yaml, profiles
from airig._suggest import allowed_list, did_you_mean
from airig.errors import InputError

DATA = Path(__file__).parent / "data" / "gpus.yml"


def _key(text: str) -> str:
    return re.sub(r"[\s_-]+", "", text.lower()).removeprefix("nvidia").removeprefix("geforce")


@cache
def cards() -> list[dict[str, Any]]:
    data = _yaml.load_file(DATA)
    return list(data["gpus"])


def find(name: str) -> dict[str, Any]:
    """The card a person named ("RTX 4090", "h100", "NVIDIA GeForce RTX 5090")."""
    wanted = _key(name)
    for card in cards():
        if wanted in {_key(card["name"]), *(_key(str(a)) for a in card.get("aliases", []))}:
            return card
    names = [str(c["aliases"][0]) if c.get("aliases") else c["name"] for c in cards()]
    raise InputError(
        f"--gpu: unknown card {name!r}{did_you_mean(name, names)}; known: {allowed_list(names)} "
        "(or plan with a profile of your own: airig profiles new)"
    )


def profile(name: str, count: int, ram_gb: float | None) -> profiles.Profile:
    """A profile for `count` cards of one kind, every engine, no models to serve."""
    if not 1 <= count <= 64:
        raise InputError(f"--gpus: bad value {count}: expected 1 to 64 cards")
    if ram_gb is not None and not 1 <= ram_gb <= 65536:
        raise InputError(f"--ram-gb: bad value {ram_gb:g}: expected the host's memory in GB")
    card = find(name)
    alias = str((card.get("aliases") or [card["name"]])[0])
    label = re.sub(r"[^a-z0-9]+", "-", alias.lower()).strip("-")
    data: dict[str, Any] = {
        "name": f"{count}x-{label}"[:63],
        "description": f"{count} x {card['name']} (airig plan --gpu)",
        "gpus": {
            "count": count,
            "model": card["name"],
            "memory_gib": card["memory_gib"],
            "compute_capability": card["compute_capability"],
            "sm_count": card["sm_count"],
        },
        "driver": {"min_branch": profiles.drivers()["default_branch"]},
        "engines": ["llama_cpp", "vllm", "ollama"],
        "models": [],
    }
    if ram_gb is not None:
        data["host"] = {"ram_gb": ram_gb}
    return profiles.from_data(data, f"--gpu {name!r}")
