"""Converge time and idempotent re-run time of base + nvidia_driver in the local Debian 12
container (molecule scenario nvidia_driver). Target for the re-run: 0 changed, under 30 s.
Prints numbers; asserts nothing. Needs scripts/container-env to have run.

    python bench/converge_speed.py [scenario]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def molecule(action: str, scenario: str) -> tuple[float, str]:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_FORCE_COLOR": "0",
        "PY_COLORS": "0",
        "NO_COLOR": "1",
    }
    start = time.perf_counter()
    run = subprocess.run(
        [str(BIN / "molecule"), action, "-s", scenario],
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


def main() -> None:
    scenario = sys.argv[1] if len(sys.argv) > 1 else "nvidia_driver"
    molecule("destroy", scenario)
    molecule("create", scenario)
    try:
        first, out1 = molecule("converge", scenario)
        again, out2 = molecule("converge", scenario)
    finally:
        molecule("destroy", scenario)
    print(f"scenario {scenario}: base + nvidia_driver on a fresh container")
    for label, took, out in (("first converge", first, out1), ("re-run converge", again, out2)):
        own = playbook_seconds(out)
        own_text = f"{own:6.1f} s" if own is not None else "   n/a"
        print(
            f"  {label:16s} {took:6.1f} s with molecule, playbook {own_text}, "
            f"changed={max(changed(out), default=0)}"
        )
    print("  target for the re-run: 0 changed, < 30 s")


if __name__ == "__main__":
    main()
