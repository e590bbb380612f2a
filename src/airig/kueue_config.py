"""Kueue's own configuration (the manager's `Configuration`, config.kueue.x-k8s.io/v1beta2) as
airig's platform manifests need it, checked against that API's own types.

Kueue reads its Configuration with strict decoding: an unknown field stops the manager. Releases
that serve v1beta2 (v0.15 on) have no `fairSharing.enable`: fair sharing is on when
`fairSharing` is set, with `preemptionStrategies` (issue 30 item 13). No schema file of this API
exists upstream, so the check reads the Go types themselves, vendored unchanged in
data/schemas/kueue/ (see its README): each struct's json names are the only keys allowed."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from airig.platform import SCHEMAS

API = "config.kueue.x-k8s.io/v1beta2"
TYPES = SCHEMAS / "kueue" / "config.kueue.x-k8s.io_v1beta2_configuration_types.go"
# pkg/config/validation.go (same commit): the only preemption strategy lists Kueue accepts.
STRATEGIES = (
    ["LessThanOrEqualToFinalShare"],
    ["LessThanInitialShare"],
    ["LessThanOrEqualToFinalShare", "LessThanInitialShare"],
)
# What airig's manifests rely on: weights and borrowing between the teams' ClusterQueues (fair
# sharing), and Kueue admitting the Deployments and LeaderWorkerSets airig platform writes.
FRAMEWORKS = ("deployment", "leaderworkerset.x-k8s.io/leaderworkerset")
# apiVersion and kind (metav1.TypeMeta, inlined)
_TYPE_META = {"apiVersion": None, "kind": None}

_STRUCT = re.compile(r"^type (\w+) struct \{\n(.*?)^\}", re.S | re.M)
_FIELD = re.compile(r"^\t(?:(\w+)\s+)?([\w.*\[\]]+)\s+`json:\"([^\"]*)\"", re.M)


@cache
def types() -> dict[str, dict[str, str | None]]:
    """Struct name -> {json name: struct type of its value, or None when not a struct of this
    file}; inlined structs' fields are merged in."""
    text = TYPES.read_text(encoding="utf-8")
    raw: dict[str, list[tuple[str, str]]] = {}
    for name, body in _STRUCT.findall(text):
        raw[name] = [(tag.split(",")[0], typ) for _, typ, tag in _FIELD.findall(body)]

    def fields(name: str) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for json_name, typ in raw.get(name, []):
            base = typ.lstrip("*[]")
            if json_name == "":  # inline
                out.update(_TYPE_META if base == "metav1.TypeMeta" else fields(base))
            else:
                out[json_name] = base if base in raw and not typ.startswith("map[") else None
        return out

    return {name: fields(name) for name in raw}


def _unknown(value: Any, struct: str, path: str) -> list[str]:
    allowed = types()[struct]
    problems = []
    if isinstance(value, list):
        for i, item in enumerate(value):
            problems += _unknown(item, struct, f"{path}[{i}]")
        return problems
    if not isinstance(value, dict):
        return [f"{path or 'the configuration'}: expected a mapping ({struct})"]
    for key, sub in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in allowed:
            problems.append(
                f"{where}: unknown field of {struct} in {API} (Kueue's strict decoding stops "
                f"the manager); known: {', '.join(sorted(allowed))}"
            )
        elif allowed[key] is not None and sub is not None:
            problems += _unknown(sub, allowed[key] or "", where)
    return problems


def validate(cfg: Any) -> list[str]:
    """What Kueue would refuse in this Configuration, and what airig's manifests need that it
    lacks."""
    problems = _unknown(cfg, "Configuration", "")
    if problems or not isinstance(cfg, dict):
        return problems
    if cfg.get("apiVersion") != API or cfg.get("kind") != "Configuration":
        problems.append(f"apiVersion/kind: expected {API} Configuration")
    fair = cfg.get("fairSharing")
    if not isinstance(fair, dict):
        problems.append(
            "fairSharing: not set, so fair sharing is off and the ClusterQueues' "
            "fairSharing.weight is ignored"
        )
    elif fair.get("preemptionStrategies") not in STRATEGIES:
        problems.append(
            f"fairSharing.preemptionStrategies: {fair.get('preemptionStrategies')!r} is none of "
            f"{', '.join(map(str, STRATEGIES))}"
        )
    frameworks = (cfg.get("integrations") or {}).get("frameworks") or []
    for f in FRAMEWORKS:
        if f not in frameworks:
            problems.append(
                f"integrations.frameworks: no {f!r}, so Kueue would not admit what airig "
                "platform serves"
            )
    return problems


def configuration() -> dict[str, Any]:
    """The manager's Configuration: Kueue's own defaults of the release's
    config/components/manager/controller_manager_config.yaml, with fair sharing on and the
    integrations airig's workloads use."""
    return {
        "apiVersion": API,
        "kind": "Configuration",
        "health": {"healthProbeBindAddress": ":8081"},
        "metrics": {"bindAddress": ":8443"},
        "webhook": {"port": 9443},
        "leaderElection": {"leaderElect": True, "resourceName": "c1f6bfd2.kueue.x-k8s.io"},
        "integrations": {"frameworks": ["batch/job", "pod", *FRAMEWORKS]},
        "fairSharing": {"preemptionStrategies": list(STRATEGIES[2])},
    }


def check_manifest(text: str, source: str) -> list[str]:
    """The problems of the Configuration inside a Kueue release manifest (its ConfigMap
    kueue-manager-config, key controller_manager_config.yaml), which k3s applies as an add-on."""
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError as exc:
        return [f"{source}: not YAML ({str(exc).splitlines()[0]})"]
    maps = [
        d
        for d in docs
        if d.get("kind") == "ConfigMap"
        and (d.get("metadata") or {}).get("name", "").endswith("manager-config")
    ]
    if not maps:
        return [f"{source}: no ConfigMap kueue-manager-config (not a Kueue release manifest?)"]
    raw = (maps[0].get("data") or {}).get("controller_manager_config.yaml")
    if not isinstance(raw, str):
        return [f"{source}: kueue-manager-config holds no controller_manager_config.yaml"]
    try:
        cfg = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        return [f"{source}: its Configuration is not YAML ({str(exc).splitlines()[0]})"]
    return [f"{source}: {p}" for p in validate(cfg)]
