"""The gateway's usage meter (issue 14): how fast airig-gateway-meter adds HAProxy's log lines
to its SQLite file, how many it loses when HAProxy sends faster than it reads (HAProxy drops a
line it cannot send at once), how big that file grows and how long airig-gateway-usage takes.
The real meter and report (roles/gateway/files) on a real datagram socket in a temporary
directory; lines shaped as the gateway's log-format (40 teams x 5 models). Prints numbers;
asserts nothing.

    python bench/gateway_meter.py [LINES] [LINES_PER_SECOND] [QLEN]

The kernel queues net.unix.max_dgram_qlen datagrams per socket: 10 on this machine, 512 on a
host systemd booted (PID 1 raises it early, for syslog). With QLEN the bench runs in a user and
network namespace of its own with that value (unshare -Urn), as on such a host.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILES = Path(__file__).resolve().parents[1] / "roles" / "gateway" / "files"
HEAD = "10.0.0.5:40000 [01/Dec/2026:10:00:00.000] 200 812 43 model_{m}/box-a_llama_cpp"


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 0  # lines per second; 0: at once
    if len(sys.argv) > 3 and "AIRIG_BENCH_NS" not in os.environ:
        qlen = int(sys.argv[3])
        os.environ["AIRIG_BENCH_NS"] = "1"
        os.execvp(
            "unshare",
            [
                "unshare",
                "-Urn",
                "sh",
                "-c",
                f'echo {qlen} > /proc/sys/net/unix/max_dgram_qlen && exec "$@"',
                "sh",
                sys.executable,
                *sys.argv,
            ],
        )
    qlen = Path("/proc/sys/net/unix/max_dgram_qlen").read_text().strip()
    with tempfile.TemporaryDirectory() as tmp:
        sock, db, prices = Path(tmp, "m.sock"), Path(tmp, "usage.sqlite3"), Path(tmp, "p.json")
        prices.write_text(
            json.dumps({"currency": "EUR", "models": {"model-0": {"input": 1, "output": 4}}})
        )
        meter = subprocess.Popen(
            [sys.executable, FILES / "airig-gateway-meter", "--socket", sock, "--db", db]
        )
        while not sock.exists():
            time.sleep(0.01)

        def report() -> list[dict]:
            out = subprocess.run(
                [
                    sys.executable,
                    FILES / "airig-gateway-usage",
                    "--db",
                    db,
                    "--prices",
                    prices,
                    "--json",
                ],
                capture_output=True,
                text=True,
            )
            return json.loads(out.stdout) if db.exists() else []

        # As HAProxy sends: non-blocking, a line that cannot go at once is dropped (counted).
        start, dropped = time.perf_counter(), 0
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            for i in range(lines):
                m = (i // 40) % 5
                data = (
                    f"{HEAD.format(m=m)} team=team-{i % 40} model=model-{m} "
                    f"prompt_tokens={100 + i % 7} completion_tokens={200 + i % 11}\n"
                ).encode()
                try:
                    s.sendto(data, str(sock))
                except BlockingIOError:
                    dropped += 1
                if rate:
                    time.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))
        sent = time.perf_counter() - start
        for _ in range(100):
            if sum(r["requests"] for r in report()) >= lines - dropped:
                break
            time.sleep(0.1)
        counted = time.perf_counter() - start
        times = []
        for _ in range(5):
            t = time.perf_counter()
            rows = report()
            times.append(time.perf_counter() - t)
        meter.terminate()
        meter.wait()
        size = sum(p.stat().st_size for p in Path(tmp).glob("usage.sqlite3*"))
    print(f"{'what':<48} {'number':>12}")
    print(f"{'log lines sent (40 teams x 5 models)':<48} {lines:>12}")
    print(f"{'net.unix.max_dgram_qlen':<48} {qlen:>12}")
    print(f"{'offered lines per second (0: as fast as possible)':<48} {rate:>12.0f}")
    print(f"{'sent in (s)':<48} {sent:>12.2f}")
    print(f"{'dropped (socket queue full, as HAProxy drops)':<48} {dropped:>12}")
    print(f"{'all counted on disk after (s)':<48} {counted:>12.2f}")
    print(f"{'lines counted per second':<48} {(lines - dropped) / counted:>12.0f}")
    print(f"{'usage file (incl. WAL), KiB':<48} {size / 1024:>12.0f}")
    print(f"{'airig-gateway-usage --json, rows':<48} {len(rows):>12}")
    print(f"{'airig-gateway-usage --json, median ms':<48} {statistics.median(times) * 1000:>12.0f}")


if __name__ == "__main__":
    main()
