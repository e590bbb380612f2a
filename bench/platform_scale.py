"""Issue 16: how long `airig platform` takes to plan and validate an organisation, and how long
the multi-node planner takes. The example (3 boxes, 2 teams) and a synthetic rack (24 Team
boxes, 40 teams each serving a model). Prints numbers; asserts nothing."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from airig import platform, profiles
from airig.fleet import Box
from airig.planner import Catalog, PlanRequest, multinode

REPO = Path(__file__).resolve().parents[1]
RUNS = 5


def timed(fn: Any) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(RUNS):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def org_run(boxes: list[Box], data: dict[str, Any]) -> int:
    org = platform.load_org(data, platform.flavours_from(boxes))
    files = platform.manifests(org)
    assert not platform.validate_all(files)
    return sum(len(v) for v in files.values())


def main() -> None:
    team, home = profiles.load("team", ()), profiles.load("home", ())
    example = yaml.safe_load((REPO / "inventories" / "platform" / "org.yml").read_text())
    boxes = [Box("team-a", team, ()), Box("team-b", team, ()), Box("home-1", home, ())]
    platform.validate({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "warm"}})
    seconds, count = timed(lambda: org_run(boxes, example))
    print(
        f"example org (3 boxes, 2 teams): {count} manifests planned + validated in "
        f"{seconds * 1000:.0f} ms (median of {RUNS})"
    )

    rack = [Box(f"team-{i:02d}", team, ()) for i in range(24)]  # 96 GPUs
    flavour = platform.slug(str(team.gpus.model))
    teams = {
        f"t{i:02d}": {
            "quota": {flavour: 2},
            "weight": 1 + i % 3,
            "borrowing_limit": 2,
            "serve": [{"name": f"m{i:02d}", "path": "gpt-oss-120b", "gpus": 2}],
        }
        for i in range(40)
    }
    seconds, count = timed(lambda: org_run(rack, {"org": "big", "teams": teams}))
    print(
        f"rack org (24 boxes, 96 GPUs, 40 teams): {count} manifests planned + validated in "
        f"{seconds * 1000:.0f} ms (median of {RUNS})"
    )

    catalog = Catalog.default()
    model = catalog.model("llama-3.1-405b")
    for name, quant in (("team", "FP8"), ("business", "FP16"), ("home", "FP8")):
        prof = profiles.load(name, ())
        req = PlanRequest(models=(model,), quants=(quant,), profiles=(prof,), engine="vllm")
        seconds, rows = timed(lambda p=prof, r=req, q=quant: multinode.plan_nodes(model, q, p, r))
        print(
            f"plan --across-boxes: llama-3.1-405b {quant} on {name}: "
            f"{multinode.describe(rows)} ({seconds * 1000:.2f} ms)"
        )


if __name__ == "__main__":
    main()
