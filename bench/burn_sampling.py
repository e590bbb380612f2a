"""`airig burn`'s sampling overhead: one NVML sample of 8 GPUs with telemetry (the business
build in the NVML test double, loaded in this process as pynvml loads the real library), and
its share of the default 1 s interval. Prints numbers; asserts nothing."""

from __future__ import annotations

import ctypes
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import nvml_double

SAMPLES = 500


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lib = nvml_double.build(Path(tmp) / "lib")
        ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)  # pynvml's dlopen then finds this one
        box = json.loads((nvml_double.FIXTURES / "business.json").read_text())
        for gpu in box["gpus"]:
            gpu.update(
                {
                    "power_mw": 450000,
                    "clocks_mhz": {"sm": 2600, "mem": 14001},
                    "clock_event_reasons": 4,
                    "utilization": [95, 60],
                }
            )
        config = Path(tmp) / "box.json"
        config.write_text(json.dumps(box))
        os.environ["FAKE_NVML_CONFIG"] = str(config)
        import pynvml

        from airig.verify import nvml_utils

        utils = nvml_utils()
        utils.init(pynvml)
        times = []
        for _ in range(SAMPLES):
            start = time.perf_counter()
            utils.read(pynvml, telemetry=True)
            times.append((time.perf_counter() - start) * 1000)
        pynvml.nvmlShutdown()
    median = statistics.median(times)
    print(f"airig burn sampling, {len(box['gpus'])} GPUs (NVML test double), {SAMPLES} samples")
    print(f"  one sample: median {median:.2f} ms, max {max(times):.2f} ms;")
    print(f"  {median / 10:.2f}% of the default 1 s interval")


if __name__ == "__main__":
    main()
