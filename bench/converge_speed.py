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
    print(f"  first converge:   {first:6.1f} s   changed={max(changed(out1), default=0)}")
    print(
        f"  re-run converge:  {again:6.1f} s   changed={max(changed(out2), default=0)}"
        "   (target: 0 changed, < 30 s)"
    )


if __name__ == "__main__":
    main()
