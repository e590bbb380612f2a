"""`airig platform`: an organisation's GPU pool on Kubernetes + Kueue, from an org file.

airig hands the pool over to existing engines: k3s schedules, NVIDIA's device plugin counts the
GPUs, Kueue queues and shares them, vLLM serves (a Deployment per model, or a LeaderWorkerSet
when one model spans several nodes). What airig adds is the plan and the manifests:

- one ResourceFlavor per GPU model of the inventory's boxes (node label
  ``airig.dev/gpu-model``, set on each node from its profile);
- one Cohort for the organisation, one ClusterQueue per team with its nominal quota per flavour,
  borrowing and lending limits and fair-sharing weight, one LocalQueue in the team's namespace;
- the teams' serving workloads, carrying the queue label on the pod template.

Before anything is written the plan is checked (quotas within the GPUs of each flavour, every
LocalQueue's ClusterQueue exists, weights > 0, a pod's GPUs within one node's) and every manifest
is validated: core objects strictly against Kubernetes' own schemas (kubernetes-validate), Kueue
and LeaderWorkerSet objects against their CRDs' OpenAPI schemas and CEL rules (cel-python). No
API server runs here; docs/scale.md says what has never run.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from airig import _yaml
from airig.errors import InputError

DATA = Path(__file__).parent / "data"
SCHEMAS = DATA / "schemas"
GPU_LABEL = "airig.dev/gpu-model"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
MODELS_DIR = "/srv/airig/models"  # base_data_dir/models: where the boxes keep weights
GPU = "nvidia.com/gpu"
# DNS-1123 label: namespaces, queues, flavours, services.
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_PATH_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ORG_KEYS = {
    "org",
    "teams",
    "priorities",
    "per_gpu",
    "shutdown_timeout",
    "prestop_seconds",
    "models_dir",
    "gateway",
}
# The namespace label that lets a namespace's pods (a gateway's) reach every team's servers.
GATEWAY_LABEL = "airig.dev/gateway"
_TEAM_KEYS = {"quota", "weight", "borrowing_limit", "lending_limit", "serve"}
_SERVE_KEYS = {"name", "path", "gpus", "nodes", "replicas", "priority", "flavour", "args"}


def versions() -> dict[str, Any]:
    data: dict[str, Any] = _yaml.load_file(DATA / "platform.yml")
    return data


@dataclass(frozen=True)
class Flavour:
    name: str  # slug of the GPU model, the ResourceFlavor's name and the node label's value
    gpu_model: str
    gpus: int  # in the whole pool
    node_gpus: int  # on the largest node
    boxes: tuple[str, ...]
    memory_gib_per_gpu: int  # host memory per GPU on the smallest box


@dataclass(frozen=True)
class Serve:
    name: str
    path: str
    gpus: int  # per node (tensor parallel within a node)
    nodes: int  # > 1: a LeaderWorkerSet, pipeline parallel across nodes
    replicas: int
    priority: str | None
    flavour: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Team:
    name: str
    quota: dict[str, int]
    weight: float
    borrowing_limit: int | None
    lending_limit: int | None
    serve: tuple[Serve, ...]

    @property
    def namespace(self) -> str:
        return f"team-{self.name}"


@dataclass
class Org:
    name: str
    teams: list[Team]
    flavours: dict[str, Flavour]
    priorities: dict[str, int] = field(default_factory=dict)
    cpu_per_gpu: int = 8
    shutdown_timeout: int = 60
    prestop_seconds: int = 10
    models_dir: str = MODELS_DIR
    # Addresses outside the cluster (the fleet's gateway) allowed to reach every team's servers.
    gateway_cidrs: tuple[str, ...] = ()


def slug(gpu_model: str) -> str:
    """'NVIDIA GeForce RTX 5090' -> 'geforce-rtx-5090' (a label value and a DNS-1123 name)."""
    text = re.sub(r"^nvidia\s+", "", gpu_model.strip(), flags=re.IGNORECASE).lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:63].rstrip("-")


def flavours_from(boxes: list[Any]) -> dict[str, Flavour]:
    """ResourceFlavors from boxes (airig.fleet.Box): one per GPU model; boxes without GPUs or
    without a GPU model in their profile are not part of the pool."""
    found: dict[str, list[Any]] = {}
    for box in boxes:
        gpus = box.profile.gpus
        if gpus.count > 0 and gpus.model:
            found.setdefault(slug(gpus.model), []).append(box)
    out = {}
    for name, members in sorted(found.items()):
        per_gpu = [
            int((b.profile.ram_gb or 0) / 1.073741824 / b.profile.gpus.count) for b in members
        ]
        out[name] = Flavour(
            name=name,
            gpu_model=str(members[0].profile.gpus.model),
            gpus=sum(b.profile.gpus.count for b in members),
            node_gpus=max(b.profile.gpus.count for b in members),
            boxes=tuple(b.name for b in members),
            memory_gib_per_gpu=min(per_gpu),
        )
    return out


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value) or len(value) > 58:
        raise InputError(
            f"{where}: bad name {value!r}: lower-case letters, digits and '-', at most 58 "
            "characters, starting and ending with a letter or digit"
        )
    return value


def _int(value: Any, where: str, low: int, high: int = 1 << 20) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{where}: bad value {value!r}: expected a whole number {low}-{high}")
    return value


def _keys(entry: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected a mapping, found {entry!r}")
    unknown = sorted(str(k) for k in entry if k not in allowed)
    if unknown:
        raise InputError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    return entry


def _path(value: Any, where: str) -> str:
    """A model directory relative to MODELS_DIR: plain names joined by '/', never '..'."""
    parts = value.split("/") if isinstance(value, str) else []
    if not parts or not all(_PATH_PART.fullmatch(p) and p != ".." for p in parts):
        raise InputError(
            f"{where}: bad path {value!r}: a directory under models_dir on every node, "
            "as plain names joined by '/' (letters, digits, '.', '_', '-'; no '..')"
        )
    return str(value)


def _models_dir(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or value == "/":
        raise InputError(f"{where}: bad value {value!r}: an absolute directory on every node")
    _path(value[1:], where)
    return value.rstrip("/")


def _arg(value: Any, where: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"--[a-z0-9][a-z0-9-]*(=[^\s]+)?", value):
        raise InputError(
            f"{where}: bad vLLM argument {value!r}: expected --flag or --flag=value, no spaces"
        )
    if value.split("=")[0] in {"--model", "--host", "--port", "--api-key", "--shutdown-timeout"}:
        raise InputError(f"{where}: {value.split('=')[0]} is set by airig")
    return value


def _serve(entry: Any, where: str, team_quota: dict[str, int], priorities: set[str]) -> Serve:
    e = _keys(entry, _SERVE_KEYS, where)
    for key in ("name", "path"):
        if key not in e:
            raise InputError(f"{where}: '{key}' is required")
    flavour = e.get("flavour")
    if flavour is None:
        if len(team_quota) != 1:
            raise InputError(f"{where}: say which GPU flavour (flavour: one of the team's quota)")
        flavour = next(iter(team_quota))
    priority = e.get("priority")
    if priority is not None and priority not in priorities:
        raise InputError(
            f"{where}: unknown priority {priority!r}; the org file's priorities: "
            f"{', '.join(sorted(priorities)) or 'none'}"
        )
    args = e.get("args", [])
    if not isinstance(args, list):
        raise InputError(f"{where}.args: expected a list of --flag[=value]")
    return Serve(
        name=_name(e["name"], f"{where}.name"),
        path=_path(e["path"], f"{where}.path"),
        gpus=_int(e.get("gpus", 1), f"{where}.gpus", 1, 64),
        nodes=_int(e.get("nodes", 1), f"{where}.nodes", 1, 64),
        replicas=_int(e.get("replicas", 1), f"{where}.replicas", 0, 64),
        priority=priority,
        flavour=str(flavour),
        args=tuple(_arg(a, f"{where}.args[{i}]") for i, a in enumerate(args)),
    )


def load_org(data: Any, flavours: dict[str, Flavour], source: str = "org") -> Org:
    """Read an org file's content (teams, quotas, priorities, serving) against the pool."""
    d = _keys(data, _ORG_KEYS, source)
    org_name = _name(d.get("org"), f"{source}: org")
    prio = d.get("priorities", {}) or {}
    if not isinstance(prio, dict):
        raise InputError(f"{source}: priorities: expected a mapping name: value")
    priorities = {
        _name(k, f"{source}: priorities"): _int(v, f"{source}: priorities.{k}", 0, 1_000_000_000)
        for k, v in prio.items()
    }
    per_gpu = _keys(d.get("per_gpu", {}) or {}, {"cpu"}, f"{source}: per_gpu")
    teams_in = d.get("teams")
    if not isinstance(teams_in, dict) or not teams_in:
        raise InputError(f"{source}: teams: expected a mapping of team name to its settings")
    teams = []
    for tname, tval in teams_in.items():
        where = f"{source}: teams.{tname}"
        _name(tname, where)
        t = _keys(tval, _TEAM_KEYS, where)
        quota_in = t.get("quota")
        if not isinstance(quota_in, dict) or not quota_in:
            raise InputError(f"{where}.quota: expected flavour: GPUs, e.g. {{rtx-5090: 2}}")
        quota = {str(k): _int(v, f"{where}.quota.{k}", 0) for k, v in quota_in.items()}
        weight = t.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            raise InputError(f"{where}.weight: bad value {weight!r}: fair-sharing weight > 0")
        limits = {
            k: None if t.get(k) is None else _int(t[k], f"{where}.{k}", 0)
            for k in ("borrowing_limit", "lending_limit")
        }
        serve_in = t.get("serve", []) or []
        if not isinstance(serve_in, list):
            raise InputError(f"{where}.serve: expected a list")
        serve = tuple(
            _serve(s, f"{where}.serve[{i}]", quota, set(priorities)) for i, s in enumerate(serve_in)
        )
        teams.append(
            Team(
                tname,
                quota,
                float(weight),
                limits["borrowing_limit"],
                limits["lending_limit"],
                serve,
            )
        )
    org = Org(
        name=org_name,
        teams=teams,
        flavours=flavours,
        priorities=priorities,
        cpu_per_gpu=_int(per_gpu.get("cpu", 8), f"{source}: per_gpu.cpu", 1, 512),
        shutdown_timeout=_int(
            d.get("shutdown_timeout", 60), f"{source}: shutdown_timeout", 1, 3600
        ),
        prestop_seconds=_int(d.get("prestop_seconds", 10), f"{source}: prestop_seconds", 0, 600),
        models_dir=_models_dir(d.get("models_dir", MODELS_DIR), f"{source}: models_dir"),
        gateway_cidrs=_gateway_cidrs(d.get("gateway"), f"{source}: gateway"),
    )
    problems = check(org)
    if problems:
        raise InputError(f"{source}: the plan does not hold:\n  " + "\n  ".join(problems))
    return org


