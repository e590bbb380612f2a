"""The load of `airig burn` on one device, run as its own process by a Python that has torch
(the vLLM venv's) for a GPU, or any Python with numpy for the CPU path. Standalone: it imports
nothing of airig, so it runs under another interpreter.

A fixed matrix product over and over; every few rounds the result is checked against the first
one (a GPU that computes wrong under heat and load fails here, as gpu-burn's checks do). The
last line on stdout is JSON: device, rounds, TFLOP/s, mismatches, error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

CHECK_EVERY = 8


def _rounds(step: Any, same: Any, deadline: float, sync: Any = None) -> dict[str, Any]:
    """Run ``step`` until the deadline; every CHECK_EVERY rounds ``same`` compares its result
    with the first one."""
    first = step()
    rounds, mismatches = 1, 0
    start = time.monotonic()
    while time.monotonic() < deadline:
        result = step()
        rounds += 1
        if rounds % CHECK_EVERY == 0:
            mismatches += 0 if same(result, first) else 1
            if sync:
                sync()
    if sync:
        sync()
    return {"rounds": rounds, "seconds": time.monotonic() - start, "mismatches": mismatches}


def _torch(device: str, size: int, deadline: float) -> dict[str, Any]:
    import torch

    torch.manual_seed(0)
    dev = torch.device(device)
    a = torch.randn(size, size, device=dev, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=dev, dtype=torch.bfloat16)
    return _rounds(lambda: a @ b, torch.equal, deadline, lambda: torch.cuda.synchronize(dev))


def _numpy(size: int, deadline: float) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    return _rounds(lambda: a @ b, np.array_equal, deadline)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", required=True, help="cuda:N, or cpu")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--size", type=int, default=8192)
    args = ap.parse_args(argv)
    deadline = time.monotonic() + args.seconds
    out: dict[str, Any] = {"device": args.device, "error": None}
    try:
        if args.device == "cpu":
            out.update(_numpy(args.size, deadline))
        else:
            out.update(_torch(args.device, args.size, deadline))
    except Exception as exc:  # reported to the burn-in as its verdict
        out["error"] = f"{type(exc).__name__}: {exc}"
    if "rounds" in out and out.get("seconds"):
        out["tflops"] = round(2 * args.size**3 * out["rounds"] / out["seconds"] / 1e12, 3)
    print(json.dumps(out), flush=True)
    return 0 if out["error"] is None and not out.get("mismatches") else 3


if __name__ == "__main__":
    sys.exit(main())
