"""The fleet gateway under a roll (issue 14): the `gateway` scenario's stand-in boxes behind
HAProxy, box-a drained, restarted and put back while a load loop of 400 checked requests runs,
then the same without the drain. Prints requests ok/failed in both runs, how long box-a was
out, and the gateway's converge and 0-changed re-run times. Prints numbers; asserts nothing.
Needs scripts/container-env to have run; uses host networking (run nothing else at once).

    python bench/fleet_roll.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from converge_speed import changed, molecule

CONTAINER = "airig-molecule-gateway"


def read(path: str) -> dict[str, Any]:
    out = subprocess.run(["docker", "exec", CONTAINER, "cat", path], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def main() -> None:
    try:
        molecule("destroy", "gateway")
        for step in ("create", "prepare"):
            molecule(step, "gateway")
        converge, _ = molecule("converge", "gateway")
        rerun, log = molecule("converge", "gateway")
        molecule("side-effect", "gateway")
        drained, control = read("/tmp/airig-load-drain.json"), read("/tmp/airig-load-nodrain.json")
        roll = read("/tmp/airig-roll.json")
    finally:
        molecule("destroy", "gateway")
    print(f"{'run':<34} {'sent':>5} {'ok':>5} {'failed':>7}")
    for name, run in (("roll with the drain", drained), ("control: box killed, no drain", control)):
        sent, ok = run.get("sent", 0), run.get("ok", 0)
        print(f"{name:<34} {sent:>5} {ok:>5} {sent - ok:>7}")
    print(f"box-a out of service (drain .. ready): {roll.get('seconds', '?')} s")
    print(f"gateway converge: {converge:.1f} s; re-run: {rerun:.1f} s, changed={changed(log)[-1:]}")


if __name__ == "__main__":
    main()
