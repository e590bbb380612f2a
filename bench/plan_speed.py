"""Planner speed: plan the whole catalog x all formats x all builds in-process, and time the CLI
start-up. Targets (issue 2): under 0.5 s and under 1 s. Prints numbers; asserts nothing."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from airig import profiles
from airig.planner import Catalog, PlanRequest, plan

RUNS = 7


def bench_plan() -> tuple[float, int]:
    catalog = Catalog.default()
    request = PlanRequest(
        models=tuple(catalog.models), quants=("all",), profiles=tuple(profiles.load_all())
    )
    times, rows = [], 0
    for _ in range(RUNS):
        start = time.perf_counter()
        rows = len(plan(request, catalog))
        times.append(time.perf_counter() - start)
    return statistics.median(times), rows


def bench_cli(args: list[str]) -> float:
    airig = Path(sys.executable).parent / "airig"
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([str(airig), *args], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    start = time.perf_counter()
    Catalog.default()
    profiles.load_all()
    load = time.perf_counter() - start
    median, rows = bench_plan()
    print(f"load catalog + all profiles (first, cold): {load * 1000:8.1f} ms")
    print(
        f"plan whole catalog x all formats x all builds ({rows} rows), median of {RUNS}: "
        f"{median * 1000:8.1f} ms   (target < 500 ms)"
    )
    print(
        f"CLI start-up `airig --version`, median of {RUNS}: "
        f"{bench_cli(['--version']) * 1000:8.1f} ms   (target < 1000 ms)"
    )
    print(
        f"CLI `airig plan --json` (default: 3 builds), median of {RUNS}: "
        f"{bench_cli(['plan', '--json']) * 1000:8.1f} ms"
    )


if __name__ == "__main__":
    main()
