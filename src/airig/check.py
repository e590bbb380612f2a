"""Plan against actual on a provisioned box (issue 12 item 3): what each engine was planned to
take (summary.json's `served`, written by site.yml from the planner) beside what it reported at
start-up (engine_logs), per term, and whether the context x users the profile promised was
really allocated. The result is what `airig check` prints and what site.yml stores in
/srv/airig/state/check.json and calibration.json.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airig import engine_logs
from airig.errors import InputError
from airig.planner.memory import GB, MIB

# The plan's overhead against what the engine reports besides weights and KV: llama.cpp's
# compute/output buffers, vLLM's activation peak + non-torch + CUDA graphs, Ollama's compute
# graph. CUDA context and safety margins are not in any report.
TERMS = {"weights": "weights", "kv": "kv", "overhead": "compute"}
# llama.cpp's CPU repack buffers: a second copy of some weights laid out for this CPU's kernels
# (AMX tiles on Xeons since Sapphire Rapids; the container's host repacks the tiny model's
# 19.4 MB output matrix), the file staying mapped beside them: the engine's overhead on this
# CPU, not the model's weights.
REPACKED = frozenset({"AMX", "CPU_REPACK"})


def _actual(memory: engine_logs.EngineMemory, term: str, gpu: bool) -> float:
    """Bytes the engine reported for a plan term (GPU devices only on a GPU box)."""
    repacked = 0.0 if gpu else sum(v for d, v in memory.weights.items() if d in REPACKED)
    total = memory.total(TERMS[term], gpu_only=gpu)
    return {"weights": total - repacked, "kv": total, "overhead": total + repacked}[term]


def _planned(entry: dict[str, Any], term: str) -> float:
    planned = entry.get("planned", {})
    key = {"weights": "weights_gb", "kv": "kv_gb", "overhead": "overhead_gb"}[term]
    return float(planned.get(key, 0.0))


def compare(entry: dict[str, Any], text: str, nvml_bytes: float | None = None) -> dict[str, Any]:
    """One served model: per term plan GB, actual GB and drift; whether its promise holds;
    ``nvml_bytes``: what NVML says its processes use on the GPUs."""
    engine = entry["engine"]
    try:
        parse = engine_logs.PARSERS[engine]
    except KeyError:
        raise InputError(f"summary.json: served engine '{engine}' is not one airig runs") from None
    memory = parse(text)
    gpu = int(entry.get("devices", 0) or 0) > 0 and entry.get("device") == "GPU"
    context, users = int(entry["context"]), int(entry["sequences"])
    result: dict[str, Any] = {
        "engine": engine,
        "unit": entry["unit"],
        "model": entry["model"],
        "promised": {"context": context, "users": users},
        "terms": {},
    }
    if nvml_bytes is not None:
        result["nvml_gb"] = round(nvml_bytes / GB, 3)
    nodes = int(entry.get("nodes", 1) or 1)
    if nodes > 1:
        # Each box of a multi-node model holds one pipeline stage and reports that stage only;
        # the plan is for the whole model (docs/scale.md). Not compared, and said so.
        result["status"] = "ok"
        result["message"] = (
            f"{entry['unit']}: {entry['model']} is served across {nodes} boxes; each reports "
            "its own pipeline stage, not compared with the whole model's plan"
        )
        return result
    if not memory.found and engine == "ollama":
        result["status"] = "ok"
        result["message"] = (
            f"{entry['unit']}: Ollama loads {entry['model']} on its first request; no memory "
            "report yet (run airig check after one)"
        )
        return result
    if not memory.found:
        result["status"] = "unknown"
        result["message"] = (
            f"{entry['unit']}: no start-up memory lines in its journal (is it running? "
            f"journalctl -u {entry['unit']})"
        )
        return result
    for term in TERMS:
        actual = _actual(memory, term, gpu) / GB
        plan = _planned(entry, term)
        result["terms"][term] = {
            "plan_gb": round(plan, 6),
            "actual_gb": round(actual, 6),
            "drift_gb": round(actual - plan, 6),
        }
    delivered = _delivered(memory, context, users)
    result["delivered"] = delivered
    if delivered is None:
        result["status"] = "ok"
        result["message"] = f"{entry['unit']}: memory read; context per user not reported"
    elif delivered["context"] >= context and delivered["users"] >= users:
        result["status"] = "ok"
        result["message"] = (
            f"{entry['unit']}: {context} tokens x {users} user(s) promised, "
            f"{delivered['context']} x {delivered['users']} allocated"
        )
    else:
        result["status"] = "short"
        result["message"] = (
            f"{entry['model']} on {engine}: the profile promises {context} tokens x {users} "
            f"user(s), but the engine allocated {delivered['context']} x {delivered['users']}. "
            "Lower the model's context or concurrency in the profile, or give the engine more "
            "memory, then run airig provision again."
        )
    return result


def _delivered(memory: engine_logs.EngineMemory, context: int, users: int) -> dict[str, int] | None:
    if memory.engine == "vllm":
        if memory.kv_tokens is None:
            return None
        # vLLM shares one pool: users at the promised context, context for the promised users.
        return {
            "context": min(memory.kv_tokens // max(users, 1), context),
            "users": memory.kv_tokens // max(context, 1),
        }
    if memory.kv_tokens is None:
        return None
    return {"context": memory.kv_tokens, "users": memory.sequences or 1}


def journal(unit: str, run: Callable[..., Any] = subprocess.run) -> str:
    """The unit's lines of its current run (its systemd invocation), as the engine printed them."""
    show = run(
        ["systemctl", "show", "-p", "InvocationID", "--value", "--", unit],
        capture_output=True,
        text=True,
        check=False,
    )
    invocation = show.stdout.strip()
    if show.returncode != 0 or not invocation:
        return ""
    out = run(
        ["journalctl", "--no-pager", "-o", "cat", f"_SYSTEMD_INVOCATION_ID={invocation}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return str(out.stdout)


def unit_of(pid: int, read: Callable[[str], str] | None = None) -> str | None:
    """The systemd service a process runs in, from /proc/PID/cgroup (cgroup v2 line
    "0::/system.slice/system-airig\\x2dllama\\x2dserver.slice/airig-llama-server@m.service")."""
    from airig.verify import nvml_utils

    reader = read or (lambda path: open(path, encoding="utf-8").read())  # noqa: SIM115
    try:
        text = reader(f"/proc/{pid}/cgroup")
    except OSError:
        return None
    service: str | None = nvml_utils().service_of(text)
    return service


def nvml_by_unit(
    facts: dict[str, Any], owner: Callable[[int], str | None] = unit_of
) -> dict[str, float]:
    """GPU memory in use per systemd service, from NVML's per-process figures (the probe of
    airig verify)."""
    out: dict[str, float] = {}
    for gpu in facts.get("gpus", []):
        for proc in gpu.get("processes", []):
            unit = owner(int(proc["pid"]))
            if unit:
                out[unit] = out.get(unit, 0.0) + float(proc["used_memory_mib"]) * MIB
    return out


def check(
    summary: dict[str, Any], logs: dict[str, str], nvml: dict[str, float] | None = None
) -> list[dict[str, Any]]:
    """Every served model of ``summary`` against its unit's lines in ``logs`` (and what NVML
    says its processes use, when ``nvml`` is given)."""
    served = summary.get("served")
    if not isinstance(served, list):
        raise InputError(
            "summary.json has no `served` list: it was written by an older airig; run "
            "airig provision again"
        )
    return [
        compare(entry, logs.get(entry["unit"], ""), (nvml or {}).get(entry["unit"]))
        for entry in served
    ]


def failed(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if r["status"] != "ok"]


def calibration(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Measured drift (GB) and ratio (actual / plan) per served model and term: `airig plan
    --calibration` shows the next plan of this box with them."""
    return {
        f"{r['engine']}/{r['model']}": {
            t: {
                "drift_gb": v["drift_gb"],
                "ratio": round(v["actual_gb"] / v["plan_gb"], 4) if v["plan_gb"] else None,
            }
            for t, v in r["terms"].items()
        }
        for r in results
        if r["terms"]
    }


STATE_DIR = Path("/srv/airig/state")


def box_calibration(state_dir: Path | None = None) -> tuple[str, dict[str, Any]] | None:
    """On a provisioned box: its profile's name (summary.json) and the drift its engines
    measured (calibration.json), which `airig plan` shows for that profile's rows unasked.
    None where either is missing, unreadable or not what airig writes (not a box, or never
    checked): a plan elsewhere is the plan alone."""
    state = state_dir or STATE_DIR
    try:
        summary = json.loads((state / "summary.json").read_text(encoding="utf-8"))
        measured = json.loads((state / "calibration.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(summary, dict) or not isinstance(measured, dict):
        return None
    profile = summary.get("profile")
    return (profile, measured) if isinstance(profile, str) and profile else None


def calibrated_total_gb(row: Any, measured: dict[str, Any]) -> float | None:
    """A plan row's total with this box's measured ratios for weights and KV cache (the
    overhead keeps the plan's margins, which no engine reports)."""
    entry = measured.get(f"{row.engine}/{row.model}")
    if not isinstance(entry, dict):
        return None

    def ratio(term: str) -> float:
        value = entry.get(term, {})
        got = value.get("ratio") if isinstance(value, dict) else None
        return float(got) if isinstance(got, int | float) and got > 0 else 1.0

    total = row.weights_gb * ratio("weights") + row.kv_cache_gb * ratio("kv") + row.overhead_gb
    return round(float(total), 3)


def table(results: list[dict[str, Any]]) -> list[str]:
    """Lines of at most 80 columns: plan, actual and drift per term, then the verdict."""
    lines = [
        f"{'engine':<10} {'model':<22} {'term':<8} {'plan GB':>9} {'actual GB':>10} {'drift':>9}"
    ]
    for r in results:
        first = True
        for term, v in r["terms"].items():
            head = f"{r['engine'][:10]:<10} {r['model'][:22]:<22}" if first else " " * 33
            lines.append(
                f"{head} {term:<8} {v['plan_gb']:>9.1f} {v['actual_gb']:>10.1f} "
                f"{v['drift_gb']:>+9.1f}"
            )
            first = False
        if "nvml_gb" in r:
            lines.append(f"  NVML: {r['nvml_gb']:.1f} GB in use by its processes")
        lines.append(f"  {r['status']}: {r['message']}")
    return lines
