"""airig's GPU exporter: time of one Prometheus scrape on a box of 8 GPUs (the business build,
played by the NVML test double with telemetry and an engine process on every GPU). Target
(issue 13): under 100 ms. Prints numbers; asserts nothing."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import exporter_harness as harness
from tests import nvml_double

SCRAPES = 200


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lib = nvml_double.build(root / "lib").parent
        box = json.loads((nvml_double.FIXTURES / "business.json").read_text())
        for i, gpu in enumerate(box["gpus"]):
            gpu.update(
                {
                    "power_mw": 450000 + i * 1000,
                    "clocks_mhz": {"sm": 2600, "mem": 14001, "graphics": 2600},
                    "clock_event_reasons": 0x4,
                    "utilization": [95, 60],
                    "processes": [[4242, 28 * 2**30]],
                }
            )
        config = root / "box.json"
        config.write_text(json.dumps(box))
        where = harness.install(root / "opt", {4242: "0::/system.slice/airig-vllm.service"})
        proc, url = harness.start(where, lib, config, len(box["gpus"]))
        try:
            times, size = [], 0
            for _ in range(SCRAPES):
                start = time.perf_counter()
                size = len(harness.scrape(url))
                times.append((time.perf_counter() - start) * 1000)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    times.sort()
    print(f"GPU exporter, {len(box['gpus'])} GPUs (NVML test double), {SCRAPES} scrapes")
    p95 = times[int(0.95 * SCRAPES)]
    print(f"  scrape median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms,")
    print(f"  max {times[-1]:.1f} ms, {size} bytes (target: under 100 ms)")


if __name__ == "__main__":
    main()
