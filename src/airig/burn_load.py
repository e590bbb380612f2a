"""The load of `airig burn` on one device, run as its own process by a Python that has torch
(the vLLM venv's) for a GPU, or any Python with numpy for the CPU path. Standalone: it imports
nothing of airig, so it runs under another interpreter.

A fixed matrix product over and over; every few rounds the result is checked against the first
one (a GPU that computes wrong under heat and load fails here, as gpu-burn's checks do). The
last line on stdout is JSON: device, rounds, TFLOP/s, mismatches, error.

With --rank, one of the two ranks of an all-reduce between a pair of GPUs: NCCL through
torch.distributed on GPUs (P2P where the pair has it, host memory where it does not), every
result compared with the known sum. On the CPU path the two ranks exchange their buffers over a
local socket instead: a TEST DOUBLE of NCCL's transport that drives the same orchestration
(pairs, hangs, wrong data, the retry without P2P); $AIRIG_BURN_DOUBLE_FAULT makes it fail on
purpose ("corrupt", "hang", or "corrupt-p2p"/"hang-p2p": only while NCCL_P2P_DISABLE is not 1).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from typing import Any

CHECK_EVERY = 8
# How long the two ranks of an all-reduce wait for each other (the burn-in stops a pair that
# takes longer than its own limit anyway).
RENDEZVOUS_S = 600


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


def _exchange(step: Any, same: Any, deadline: float) -> dict[str, Any]:
    """All-reduce until the deadline (at least 3 times), each result compared with the sum.
    ``step(more)`` returns the result and whether both ranks go on: the ranks agree every
    round, so neither waits for ever on a collective the other never joins."""
    rounds, mismatches, start, more = 0, 0, time.monotonic(), True
    while more:
        rounds += 1
        got, more = step(rounds < 3 or time.monotonic() < deadline)
        mismatches += 0 if same(got) else 1
    return {"rounds": rounds, "seconds": time.monotonic() - start, "mismatches": mismatches}


def _pair_torch(rank: int, device: str, port: int, elements: int, seconds: float) -> dict[str, Any]:
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    dev = torch.device(device)
    gpu = dev.type == "cuda"
    if gpu:
        torch.cuda.set_device(dev)
    dist.init_process_group(
        "nccl" if gpu else "gloo",  # gloo: the same code on a CPU, for tests without a GPU
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=2,
        timeout=timedelta(seconds=RENDEZVOUS_S),
    )
    deadline = time.monotonic() + seconds  # from the rendezvous on, the same for both ranks
    try:
        # Whole numbers below 2^24: float32 sums are exact, so any difference is wrong data.
        pattern = (torch.arange(elements, device=dev) % 4093).to(torch.float32)
        mine, want = pattern + rank, 2 * pattern + 1

        def step(more: bool) -> tuple[Any, bool]:
            buf = mine.clone()
            dist.all_reduce(buf)
            flag = torch.tensor([int(more)], device=dev)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            return buf, bool(flag.item())  # .item() waits for both

        out = _exchange(step, lambda got: torch.equal(got, want), deadline)
        out["nccl"] = ".".join(str(v) for v in torch.cuda.nccl.version()) if gpu else None
        return out
    finally:
        dist.destroy_process_group()


def _fault(pair: str) -> str:
    """The double's fault for this pair: '', 'corrupt' or 'hang' ($AIRIG_BURN_DOUBLE_FAULT,
    e.g. 'corrupt-p2p@0-1')."""
    spec = os.environ.get("AIRIG_BURN_DOUBLE_FAULT", "")
    kind, _, where = spec.partition("@")
    if not kind or (where and where != pair):
        return ""
    if kind.endswith("-p2p"):
        kind = kind[: -len("-p2p")] if os.environ.get("NCCL_P2P_DISABLE") != "1" else ""
    return kind


def _pair_socket(rank: int, port: int, elements: int, seconds: float, pair: str) -> dict[str, Any]:
    import numpy as np

    fault = _fault(pair)
    if rank == 0:
        with socket.create_server(("127.0.0.1", port)) as server:
            server.settimeout(RENDEZVOUS_S)
            conn, _ = server.accept()
    else:
        give_up = time.monotonic() + RENDEZVOUS_S
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if time.monotonic() > give_up:
                    raise
                time.sleep(0.05)
    conn.settimeout(None)
    deadline = time.monotonic() + seconds
    pattern = (np.arange(elements) % 4093).astype(np.float32)
    mine, want = pattern + rank, 2 * pattern + 1
    if fault == "hang":
        time.sleep(3600)

    def step(more: bool) -> tuple[Any, bool]:
        conn.sendall(bytes([more]) + mine.tobytes())
        got = bytearray()
        while len(got) < 1 + mine.nbytes:
            chunk = conn.recv(1 + mine.nbytes - len(got))
            if not chunk:
                raise ConnectionError("the other rank went away")
            got += chunk
        other = np.frombuffer(bytes(got[1:]), dtype=np.float32).copy()
        if fault == "corrupt":
            other[elements // 2] += 1
        return mine + other, more and bool(got[0])

    with conn:
        out = _exchange(step, lambda got: np.array_equal(got, want), deadline)
    out["nccl"] = None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", required=True, help="cuda:N, or cpu")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--rank", type=int, choices=(0, 1), help="all-reduce: this process's rank")
    ap.add_argument("--port", type=int, help="all-reduce: rank 0's port on 127.0.0.1")
    ap.add_argument("--pair", default="", help="all-reduce: the pair, e.g. 0-1")
    ap.add_argument(
        "--transport",
        choices=("auto", "torch", "socket"),
        default="auto",
        help="all-reduce through torch.distributed (NCCL on GPUs, gloo on the CPU) or the "
        "socket double; auto: torch on a GPU, the socket on the CPU",
    )
    args = ap.parse_args(argv)
    deadline = time.monotonic() + args.seconds
    out: dict[str, Any] = {"device": args.device, "error": None}
    try:
        if args.rank is not None:
            out["rank"] = args.rank
            # --size is the matrix side: the all-reduce moves size x size float32 values.
            elements = args.size * args.size
            if args.transport == "socket" or (args.transport == "auto" and args.device == "cpu"):
                out.update(_pair_socket(args.rank, args.port, elements, args.seconds, args.pair))
            else:
                out.update(_pair_torch(args.rank, args.device, args.port, elements, args.seconds))
            if out.get("seconds"):
                out["gbps"] = round(4 * elements * out["rounds"] / out["seconds"] / 1e9, 3)
        elif args.device == "cpu":
            out.update(_numpy(args.size, deadline))
        else:
            out.update(_torch(args.device, args.size, deadline))
    except Exception as exc:  # reported to the burn-in as its verdict
        out["error"] = f"{type(exc).__name__}: {exc}"
    if args.rank is None and "rounds" in out and out.get("seconds"):
        out["tflops"] = round(2 * args.size**3 * out["rounds"] / out["seconds"] / 1e12, 3)
    print(json.dumps(out), flush=True)
    return 0 if out["error"] is None and not out.get("mismatches") else 3


if __name__ == "__main__":
    sys.exit(main())
