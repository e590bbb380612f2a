#!/usr/bin/python3
"""Repeated drained rolls inside the gateway scenario's container (bench/gateway_rolls.py copies
it in and runs it): ROLLS times, load_loop.py's 400 checked requests through the gateway while
box-a is drained at HAProxy's runtime API, its stand-in restarted, and box-a put back - what the
scenario's side_effect does once. A request still open after 8 s (a stand-in answers in 0.2 s)
is noted as stuck with HAProxy's `show sess` of it; a drain still waiting after 40 s shuts
box-a's sessions so that the next roll can start. Reloads HAProxy first (the config as it is now)
and waits for the new process. Prints one JSON summary.

Usage: roll_repeat.py ROLLS"""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

ADMIN = "/run/haproxy/admin.sock"
BOX_A = [("model_0", "box-a_llama_cpp"), ("box_box-a_llama_cpp", "box-a_llama_cpp")]
LOAD = [
    "/usr/bin/python3",
    "/opt/standin/load_loop.py",
    "/srv/airig/keys/team-research.key",
    "airig-tiny",
    "400",
    "8",
]


def admin(command: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(ADMIN)
        s.sendall(command.encode() + b"\n")
        return b"".join(iter(lambda: s.recv(65536), b"")).decode()


def info() -> dict[str, str]:
    """HAProxy's `show info` of the process that answers the admin socket ({} while none does)."""
    try:
        return dict(x.split(": ", 1) for x in admin("show info").splitlines() if ": " in x)
    except OSError:
        return {}


def reload() -> None:
    """systemctl reload haproxy, then wait until the new process answers the admin socket: the
    old one answers it for a moment after the reload returns."""
    before = info().get("Pid")
    subprocess.run(["systemctl", "reload", "haproxy"], check=True)
    for _ in range(100):
        if info().get("Pid") not in (None, before):
            return
        time.sleep(0.1)
    sys.exit("the reloaded HAProxy did not take over the admin socket within 10 s")


def set_box_a(state: str) -> None:
    for backend, server in BOX_A:
        said = admin(f"set server {backend}/{server} state {state}").strip()
        if said:
            sys.exit(f"set server {backend}/{server} state {state}: {said}")


def box_a() -> list[tuple[int, str]]:
    """(sessions, status) of box-a in the model backend and in its listener."""
    rows = {
        tuple(f[:2]): (int(f[4]), f[17])
        for f in (line.split(",") for line in admin("show stat").splitlines())
        if len(f) > 17 and not f[0].startswith("#")
    }
    return [rows[t] for t in BOX_A]


def seconds(age: str) -> int:
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", age))


def watch(done: threading.Event, stuck: dict[str, str]) -> None:
    while not done.wait(1):
        for line in admin("show sess").splitlines():
            found = re.match(r"(0x[0-9a-f]+): .* fe=openai .* age=(\S+)", line)
            if found and seconds(found.group(2)) >= 8 and found.group(1) not in stuck:
                stuck[found.group(1)] = admin(f"show sess {found.group(1)}")


def roll(n: int) -> dict[str, object]:
    out = f"/tmp/airig-roll-repeat-{n}.json"
    if os.path.exists(out):
        os.remove(out)
    load = subprocess.Popen([*LOAD, out])
    done, stuck = threading.Event(), dict[str, str]()
    watcher = threading.Thread(target=watch, args=(done, stuck), daemon=True)
    watcher.start()
    time.sleep(2)
    set_box_a("drain")
    began, drain_timed_out = time.monotonic(), False
    while any(sessions for sessions, _ in box_a()):
        if time.monotonic() - began > 40 and not drain_timed_out:
            drain_timed_out = True
            for backend, server in BOX_A:
                admin(f"shutdown sessions server {backend}/{server}")
        time.sleep(0.2)
    set_box_a("maint")
    subprocess.run(["systemctl", "restart", "standin-box-a-llama_cpp.service"], check=True)
    while True:
        try:
            socket.create_connection(("127.0.0.1", 18441), 1).close()
            break
        except OSError:
            time.sleep(0.2)
    set_box_a("ready")
    began = time.monotonic()
    while any(status != "UP" for _, status in box_a()):
        if time.monotonic() - began > 60:
            sys.exit(f"roll {n}: box-a not UP 60 s after it was put back: {box_a()}")
        time.sleep(0.2)
    load.wait()
    done.set()
    watcher.join()
    with open(out) as f:
        result = json.load(f)
    return {
        "sent": result["sent"],
        "ok": result["ok"],
        "stuck": list(stuck.values()),
        "drain_timed_out": drain_timed_out,
    }


def main() -> None:
    since = time.strftime("%Y-%m-%d %H:%M:%S")
    reload()
    rolls = [roll(n) for n in range(int(sys.argv[1]))]
    journal = subprocess.run(
        ["journalctl", "-u", "haproxy", "--since", since, "-o", "cat"],
        capture_output=True,
        text=True,
    ).stdout
    # HAProxy's alerts (its stderr; the same line also goes to syslog without "[ALERT]")
    alerts = [line for line in journal.splitlines() if "[ALERT]" in line and "Lua" in line]
    print(json.dumps({"rolls": rolls, "lua_errors": alerts, "threads": info().get("Nbthread")}))


if __name__ == "__main__":
    main()