def _gateway_cidrs(value: Any, where: str) -> tuple[str, ...]:
    """gateway: {cidrs: [10.0.0.5/32, ...]}: networks (as ipaddress reads them) or none."""
    import ipaddress

    if value is None:
        return ()
    d = _keys(value, {"cidrs"}, where)
    cidrs = d.get("cidrs") or []
    if not isinstance(cidrs, list):
        raise InputError(f"{where}.cidrs: expected a list of networks, e.g. [10.0.0.5/32]")
    out = []
    for c in cidrs:
        try:
            if not isinstance(c, str):
                raise ValueError
            out.append(str(ipaddress.ip_network(c, strict=True)))
        except ValueError:
            raise InputError(
                f"{where}.cidrs: bad value {c!r}: expected a network such as 10.0.0.5/32 (no "
                "host bits set)"
            ) from None
    return tuple(out)


def _network_policies(org: Org, team: Team) -> list[dict[str, Any]]:
    """Nothing reaches a team's pods but the team's own pods, the gateway's namespace (label
    airig.dev/gateway=true) and the org's gateway addresses (issue 29 item 10: vLLM listens on
    every address of its pod and its key guards only /v1)."""
    api = "networking.k8s.io/v1"
    sources: list[dict[str, Any]] = [
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {GATEWAY_LABEL: "true"}}},
    ]
    sources += [{"ipBlock": {"cidr": c}} for c in org.gateway_cidrs]
    return [
        {
            "apiVersion": api,
            "kind": "NetworkPolicy",
            "metadata": _meta("default-deny", team.namespace),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
        {
            "apiVersion": api,
            "kind": "NetworkPolicy",
            "metadata": _meta("team-and-gateway", team.namespace),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": sources}],
            },
        },
    ]


