"""Converge time and idempotent re-run time of a molecule scenario in the local Debian
container, and the `systemd-analyze security` exposure of the units it installs.
Targets: driver re-run 0 changed under 30 s; engine units' exposure at most 4.5.
Prints numbers; asserts nothing. Needs scripts/container-env to have run.

    python bench/converge_speed.py [scenario] [unit ...]
    python bench/converge_speed.py llama_cpp airig-llama-server@qwen3-8b.service
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def molecule(action: str, scenario: str, *playbook_args: str) -> tuple[float, str]:
    """Seconds and output of one molecule action; playbook_args go to ansible-playbook."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_FORCE_COLOR": "0",
        "PY_COLORS": "0",
        "NO_COLOR": "1",
    }
    start = time.perf_counter()
    extra = ["--", *playbook_args] if playbook_args else []
    run = subprocess.run(
        [str(BIN / "molecule"), action, "-s", scenario, *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(f"molecule {action} -s {scenario} failed:\n{(run.stdout + run.stderr)[-4000:]}")
    return took, run.stdout + run.stderr


def changed(output: str) -> list[int]:
    return [int(n) for n in re.findall(r"changed=(\d+)", output)]


def playbook_seconds(output: str) -> float | None:
    """The playbook's own run time from the profile_tasks callback (molecule's config)."""
    stamps = re.findall(r"\)\s+(\d+):(\d+):(\d+\.\d+)", output)
    if not stamps:
        return None
    h, m, s = stamps[-1]
    return int(h) * 3600 + int(m) * 60 + float(s)


def exposure(scenario: str, unit: str) -> str:
    config = yaml.safe_load((REPO / "molecule" / scenario / "molecule.yml").read_text())
    instance = config["platforms"][0]["name"]
    run = subprocess.run(
        ["docker", "exec", instance, "systemd-analyze", "security", "--no-pager", unit],
        capture_output=True,
        text=True,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+ \S+)", run.stdout)
    return found.group(1) if found else f"n/a ({run.stderr.strip()[-200:]})"


def main() -> None:
    scenario = sys.argv[1] if len(sys.argv) > 1 else "nvidia_driver"
    units = sys.argv[2:]
    molecule("destroy", scenario)
    molecule("create", scenario)
    scores = {}
    try:
        if (REPO / "molecule" / scenario / "molecule.yml").read_text().count("prepare:"):
            molecule("prepare", scenario)
        first, out1 = molecule("converge", scenario)
        again, out2 = molecule("converge", scenario)
        scores = {unit: exposure(scenario, unit) for unit in units}
    finally:
        molecule("destroy", scenario)
    print(f"scenario {scenario} on a fresh container")
    for label, took, out in (("first converge", first, out1), ("re-run converge", again, out2)):
        own = playbook_seconds(out)
        own_text = f"{own:6.1f} s" if own is not None else "   n/a"
        print(
            f"  {label:16s} {took:6.1f} s with molecule, playbook {own_text}, "
            f"changed={max(changed(out), default=0)}"
        )
    for unit, score in scores.items():
        print(f"  systemd-analyze security {unit}: {score} (target <= 4.5)")


if __name__ == "__main__":
    main()
