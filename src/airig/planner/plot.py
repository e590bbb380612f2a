"""The fit figure: memory each model needs per format, against each build's capacity."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from airig.planner.catalog import ModelSpec
from airig.planner.fit import PlanRow


def render(rows: list[PlanRow], models: list[ModelSpec], path: Path) -> Path:
    """Write a PNG to ``path``: one line per format over model size, one level per build."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = {
        m.name: (m.nominal if rows[0].method == "rule-of-thumb" else m.params_b) for m in models
    }
    first_profile = rows[0].profile
    curves: dict[str, list[tuple[float, float]]] = defaultdict(list)
    usable: dict[str, float] = {}
    capacity: dict[str, float] = {}
    labels: dict[str, tuple[float, float]] = {}  # model -> its lowest point, where its name goes
    for row in rows:
        need = row.total_gb if row.method == "rule-of-thumb" else row.weights_gb + row.kv_cache_gb
        if row.profile == first_profile:
            curves[row.quant].append((size[row.model], need))
            if row.model not in labels or need < labels[row.model][1]:
                labels[row.model] = (size[row.model], need)
        left = row.capacity_gb - (0.0 if row.method == "rule-of-thumb" else row.overhead_gb)
        usable[row.profile] = max(usable.get(row.profile, 0.0), left)
        capacity[row.profile] = row.capacity_gb

    fig, ax = plt.subplots(figsize=(10, 6), dpi=120)
    cmap = plt.get_cmap("tab20")
    palette = [cmap(i) for i in range(20)]
    for i, (quant, points) in enumerate(curves.items()):
        points.sort()
        xs, ys = zip(*points, strict=True)
        ax.plot(
            xs,
            ys,
            marker="o",
            markersize=4,
            color=palette[(2 * i) % 20],
            label=quant,
            linestyle="-" if i < 10 else "--",
        )
    # Names under their lowest point, staggered so neighbours of a similar size stay apart.
    for i, (model, (x, y)) in enumerate(sorted(labels.items(), key=lambda kv: kv[1])):
        ax.annotate(
            model, xy=(x, y), xytext=(0, -8 - 10 * (i % 3)), textcoords="offset points",
            ha="center", va="top", fontsize=6, color="0.35",
            arrowprops={"arrowstyle": "-", "color": "0.7", "linewidth": 0.5},
        )  # fmt: skip
    for profile, gb in sorted(usable.items(), key=lambda kv: kv[1]):
        ax.axhline(gb, linestyle=(0, (6, 3)), linewidth=1.4, color="0.25")
        # The table's capacity, and what is left of it after the engines' overhead (the line).
        text = f"{profile}: {capacity[profile]:.0f} GB"
        if abs(capacity[profile] - gb) >= 0.5:
            text += f" ({gb:.0f} after engine overhead)"
        ax.annotate(
            text,
            xy=(0.01, gb),
            xycoords=("axes fraction", "data"),
            xytext=(0, 3),
            textcoords="offset points",
            ha="left",
            va="bottom",
            fontsize=9,
            color="0.1",
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85},
        )
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.yaxis.set_major_formatter(plain)
    ax.set_xlabel("model size (billions of parameters)")
    if rows[0].method == "rule-of-thumb":
        ax.set_ylabel("memory needed, GB (params x bytes x 1.2)")
        title = "Rule of thumb: memory per model size and quantization"
    else:
        ctx, conc = rows[0].context, rows[0].concurrency
        ax.set_ylabel(f"weights + KV cache, GB (10^9 B), {ctx} tokens x {conc} user(s)")
        title = (
            "Memory per model size and quantization; dashed: build capacity left "
            "after engine overhead"
        )
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="format", loc="lower right", ncols=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def render_check(results: list[dict[str, object]], path: Path) -> Path:
    """Write ``path``: for each served model, plan and actual GB side by side per term
    (`airig check --plot`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in results if r.get("terms")]
    fig, axes = plt.subplots(
        1, max(1, len(shown)), figsize=(4 + 3 * max(1, len(shown)), 4.5), dpi=120, squeeze=False
    )
    for ax, result in zip(axes[0], shown, strict=False):
        terms = result["terms"]
        if not isinstance(terms, dict):
            continue
        names = list(terms)
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], [terms[n]["plan_gb"] for n in names], 0.4, label="plan")
        ax.bar([x + 0.2 for x in xs], [terms[n]["actual_gb"] for n in names], 0.4, label="actual")
        ax.set_xticks(list(xs), names)
        ax.set_ylabel("GB (10^9 bytes)")
        ax.set_title(f"{result['model']} on {result['engine']}: {result['status']}")
        ax.legend()
    if not shown:
        axes[0][0].text(0.5, 0.5, "no engine reported its memory", ha="center")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def render_burn(report: dict[str, Any], path: Path) -> Path:
    """Write ``path``: per GPU over the burn-in, temperature, power and SM clock, with the
    samples whose clocks were lowered for heat or the power brake and the XIDs marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("temperature_c", "temperature, C"),
        ("power_w", "power, W"),
        ("sm_clock_mhz", "SM clock, MHz"),
    )
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 8), dpi=120, sharex=True)
    for gpu in report["gpus"]:
        i = gpu["index"]
        rows = [(s["t"], s["gpus"][i]) for s in report["samples"] if i < len(s["gpus"])]
        rows = [(t, g) for t, g in rows if not g.get("lost")]
        verdict = "pass" if gpu["passed"] else "FAIL"
        for ax, (key, label) in zip(axes, panels, strict=True):
            pts = [(t, g[key]) for t, g in rows if g.get(key) is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=f"GPU {i} ({verdict})")
            ax.set_ylabel(label)
        hot = [
            t
            for t, g in rows
            if {"sw_thermal", "hw_thermal", "hw_slowdown", "hw_power_brake"}
            & set(g.get("reasons", []))
        ]
        for t in hot:
            axes[2].axvline(t, color="tab:red", alpha=0.15)
    for event in report["xids"]:
        for ax in axes:
            ax.axvline(event["t"], color="black", linestyle="--")
        axes[0].annotate(
            f"XID {event['xid']} (GPU {event['gpu']})",
            (event["t"], 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(4, -14),
            textcoords="offset points",
        )
    axes[0].legend(loc="lower right")
    axes[-1].set_xlabel("seconds")
    fig.suptitle(f"airig burn: {'pass' if report['passed'] else 'FAIL'}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
