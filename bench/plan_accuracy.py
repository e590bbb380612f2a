"""How close the planner's vLLM figures are to what vLLM reported on real GPUs (issue 12).

Reads tests/data/vllm_startup_reports.yml (each run with its source), prints per run the plan
and vLLM's figure for weights, activation, non-torch memory, overhead and the KV memory per GPU,
then per quantity the number of points, the median and the worst error, for the calibration
and the held-out runs. Targets (issue 12): KV memory per GPU within 10% for the median run and
never over-promised by more than 15%; weights within 1% median, 5% worst.

Usage: python bench/plan_accuracy.py [--data FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from airig.planner import accuracy

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "vllm_startup_reports.yml"
LLAMA = DATA.parent / "llama_cpp_reports.yml"


def cell(rows: accuracy.Compared, quantity: str) -> str:
    got = rows.reported.get(quantity)
    plan = rows.plan[quantity]
    if got is None:
        return f"{plan:5.1f}/  -  "
    return f"{plan:5.1f}/{got:5.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    rows = [accuracy.compare(run) for run in accuracy.load_runs(args.data)]
    print("plan/vLLM per GPU, GiB")
    print(f"{'run':<20} {'weights':>11} {'activation':>11} {'non-torch':>11} {'kv':>11}  set")
    for r in rows:
        cells = " ".join(cell(r, q) for q in ("weights", "activation", "non_torch", "kv"))
        print(f"{r.run[:20]:<20} {cells}  {r.set[:4]}")
    print()
    for name in ("calibration", "holdout"):
        runs = [run for run in accuracy.load_runs(args.data) if run["set"] == name]
        sources = {run["source"] for run in runs}
        print(f"{name}: {len(runs)} runs from {len(sources)} sources")
    print(f"{'quantity':<11} {'set':<12} {'points':>6} {'median':>8} {'worst':>8} {'worst +':>8}")
    for quantity in accuracy.QUANTITIES:
        for name in ("calibration", "holdout"):
            s = accuracy.summarize([r for r in rows if r.set == name], quantity)
            if s is None:
                continue
            unit = "%" if quantity in accuracy.RELATIVE else " GiB"
            scale = 100 if quantity in accuracy.RELATIVE else 1

            def fmt(v: float, unit: str = unit, scale: int = scale) -> str:
                return f"{v * scale:+.1f}{unit}".rjust(8)

            print(
                f"{quantity:<11} {name:<12} {s.points:>6} {fmt(s.median).replace('+', ' ')} "
                f"{fmt(s.worst)} {fmt(s.worst_over)}"
            )
    print("\nllama.cpp: plan/reported per GPU, MiB")
    llama = [accuracy.compare_llama_cpp(run) for run in accuracy.load_runs(LLAMA)]
    labels = {
        "gpu_weights": "weights, busiest",
        "gpu_kv": "KV cache",
        "gpu_total": "total, busiest",
    }
    for r in llama:
        for quantity, label in labels.items():
            if quantity in r.reported:
                err = r.error(quantity) or 0.0
                print(
                    f"{r.run[:26]:<26} {label:<16} {r.plan[quantity]:>9.0f}/"
                    f"{r.reported[quantity]:<9.0f} {err * 100:+.1f}%"
                )
    print(f"\n{'llama.cpp':<16} {'points':>6} {'median':>8} {'worst':>8}")
    for quantity, label in labels.items():
        s = accuracy.summarize(llama, quantity)
        if s is not None:
            print(f"{label:<16} {s.points:>6} {s.median * 100:>7.1f}% {s.worst * 100:>+7.1f}%")
    verdicts = [r.verdict_agrees for r in rows if r.verdict_agrees is not None]
    print(
        f"\nstarts or not (KV left > 0): plan and vLLM agree on {sum(verdicts)} of "
        f"{len(verdicts)} runs"
    )


if __name__ == "__main__":
    main()