def check(org: Org) -> list[str]:
    """The org plan's own rules, each broken one as a sentence."""
    problems = []
    if not org.flavours:
        problems.append("the inventory has no box with GPUs (and a GPU model in its profile)")
    names = [t.name for t in org.teams]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"team {dup} is named twice")
    for fname, flavour in org.flavours.items():
        if flavour.memory_gib_per_gpu < 1:
            problems.append(
                f"{fname}: a profile of {', '.join(flavour.boxes)} gives no host.ram_gb; the "
                "queues' memory quota and the pods' memory requests come from it"
            )
        total = sum(t.quota.get(fname, 0) for t in org.teams)
        if total > flavour.gpus:
            problems.append(
                f"{fname}: the teams' quotas add up to {total} GPUs, the pool has "
                f"{flavour.gpus} ({', '.join(flavour.boxes)})"
            )
    for team in org.teams:
        if team.weight <= 0:
            problems.append(f"team {team.name}: fair-sharing weight must be > 0")
        for fname in team.quota:
            if fname not in org.flavours:
                problems.append(
                    f"team {team.name}: quota names {fname!r}, not a GPU flavour of the pool; "
                    f"flavours: {', '.join(org.flavours) or 'none'}"
                )
        for limit in (team.borrowing_limit, team.lending_limit):
            if limit is not None and len(org.teams) < 2:
                problems.append(f"team {team.name}: borrowing and lending need a second team")
        if team.lending_limit is not None:
            for fname, n in team.quota.items():
                if team.lending_limit > n:
                    problems.append(
                        f"team {team.name}: lending_limit {team.lending_limit} is more than "
                        f"its {n} {fname} GPUs"
                    )
        seen = set()
        for s in team.serve:
            if s.name in seen:
                problems.append(f"team {team.name}: serve {s.name} is named twice")
            seen.add(s.name)
            known = org.flavours.get(s.flavour)
            if known is None:
                problems.append(f"team {team.name}: {s.name} asks for flavour {s.flavour!r}")
                continue
            flavour = known
            if s.flavour not in team.quota:
                problems.append(f"team {team.name}: {s.name} uses {s.flavour}, not in its quota")
            if s.gpus > flavour.node_gpus:
                problems.append(
                    f"team {team.name}: {s.name} asks for {s.gpus} GPUs per pod; the largest "
                    f"{s.flavour} node has {flavour.node_gpus}"
                )
            if s.nodes > len(flavour.boxes):
                problems.append(
                    f"team {team.name}: {s.name} spans {s.nodes} nodes; {s.flavour} has "
                    f"{len(flavour.boxes)}"
                )
            reach = team.quota.get(s.flavour, 0) + (team.borrowing_limit or 0)
            if s.gpus * s.nodes > reach:
                problems.append(
                    f"team {team.name}: one replica of {s.name} needs {s.gpus * s.nodes} "
                    f"{s.flavour} GPUs; the team's quota (+ borrowing) is {reach}"
                )
    return problems


