"""The gateway's token filter under repeated rolls (issue 14): the `gateway` scenario's stand-in
boxes behind HAProxy with the Lua token filter on, box-a drained, restarted and put back under
400 checked requests, ROLLS times in a row (molecule/gateway/roll_repeat.py, inside the
container) - first as the role renders it (`lua-load-per-thread`), then, as the control, with
the filter loaded by `lua-load` (one Lua state all of HAProxy's threads share), which Debian
12's HAProxy 2.6.12 corrupted under this load. Prints per mode: requests sent/ok, requests
HAProxy still held 8 s after they began (a stand-in answers in 0.2 s; the first two with their
`show sess`), drains that timed out, HAProxy's Lua alerts. Prints numbers; asserts nothing.
Needs scripts/container-env to have run; host networking (run nothing else at once); about 1
minute per 3 rolls per mode plus 2 minutes.

    python bench/gateway_rolls.py [ROLLS]     (default 20)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from converge_speed import molecule

CONTAINER = "airig-molecule-gateway"
CFG = "/etc/haproxy/haproxy.cfg"
INSIDE = Path(__file__).resolve().parents[1] / "molecule" / "gateway" / "roll_repeat.py"


def inside(*command: str) -> str:
    run = subprocess.run(["docker", "exec", CONTAINER, *command], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"{' '.join(command)} failed in {CONTAINER}:\n{run.stdout}{run.stderr}"[-3000:])
    return run.stdout


def main() -> None:
    rolls = sys.argv[1] if len(sys.argv) > 1 else "20"
    results = {}
    try:
        molecule("destroy", "gateway")
        for step in ("create", "prepare", "converge"):
            molecule(step, "gateway")
        subprocess.run(["docker", "cp", str(INSIDE), f"{CONTAINER}:/opt/standin/"], check=True)
        for mode in ("lua-load-per-thread", "lua-load"):
            # the control swaps the directive in the role's rendered config (roll_repeat.py
            # reloads HAProxy before its rolls)
            inside("sed", "-i", rf"s/^\(\s*\)lua-load\S* /\1{mode} /", CFG)
            inside("haproxy", "-c", "-q", "-f", CFG)
            loaded = [
                x.strip()
                for x in inside("cat", CFG).splitlines()
                if x.strip().startswith("lua-load")
            ]
            results[mode] = (
                loaded,
                json.loads(inside("python3", "/opt/standin/roll_repeat.py", rolls)),
            )
    finally:
        molecule("destroy", "gateway")
    threads = {r["threads"] for _, r in results.values()}
    print(f"{rolls} drained rolls of box-a under 400 requests each; HAProxy's threads: {threads}")
    head = ("filter loaded by", "sent", "ok", "open>8s", "drain >40 s", "Lua alerts")
    print(f"{head[0]:<22} {head[1]:>6} {head[2]:>6} {head[3]:>7} {head[4]:>12} {head[5]:>11}")
    for mode, (loaded, r) in results.items():
        runs = r["rolls"]
        sent, ok = sum(x["sent"] for x in runs), sum(x["ok"] for x in runs)
        stuck = sum(len(x["stuck"]) for x in runs)
        timed_out = sum(x["drain_timed_out"] for x in runs)
        print(
            f"{mode:<22} {sent:>6} {ok:>6} {stuck:>7} {timed_out:>12} {len(r['lua_errors']):>11}"
            f"   ({'; '.join(loaded)})"
        )
        for line in sorted(set(r["lua_errors"]))[:3]:
            print(f"    {line}")
        for dump in [x for roll in runs for x in roll["stuck"]][:2]:  # HAProxy's `show sess`
            print("    " + "\n    ".join(dump.strip().splitlines()[:3]))


if __name__ == "__main__":
    main()
