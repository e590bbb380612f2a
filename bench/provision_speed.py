"""Fresh `airig provision` of the demo box (a new systemd container, artifacts from the local
mirror) and the re-run. Target for the re-run: 0 changed, under 60 s for the whole site.
Prints numbers; asserts nothing. Needs scripts/container-env and tests/mirror/build.py --serve
(make provision does both). The llama.cpp build uses the shared ccache when warm.

    python bench/provision_speed.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def provision() -> tuple[float, int, int, str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    run = subprocess.run(
        [str(BIN / "airig"), "provision", "-i", "inventories/container/hosts.yml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(f"airig provision failed ({run.returncode}):\n{(run.stdout + run.stderr)[-4000:]}")
    row = re.search(r"airig-box\s*│\s*(\d+)\s*│\s*(\d+)\s*│\s*(\d+)", run.stdout)
    ok, changed = (int(row.group(1)), int(row.group(2))) if row else (-1, -1)
    log = re.search(r"full log: (\S+)", " ".join(run.stdout.split()))
    return took, ok, changed, log.group(1) if log else "?"


def main() -> None:
    subprocess.run([str(REPO / "scripts" / "demo-box"), "down"], check=True)
    subprocess.run([str(REPO / "scripts" / "demo-box"), "up"], check=True)
    fresh = provision()
    again = provision()
    print("airig provision -i inventories/container/hosts.yml (demo box, container-demo profile)")
    for label, (took, ok, changed, log) in (("fresh", fresh), ("re-run", again)):
        print(f"  {label:7s} {took:7.1f} s  ok={ok} changed={changed}  log {log}")
    print("  target for the re-run: 0 changed, < 60 s")
    summary = subprocess.run(
        ["docker", "exec", "airig-box", "cat", "/srv/airig/state/summary.json"],
        capture_output=True,
        text=True,
    )
    if summary.returncode == 0:
        print("  engines:", json.dumps(json.loads(summary.stdout)["engines"]))


if __name__ == "__main__":
    main()