# -- manifests -------------------------------------------------------------------------------


def _meta(name: str, namespace: str | None = None, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {"app.kubernetes.io/managed-by": "airig", **labels}
    return meta


def _quantity_gi(n: int) -> str:
    return f"{n}Gi"


def _cluster_queue(org: Org, team: Team, api: str) -> dict[str, Any]:
    flavours = []
    for fname, gpus in sorted(team.quota.items()):
        f = org.flavours[fname]
        resources = []
        for res, nominal in (
            ("cpu", str(gpus * org.cpu_per_gpu)),
            ("memory", _quantity_gi(gpus * f.memory_gib_per_gpu)),
            (GPU, str(gpus)),
        ):
            r: dict[str, Any] = {"name": res, "nominalQuota": nominal}
            if res == GPU and team.borrowing_limit is not None:
                r["borrowingLimit"] = str(team.borrowing_limit)
            if res == GPU and team.lending_limit is not None:
                r["lendingLimit"] = str(team.lending_limit)
            resources.append(r)
        flavours.append({"name": fname, "resources": resources})
    return {
        "apiVersion": api,
        "kind": "ClusterQueue",
        "metadata": _meta(team.name),
        "spec": {
            "cohortName": org.name,
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": team.namespace}},
            "fairSharing": {"weight": _weight(team.weight)},
            "preemption": {
                "reclaimWithinCohort": "Any",
                "withinClusterQueue": "LowerPriority",
            },
            "queueingStrategy": "BestEffortFIFO",
            "resourceGroups": [{"coveredResources": ["cpu", "memory", GPU], "flavors": flavours}],
        },
    }


def _weight(w: float) -> str:
    return str(int(w)) if float(w).is_integer() else f"{w:g}"


def _container(org: Org, team: Team, s: Serve, image: str, command: list[str]) -> dict[str, Any]:
    f = org.flavours[s.flavour]
    requests = {
        "cpu": str(s.gpus * org.cpu_per_gpu),
        "memory": _quantity_gi(s.gpus * f.memory_gib_per_gpu),
        GPU: str(s.gpus),
    }
    return {
        "name": "vllm",
        "image": image,
        "command": command,
        "env": [
            {
                # Fail closed: without the team's key Secret the pod does not start.
                "name": "VLLM_API_KEY",
                "valueFrom": {
                    "secretKeyRef": {"name": f"{s.name}-api-key", "key": "key", "optional": False}
                },
            }
        ],
        "ports": [{"name": "http", "containerPort": 8000, "protocol": "TCP"}],
        "resources": {"requests": requests, "limits": dict(requests)},
        "volumeMounts": [
            {"name": "models", "mountPath": "/models", "readOnly": True},
            {"name": "shm", "mountPath": "/dev/shm"},
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "lifecycle": {"preStop": {"sleep": {"seconds": org.prestop_seconds}}},
    }


def _pod_spec(org: Org, s: Serve, container: dict[str, Any], probes: bool) -> dict[str, Any]:
    if probes:
        container["readinessProbe"] = {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        }
        container["startupProbe"] = {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 180,
        }
    return {
        "runtimeClassName": "nvidia",
        "nodeSelector": {GPU_LABEL: s.flavour},
        "automountServiceAccountToken": False,
        # vLLM's drain: preStop, then SIGTERM lets in-flight requests finish within
        # --shutdown-timeout; the kubelet must wait for both before SIGKILL.
        "terminationGracePeriodSeconds": grace_seconds(org),
        "containers": [container],
        "volumes": [
            {
                "name": "models",
                "hostPath": {"path": f"{org.models_dir}/{s.path}", "type": "Directory"},
            },
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
        ],
    }


def grace_seconds(org: Org) -> int:
    """terminationGracePeriodSeconds >= preStop + vLLM's --shutdown-timeout (+ 5 s margin)."""
    return org.prestop_seconds + org.shutdown_timeout + 5


def _vllm_args(org: Org, s: Serve) -> list[str]:
    return [
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--served-model-name",
        s.name,
        "--tensor-parallel-size",
        str(s.gpus),
        *(["--pipeline-parallel-size", str(s.nodes)] if s.nodes > 1 else []),
        "--shutdown-timeout",
        str(org.shutdown_timeout),
        *s.args,
    ]


def _workload(org: Org, team: Team, s: Serve, image: str) -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": s.name, QUEUE_LABEL: team.name}
    if s.priority:
        labels[PRIORITY_LABEL] = s.priority
    select = {"app.kubernetes.io/name": s.name}
    serve = ["vllm", "serve", "/models", *_vllm_args(org, s)]
    v = versions()
    if s.nodes == 1:
        container = _container(org, team, s, image, serve)
        workload: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(s.name, team.namespace, **labels),
            "spec": {
                "replicas": s.replicas,
                "selector": {"matchLabels": select},
                "strategy": {"type": "Recreate"},
                "template": {
                    "metadata": {"labels": _meta(s.name, **labels)["labels"] | select},
                    "spec": _pod_spec(org, s, container, probes=True),
                },
            },
        }
    else:
        # vLLM's own multi-node mode: the leader serves, workers join headless.
        multi = ["--nnodes", "$(LWS_GROUP_SIZE)", "--master-addr", "$(LWS_LEADER_ADDRESS)"]
        leader = _container(org, team, s, image, [*serve, *multi, "--node-rank", "0"])
        worker = _container(
            org,
            team,
            s,
            image,
            [*serve, *multi, "--node-rank", "$(LWS_WORKER_INDEX)", "--headless"],
        )
        worker.pop("ports")
        pod_meta = {"labels": _meta(s.name, **labels)["labels"] | select}
        workload = {
            "apiVersion": v["leaderworkerset"]["api"],
            "kind": "LeaderWorkerSet",
            "metadata": _meta(s.name, team.namespace, **labels),
            "spec": {
                "replicas": s.replicas,
                "startupPolicy": "LeaderReady",
                "leaderWorkerTemplate": {
                    "size": s.nodes,
                    "restartPolicy": "RecreateGroupOnPodRestart",
                    "leaderTemplate": {
                        "metadata": copy.deepcopy(pod_meta),
                        "spec": _pod_spec(org, s, leader, probes=True),
                    },
                    "workerTemplate": {
                        "metadata": copy.deepcopy(pod_meta),
                        "spec": _pod_spec(org, s, worker, probes=False),
                    },
                },
            },
        }
        select = {**select, "leaderworkerset.sigs.k8s.io/worker-index": "0"}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(s.name, team.namespace, **{"app.kubernetes.io/name": s.name}),
        "spec": {
            "selector": select,
            "ports": [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return [workload, service]


def cluster(image: str) -> list[dict[str, Any]]:
    """The NVIDIA runtime class (k3s also creates it when it finds the runtime) and NVIDIA's
    device plugin on every node that carries the GPU label."""
    name = "nvidia-device-plugin"
    labels = {"app.kubernetes.io/name": name}
    return [
        {
            "apiVersion": "node.k8s.io/v1",
            "kind": "RuntimeClass",
            "metadata": _meta("nvidia"),
            "handler": "nvidia",
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": _meta(name, "kube-system", **labels),
            "spec": {
                "selector": {"matchLabels": labels},
                "updateStrategy": {"type": "RollingUpdate"},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "runtimeClassName": "nvidia",
                        "priorityClassName": "system-node-critical",
                        "automountServiceAccountToken": False,
                        "affinity": {
                            "nodeAffinity": {
                                "requiredDuringSchedulingIgnoredDuringExecution": {
                                    "nodeSelectorTerms": [
                                        {
                                            "matchExpressions": [
                                                {"key": GPU_LABEL, "operator": "Exists"}
                                            ]
                                        }
                                    ]
                                }
                            }
                        },
                        "tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}],
                        "containers": [
                            {
                                "name": name,
                                "image": image,
                                "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "true"}],
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [
                                    {
                                        "name": "device-plugin",
                                        "mountPath": "/var/lib/kubelet/device-plugins",
                                    }
                                ],
                            }
                        ],
                        "volumes": [
                            {
                                "name": "device-plugin",
                                "hostPath": {
                                    "path": "/var/lib/kubelet/device-plugins",
                                    "type": "Directory",
                                },
                            }
                        ],
                    },
                },
            },
        },
    ]


def manifests(org: Org) -> dict[str, list[dict[str, Any]]]:
    """File name -> the objects it holds, in the order they are applied."""
    v = versions()
    api = v["kueue"]["api"]
    image = v["vllm"]["image"]
    kueue: list[dict[str, Any]] = [
        {
            "apiVersion": api,
            "kind": "ResourceFlavor",
            "metadata": _meta(f.name),
            "spec": {"nodeLabels": {GPU_LABEL: f.name}},
        }
        for f in org.flavours.values()
    ]
    kueue.append({"apiVersion": api, "kind": "Cohort", "metadata": _meta(org.name), "spec": {}})
    kueue += [
        {
            "apiVersion": api,
            "kind": "WorkloadPriorityClass",
            "metadata": _meta(name),
            "value": value,
            "description": f"{org.name}: {name}",
        }
        for name, value in sorted(org.priorities.items())
    ]
    out = {"00-cluster.yaml": cluster(v["device_plugin"]["image"]), "01-kueue.yaml": kueue}
    for team in org.teams:
        objs: list[dict[str, Any]] = [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": _meta(team.namespace, **{"airig.dev/team": team.name}),
            },
            _cluster_queue(org, team, api),
            {
                "apiVersion": api,
                "kind": "LocalQueue",
                "metadata": _meta(team.name, team.namespace),
                "spec": {"clusterQueue": team.name},
            },
            *_network_policies(org, team),
        ]
        for s in team.serve:
            objs += _workload(org, team, s, image)
        out[f"10-team-{team.name}.yaml"] = objs
    return out


