"""`airig plan -i INVENTORY`: what a fleet serves. Each box of the inventory's `boxes` group
(or every host outside `gateway` when there is no such group) is planned from the profile its
variables name, as site.yml would provision it; the table says per model on which boxes it
runs, for how many users in total, with how much context each, and through how many of those
boxes the gateway can reach it (the engines their proxy exposes, as playbooks/fleet.yml reads
them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airig import profiles
from airig.errors import InputError
from airig.planner.engines import LLAMA_CPP_PORT, OLLAMA_PORT, VLLM_PORT

# The engine port behind each box proxy (the planner's, as roles/proxy/vars/main.yml has them):
# what the gateway reaches.
PROXY_UPSTREAMS = {"llama_cpp": LLAMA_CPP_PORT, "vllm": VLLM_PORT, "ollama": OLLAMA_PORT}


@dataclass(frozen=True)
class Box:
    name: str
    profile: profiles.Profile
    exposed: tuple[str, ...]


@dataclass
class FleetModel:
    model: str
    quant: str
    engine: str
    boxes: list[str] = field(default_factory=list)
    users: int = 0
    context: int = 0  # tokens per user, the smallest of its boxes
    routed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def inventory_boxes(path: Path) -> list[Box]:
    """The boxes of an Ansible inventory, each with its profile (profile_name, profile_dirs)
    and the engines its proxy exposes (proxy_expose); the inventory read as data
    (airig.inventory: no scripts, no lookups on the controller)."""
    from airig import inventory as inventories

    inv = inventories.load(path, "--inventory")
    if inv.has("boxes"):
        hosts = inv.hosts("boxes")
    else:
        gateway = set(inv.hosts("gateway"))
        hosts = [h for h in inv.hosts() if h not in gateway]
    if not hosts:
        raise InputError(f"--inventory: {path} names no box (group 'boxes', or any host)")
    out = []
    for host in sorted(hosts, key=lambda h: h.name):
        hostvars = inv.host_vars(host)
        where = f"--inventory: {host.name}"
        name = inventories.template(hostvars.get("profile_name"), hostvars, where)
        dirs = inventories.template(hostvars.get("profile_dirs") or [], hostvars, where)
        expose = inventories.template(hostvars.get("proxy_expose") or {}, hostvars, where)
        if not isinstance(name, str) or not name:
            raise InputError(f"--inventory: {host.name} has no profile_name")
        if not isinstance(dirs, list) or not isinstance(expose, dict):
            raise InputError(
                f"--inventory: {host.name}: profile_dirs must be a list, proxy_expose a mapping"
            )
        profile = profiles.load(name, tuple(Path(str(d)) for d in dirs))
        out.append(
            Box(host.name, profile, tuple(sorted(e for e in expose if e in PROXY_UPSTREAMS)))
        )
    return out


def fleet_plan(boxes: list[Box]) -> list[FleetModel]:
    """Per model (and format, engine): its boxes, users in total, context per user."""
    from airig.planner.engines import engine_plan

    rows: dict[tuple[str, str, str], FleetModel] = {}
    for box in boxes:
        plan = engine_plan(box.profile)
        reachable = {
            (ep["engine"], ep["model"])
            for ep in plan["endpoints"]
            if ep["engine"] in box.exposed
            and ep["base_url"] == f"http://127.0.0.1:{PROXY_UPSTREAMS[ep['engine']]}/v1"
        }
        for s in plan["served"]:
            row = rows.setdefault(
                (s["model"], s["quant"], s["engine"]),
                FleetModel(s["model"], s["quant"], s["engine"]),
            )
            row.boxes.append(box.name)
            # A model served across N boxes (profile nodes) is one server: its users once.
            row.users += int(s["sequences"]) // max(1, int(s.get("nodes", 1)))
            row.context = min(row.context or s["context"], s["context"])
            if (s["engine"], s["model"]) in reachable:
                row.routed.append(box.name)
    return sorted(rows.values(), key=lambda r: (r.model, r.quant, r.engine))
