"""The fleet across real boxes (issue 14; the `fleet` scenario: three boxes in network
namespaces of their own with the real llama-server behind their proxies, one gateway). Prints
the converge time, site.yml's 0-changed re-run for one box and for all three (goals: under 60 s
for one box; three boxes under 1.5 x one), a driver upgrade rolled through every box under a
load loop through the gateway (requests sent/ok/failed, seconds per box out of service), and
the control (a box's engine restarted without the drain). Runs the steps of `molecule test -s
fleet` (idempotence and verify included), so it stops when the scenario fails; prints numbers,
asserts no timing. Needs scripts/container-env to have run; about 20 minutes; run nothing else
at once.

    python bench/fleet_scale.py
"""

from __future__ import annotations

import glob
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from converge_speed import changed, molecule, playbook_seconds

BOXES = ("airig-fleet-box-1", "airig-fleet-box-2", "airig-fleet-box-3")


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by the controller (this process's children: ansible-playbook,
    its forks, the docker clients) and by each box container (its cgroup: cpuacct.usage on
    cgroup v1, as this machine has, or cpu.stat's usage_usec on v2)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = {"controller": usage.ru_utime + usage.ru_stime}
    for box in BOXES:
        cid = subprocess.run(
            ["docker", "inspect", "-f", "{{.Id}}", box], capture_output=True, text=True
        ).stdout.strip()
        v1 = glob.glob(f"/sys/fs/cgroup/cpuacct/*/{cid}/cpuacct.usage") if cid else []
        v2 = glob.glob(f"/sys/fs/cgroup/**/*{cid}*/cpu.stat", recursive=True) if cid else []
        if v1:
            out[box] = int(Path(v1[0]).read_text()) / 1e9
        for line in Path(v2[0]).read_text().splitlines() if v2 and not v1 else []:
            if line.startswith("usage_usec "):
                out[box] = int(line.split()[1]) / 1e6
    return out


def read(path: str) -> dict[str, Any]:
    p = Path(path)
    return json.loads(p.read_text()) if p.is_file() else {}


def main() -> None:
    try:
        molecule("destroy", "fleet")
        for step in ("create", "prepare"):
            molecule(step, "fleet")
        converge, _ = molecule("converge", "fleet")
        reruns, cpu = {}, {}
        for limit in ("airig-fleet-box-1", "boxes"):
            before = cpu_seconds()
            _, log = molecule("converge", "fleet", "--limit", limit)
            after = cpu_seconds()
            reruns[limit] = (playbook_seconds(log), sum(changed(log)))
            cpu[limit] = {k: after[k] - before.get(k, 0.0) for k in after}
        _, log = molecule("idempotence", "fleet")  # fails the bench unless 0 changed
        reruns["all"] = (playbook_seconds(log), sum(changed(log)))
        molecule("side-effect", "fleet")
        molecule("verify", "fleet")  # the scenario's own checks on the roll's results
        roll = read("/tmp/airig-fleet-airig-load-roll.json")
        control = read("/tmp/airig-fleet-airig-load-control.json")
        seconds = read("/tmp/airig-fleet-roll-seconds.json")
    finally:
        molecule("destroy", "fleet")
    print(f"converge (3 boxes + gateway, from bare containers): {converge:.0f} s")
    labels = {"airig-fleet-box-1": "1 box", "boxes": "3 boxes", "all": "3 boxes + gateway"}
    for limit, label in labels.items():
        took, n = reruns[limit]
        print(f"re-run, {label:<18} {took or 0:6.1f} s  changed={n}")
    one, three = reruns["airig-fleet-box-1"][0] or 0, reruns["boxes"][0] or 0
    print(f"3 boxes / 1 box: {three / one:.2f} x" if one else "3 boxes / 1 box: ?")
    # Where the re-run's time goes: every box here shares this machine's cores with the
    # controller; on real boxes each has its own, and only the controller's share is common.
    cores = os.cpu_count() or 1
    for limit, label in (("airig-fleet-box-1", "1 box"), ("boxes", "3 boxes")):
        c = cpu[limit]
        boxes = sum(v for k, v in c.items() if k != "controller")
        print(
            f"re-run CPU, {label:<8} controller {c['controller']:6.1f} s, boxes {boxes:6.1f} s "
            f"({', '.join(f'{k[-5:]} {v:.1f}' for k, v in c.items() if k != 'controller')}); "
            f"on {cores} cores at least {(c['controller'] + boxes) / cores:.1f} s"
        )
    print(f"{'run':<40} {'sent':>6} {'ok':>6} {'failed':>7} {'usage':>6}")
    runs = {
        "driver roll through 3 boxes, drained": roll,
        "control: engine restarted, no drain": control,
    }
    for name, run in runs.items():
        sent, ok = run.get("sent", 0), run.get("ok", 0)
        print(f"{name:<40} {sent:>6} {ok:>6} {sent - ok:>7} {run.get('usage_added', '?'):>6}")
    for kind in ("prompt", "completion"):
        answered, counted = roll.get(f"{kind}_tokens", "?"), roll.get(f"{kind}_tokens_added", "?")
        print(f"roll's {kind} tokens: {answered} in the answers, {counted} in the gateway's usage")
    for box, s in sorted(seconds.items()):
        print(f"{box}: {s} s out of service (drain, driver, gate, engines, completion, back)")


if __name__ == "__main__":
    main()