# -- validation ------------------------------------------------------------------------------


def _to_json_schema(node: Any) -> Any:
    """A CRD's structural OpenAPI v3 schema as JSON Schema: listed properties are the only
    ones allowed (unless x-kubernetes-preserve-unknown-fields), int-or-string is either."""
    if isinstance(node, list):
        return [_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable"):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
    out.pop("nullable", None)
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def _crds() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> that version's openAPIV3Schema, from the vendored CRDs."""
    found = {}
    for path in sorted(SCHEMAS.glob("*/*.yaml")):
        # Upstream's CRDs, shipped with airig (trusted data; the LWS CRD is 1.3 MB, over the
        # cap _yaml puts on users' files).
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        crd = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                found[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return found


def _cel_rules(schema: dict[str, Any], value: Any, path: str) -> list[str]:
    """Evaluate every x-kubernetes-validations rule along ``value`` (transition rules, which
    compare with oldSelf, have nothing to compare on create and are skipped, as the API server
    does)."""
    import celpy
    from celpy.adapter import json_to_cel

    problems = []
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"]:
            continue
        env = celpy.Environment()
        try:
            result: Any = env.program(env.compile(rule["rule"])).evaluate(
                {"self": json_to_cel(value)}
            )
        except Exception as exc:  # a rule that errors rejects the object (API server too)
            result = exc
        if isinstance(result, Exception):  # celpy returns CELEvalError (an Exception)
            problems.append(f"{path}: CEL rule {rule['rule']!r} could not be evaluated: {result}")
        elif not bool(result):
            problems.append(f"{path}: {rule.get('message') or rule['rule']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key, sub in value.items():
            if key in props:
                problems += _cel_rules(props[key], sub, f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                problems += _cel_rules(schema["additionalProperties"], sub, f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problems += _cel_rules(schema["items"], item, f"{path}[{i}]")
    return problems


def validate(obj: dict[str, Any], kubernetes_version: str | None = None) -> list[str]:
    """Problems of one manifest, as sentences; [] when the API server would accept it."""
    import jsonschema

    kind, api = obj.get("kind"), obj.get("apiVersion")
    where = f"{kind} {obj.get('metadata', {}).get('name', '?')}"
    name = obj.get("metadata", {}).get("name")
    problems = []
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(f"{where}: metadata.name is not a DNS-1123 label")
    crd = _crds().get((str(api), str(kind)))
    if crd is None:
        import kubernetes_validate

        version = kubernetes_version or versions()["kubernetes"]["version"]
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{where}: {exc.message} (at {'.'.join(map(str, exc.path))})")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{where}: no schema for {api} {kind} in Kubernetes {version}")
        return problems
    schema = _to_json_schema(crd)
    for error in sorted(
        jsonschema.Draft7Validator(schema).iter_errors(obj), key=lambda e: list(e.path)
    ):
        problems.append(f"{where}: {error.message} (at {'.'.join(map(str, error.path))})")
    if not problems:
        problems += [f"{where}: {p.lstrip('.')}" for p in _cel_rules(crd, obj, "")]
    return problems


def validate_all(files: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every manifest's problems, plus references across them (each LocalQueue's ClusterQueue,
    each ClusterQueue's flavours and each workload's queue and priority class exist)."""
    problems = []
    objs = [(f, o) for f, items in files.items() for o in items]
    for fname, obj in objs:
        problems += [f"{fname}: {p}" for p in validate(obj)]
    names: dict[str, set[str]] = {}
    for _, obj in objs:
        names.setdefault(obj["kind"], set()).add(obj["metadata"]["name"])
    local_queues = {
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for _, o in objs
        if o["kind"] == "LocalQueue"
    }
    for fname, obj in objs:
        kind, meta = obj["kind"], obj["metadata"]
        if kind == "LocalQueue" and obj["spec"]["clusterQueue"] not in names.get(
            "ClusterQueue", set()
        ):
            problems.append(
                f"{fname}: LocalQueue {meta['name']}: no ClusterQueue {obj['spec']['clusterQueue']}"
            )
        if kind == "ClusterQueue":
            for group in obj["spec"].get("resourceGroups", []):
                for flavour in group["flavors"]:
                    if flavour["name"] not in names.get("ResourceFlavor", set()):
                        problems.append(
                            f"{fname}: ClusterQueue {meta['name']}: no "
                            f"ResourceFlavor {flavour['name']}"
                        )
            cohort = obj["spec"].get("cohortName")
            if cohort and cohort not in names.get("Cohort", set()):
                problems.append(f"{fname}: ClusterQueue {meta['name']}: no Cohort {cohort}")
        if kind in ("Deployment", "LeaderWorkerSet"):
            templates = (
                [obj["spec"]["template"]]
                if kind == "Deployment"
                else [
                    obj["spec"]["leaderWorkerTemplate"][t]
                    for t in ("leaderTemplate", "workerTemplate")
                ]
            )
            for template in templates:
                labels = template["metadata"].get("labels", {})
                queue = labels.get(QUEUE_LABEL)
                if (meta.get("namespace"), queue) not in local_queues:
                    problems.append(
                        f"{fname}: {kind} {meta['name']}: pod template's queue "
                        f"{queue!r} is no LocalQueue of {meta.get('namespace')}"
                    )
                prio = labels.get(PRIORITY_LABEL)
                if prio and prio not in names.get("WorkloadPriorityClass", set()):
                    problems.append(
                        f"{fname}: {kind} {meta['name']}: no WorkloadPriorityClass {prio}"
                    )
                spec = template["spec"]
                stop = max(
                    c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
                    + _shutdown(c.get("command", []))
                    for c in spec["containers"]
                )
                if spec.get("terminationGracePeriodSeconds", 30) < stop:
                    problems.append(
                        f"{fname}: {kind} {meta['name']}: terminationGracePeriodSeconds "
                        f"{spec.get('terminationGracePeriodSeconds', 30)} < preStop + "
                        f"--shutdown-timeout ({stop})"
                    )
    return problems


def _shutdown(command: list[str]) -> int:
    if "--shutdown-timeout" in command:
        return int(command[command.index("--shutdown-timeout") + 1])
    return 0


# The first line of every file `render` writes (and the one it removes when the org no longer
# has it).
RENDERED = "# written by airig platform; a file for a team no longer in the org is removed\n"


# Kueue's manager Configuration these manifests need, beside them (a subdirectory: k3s'
# auto-deploy takes only the top level's *.yaml, and the Kueue add-on carries its own ConfigMap).
KUEUE_CONFIG = "kueue/controller_manager_config.yaml"


def render(org: Org, out_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Validate every manifest, then write them (one YAML stream per file) into out_dir, and
    Kueue's manager Configuration they need into out_dir/KUEUE_CONFIG."""
    from airig import kueue_config

    files = manifests(org)
    problems = validate_all(files)
    config = kueue_config.configuration()
    problems += [f"{KUEUE_CONFIG}: {p}" for p in kueue_config.validate(config)]
    if problems:
        raise InputError("manifests do not validate:\n  " + "\n  ".join(problems))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "kueue").mkdir(exist_ok=True)
    (out_dir / KUEUE_CONFIG).write_text(
        RENDERED.replace("; a file for a team no longer in the org is removed", "")
        + yaml.safe_dump(config, sort_keys=False),
        encoding="utf-8",
    )
    for fname, objs in files.items():
        text = RENDERED + "".join("---\n" + yaml.safe_dump(o, sort_keys=False) for o in objs)
        (out_dir / fname).write_text(text, encoding="utf-8")
    # A team removed from the org file is removed: a file airig wrote for the org before and
    # does not write now goes (a file of anyone else's stays).
    for old in out_dir.glob("*.yaml"):
        if old.name in files or old.is_symlink() or not old.is_file():
            continue
        try:
            first = old.open(encoding="utf-8").readline()
        except (OSError, UnicodeDecodeError):
            continue
        if first == RENDERED:
            old.unlink()
    return files
