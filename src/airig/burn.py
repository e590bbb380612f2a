"""`airig burn`: prove a box under load. Each GPU runs a sustained matrix-product load (its own
process, src/airig/burn_load.py, under a Python with torch) while NVML is sampled every
interval through the collection's reader (plugins/module_utils/nvml.py): temperature, power,
clocks and why they are lowered, utilisation, ECC errors, XID events, lost GPUs. Then every
pair of GPUs all-reduces through NCCL with the values checked (wrong data and hangs are how
peer-to-peer fails on consumer boxes), retried without P2P when it fails. The verdict names,
per GPU and per pair, what failed and what to do; the report is JSON plus a plot over time.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airig.errors import InputError

LOAD_SCRIPT = Path(__file__).with_name("burn_load.py")
# A Python with torch on an airig box: the vLLM role's venv.
TORCH_PYTHONS = (Path("/opt/airig/vllm/venv/bin/python"),)
THERMAL = ("sw_thermal", "hw_thermal", "hw_slowdown")
# NCCL that RTX 50 / Blackwell workstation cards (compute capability 12.x) need (issue 13).
NCCL_MIN_SM120 = (2, 26, 2)
# NVML's P2P status codes (nvmlGpuP2PStatus_t) in words.
P2P_STATUS = {
    0: "ok",
    1: "not supported by the chipset",
    2: "not supported by the GPU",
    3: "not supported by the PCIe topology",
    4: "disabled by the driver (registry key)",
    5: "not supported",
}
# The NCCL wheel of the torch airig's vLLM lock pins (CUDA 13: -cu13; tests/test_burn.py keeps it
# equal to roles/vllm/files/requirements/).
NCCL_PACKAGE = "nvidia-nccl-cu13"
# CUDA failing to start while NVML answers: what torch and the driver API say then.
CUDA_INIT_FAILED = re.compile(
    r"CUDA driver initialization failed|CUDA_ERROR_NOT_INITIALIZED|cudaErrorInitializationError"
    r"|initialization error|no CUDA GPUs are available|cuInit",
    re.IGNORECASE,
)
CUDA_INIT_ADVICE = (
    "CUDA could not start although NVML answers for this GPU: with NVIDIA's open kernel modules "
    "this is the driver's known HMM issue (CUDA release notes, known issues): set "
    "nvidia_driver_uvm_disable_hmm: true (options nvidia_uvm uvm_disable_hmm=1), provision and "
    "reboot"
)
# Launched processes number GPUs as NVML does (CUDA's default order is fastest first).
LOAD_ENV = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
EXIT_PASS, EXIT_FAIL, EXIT_CANNOT = 0, 1, 2


@dataclass(frozen=True)
class BurnConfig:
    seconds: float = 300.0
    interval: float = 1.0
    load: str = "auto"  # auto | torch | cpu | none
    python: Path | None = None  # the interpreter with torch for the GPU load
    size: int = 8192
    max_temp_c: float = 90.0
    # Share of samples a GPU may spend with its clocks lowered for heat.
    thermal_share: float = 0.2
    # The all-reduce between every pair of GPUs after the load: seconds per pair, and how long
    # a pair may take (NCCL's start-up included) before it counts as hung.
    p2p: bool = True
    p2p_seconds: float = 5.0
    p2p_timeout: float = 120.0


@dataclass
class GpuVerdict:
    index: int
    name: str
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    max_temp_c: float | None = None
    max_power_w: float | None = None
    min_sm_clock_mhz: float | None = None
    load: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class PairVerdict:
    """The all-reduce between two GPUs. ``p2p``: what NVML says of peer-to-peer reads between
    them; ``result``: the run as it was (rank 0's figures); ``fallback``: the retry with
    NCCL_P2P_DISABLE=1 after a failure, when there was one."""

    gpus: tuple[int, int]
    p2p: str | None
    result: dict[str, Any]
    fallback: dict[str, Any] | None = None
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpus": list(self.gpus),
            "p2p": self.p2p,
            "passed": self.passed,
            "result": self.result,
            "fallback": self.fallback,
            "failures": self.failures,
            "warnings": self.warnings,
        }


@dataclass
class BurnReport:
    config: dict[str, Any]
    gpus: list[GpuVerdict]
    samples: list[dict[str, Any]]
    xids: list[dict[str, Any]]
    load: str
    pairs: list[PairVerdict] = field(default_factory=list)
    nccl: str | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            all(g.passed for g in self.gpus)
            and all(p.passed for p in self.pairs)
            and not self.failures
        )

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.passed else EXIT_FAIL

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "load": self.load,
            "config": self.config,
            "gpus": [
                {
                    "index": g.index,
                    "name": g.name,
                    "passed": g.passed,
                    "failures": g.failures,
                    "warnings": g.warnings,
                    "max_temp_c": g.max_temp_c,
                    "max_power_w": g.max_power_w,
                    "min_sm_clock_mhz": g.min_sm_clock_mhz,
                    "load": g.load,
                }
                for g in self.gpus
            ],
            "xids": self.xids,
            "pairs": [p.to_dict() for p in self.pairs],
            "nccl": self.nccl,
            "failures": self.failures,
            "samples": self.samples,
        }


class XidWatch:
    """XID critical errors through NVML events, collected by a thread while the load runs."""

    def __init__(self, nvml: Any, handles: list[Any], started: float) -> None:
        self.nvml = nvml
        self.events: list[dict[str, Any]] = []
        self.started = started
        self.stop = threading.Event()
        live = [(i, h) for i, h in enumerate(handles) if h is not None]
        self.index = {ctypes.cast(h, ctypes.c_void_p).value: i for i, h in live}
        self.set: Any = None
        try:
            self.set = nvml.nvmlEventSetCreate()
            for _, h in live:
                nvml.nvmlDeviceRegisterEvents(h, nvml.nvmlEventTypeXidCriticalError, self.set)
        except nvml.NVMLError:
            self.set = None  # no event support: XIDs are then the exporter's (kernel log)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while self.set is not None and not self.stop.is_set():
            try:
                data = self.nvml.nvmlEventSetWait(self.set, 200)
            except self.nvml.NVMLError:
                continue  # timeout
            gpu = self.index.get(ctypes.cast(data.device, ctypes.c_void_p).value)
            self.events.append(
                {
                    "gpu": gpu,
                    "xid": int(data.eventData),
                    "t": round(time.monotonic() - self.started, 2),
                }
            )

    def __enter__(self) -> XidWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        if self.set is not None:
            with contextlib.suppress(self.nvml.NVMLError):
                self.nvml.nvmlEventSetFree(self.set)


def torch_python(config: BurnConfig) -> Path | None:
    if config.python is not None:
        return config.python
    return next((p for p in TORCH_PYTHONS if p.is_file()), None)


def _launch(config: BurnConfig, count: int, python: str) -> list[subprocess.Popen[str]]:
    procs = []
    for i in range(count):
        device = "cpu" if config.load == "cpu" else f"cuda:{i}"
        argv = [python, str(LOAD_SCRIPT), "--device", device, "--seconds", str(config.seconds)]
        argv += ["--size", str(config.size)]
        procs.append(_spawn(argv))
    return procs


def _spawn(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **LOAD_ENV, **(env or {})},
    )


def _load_result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return {"error": "the load did not stop in time (hung?)", "returncode": None}
    lines = out.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        result = {}
    result["returncode"] = proc.returncode
    if proc.returncode and not result.get("error") and not result.get("mismatches"):
        tail = (err.strip().splitlines() or ["no output"])[-1]
        result["error"] = f"exit code {proc.returncode}: {tail}"
    return result


def run(
    config: BurnConfig,
    utils: Any,
    nvml: Any,
    progress: Callable[[float, dict[str, Any]], None] | None = None,
) -> BurnReport:
    """Burn the box in. ``utils``: the collection's NVML reader; ``nvml``: pynvml. Raises
    InputError when it cannot run (no NVML, no GPU, no torch for a GPU load)."""
    if config.seconds <= 0 or config.interval <= 0 or config.interval > config.seconds:
        raise InputError("--seconds and --interval must be > 0, the interval within the run")
    try:
        utils.init(nvml)
    except utils.ProbeError as exc:
        raise InputError(f"airig burn needs NVML: {exc}") from exc
    try:
        first = utils.read(nvml, telemetry=True)
        gpus = first["gpus"]
        if not gpus:
            raise InputError("no NVIDIA GPU answers NVML here: nothing to burn in (airig verify)")
        load = config.load
        python = None
        if load in ("auto", "torch"):
            python = torch_python(config)
            if python is None and load == "torch":
                raise InputError(
                    "--load torch: no Python with torch found (the vLLM role's venv, or --python)"
                )
            load = "torch" if python else "none"
        elif load == "cpu":
            python = Path(__import__("sys").executable)
        handles = [_handle(nvml, i) for i in range(len(gpus))]
        started = time.monotonic()
        samples: list[dict[str, Any]] = []
        with XidWatch(nvml, handles, started) as xids:
            procs = _launch(config, len(gpus), str(python)) if load != "none" else []
            deadline = started + config.seconds
            while True:
                t = time.monotonic() - started
                facts = utils.read(nvml, telemetry=True)
                sample = {"t": round(t, 2), "gpus": [_sample(g) for g in facts["gpus"]]}
                samples.append(sample)
                if progress:
                    progress(t, sample)
                if time.monotonic() >= deadline or (
                    procs and all(p.poll() is not None for p in procs)
                ):
                    break
                time.sleep(max(0.0, min(config.interval, deadline - time.monotonic())))
            loads = [_load_result(p, timeout=max(30.0, config.interval * 5)) for p in procs]
        verdicts = _verdicts(config, gpus, samples, xids.events, loads)
        cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in config.__dict__.items()}
        report = BurnReport(cfg, verdicts, samples, xids.events, load)
        live = [v.index for v in verdicts if not any("fell off" in f for f in v.failures)]
        if config.p2p and load != "none" and len(live) > 1:
            if progress:
                progress(config.seconds, {"gpus": [], "phase": "all-reduce between GPU pairs"})
            report.pairs = all_reduce_pairs(config, str(python), nvml, handles, live)
            report.nccl = next(
                (p.result.get("nccl") for p in report.pairs if p.result.get("nccl")), None
            )
            report.failures += _nccl_check(report.nccl, gpus)
        return report
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()


def rounds_of_pairs(indices: list[int]) -> list[list[tuple[int, int]]]:
    """Every pair of GPUs once, in rounds of disjoint pairs (a round-robin tournament): 8 GPUs
    take 7 rounds of 4 pairs at once instead of 28 pairs one by one."""
    players: list[int | None] = list(indices) + ([None] if len(indices) % 2 else [])
    n = len(players)
    rounds = []
    for _ in range(n - 1):
        pairs = [(players[k], players[n - 1 - k]) for k in range(n // 2)]
        rounds.append(
            sorted((min(a, b), max(a, b)) for a, b in pairs if a is not None and b is not None)
        )
        players = [players[0], players[-1], *players[1:-1]]
    return rounds


def _free_ports(count: int) -> list[int]:
    """Distinct free ports on 127.0.0.1 (all held open until each is known)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def _all_reduce(
    config: BurnConfig, python: str, pairs: list[tuple[int, int]], env: dict[str, str]
) -> dict[tuple[int, int], dict[str, Any]]:
    """One round: both ranks of every pair at once; rank 0's result per pair, or the error
    that a person reads (hung, crashed, wrong data)."""
    running = {}
    for (i, j), port in zip(pairs, _free_ports(len(pairs)), strict=True):
        ranks = []
        for rank, gpu in enumerate((i, j)):
            device = "cpu" if config.load == "cpu" else f"cuda:{gpu}"
            argv = [python, str(LOAD_SCRIPT), "--device", device, "--rank", str(rank)]
            argv += ["--port", str(port), "--pair", f"{i}-{j}", "--size", str(config.size)]
            argv += ["--seconds", str(config.p2p_seconds)]
            ranks.append(_spawn(argv, env))
        running[(i, j)] = ranks
    deadline = time.monotonic() + config.p2p_timeout
    out = {}
    for pair, ranks in running.items():
        results = [_load_result(p, timeout=max(0.1, deadline - time.monotonic())) for p in ranks]
        hung = any(r.get("returncode") is None for r in results)
        for p in ranks:  # the other rank of a hung pair waits for ever: stop it too
            with contextlib.suppress(ProcessLookupError):
                p.kill()
        first = dict(results[0])
        if hung:
            first["error"] = f"hung: no result within {config.p2p_timeout:.0f} s"
            first["hung"] = True
        else:
            first["mismatches"] = max(int(r.get("mismatches") or 0) for r in results)
            first["error"] = first.get("error") or results[1].get("error")
        out[pair] = first
    return out


def _pair_status(nvml: Any, handles: list[Any], i: int, j: int) -> str | None:
    if handles[i] is None or handles[j] is None:
        return None
    read = nvml.NVML_P2P_CAPS_INDEX_READ
    read = read[0] if isinstance(read, tuple) else read  # nvidia-ml-py 12.x/13.x: "(0,)"
    try:
        code = nvml.nvmlDeviceGetP2PStatus(handles[i], handles[j], read)
    except nvml.NVMLError:
        return None
    return P2P_STATUS.get(int(code), "unknown")


def _broken(result: dict[str, Any]) -> str | None:
    """What went wrong with one all-reduce, in words; None when it passed."""
    if result.get("hung"):
        return str(result["error"])
    if result.get("mismatches"):
        return f"gave wrong data {result['mismatches']} time(s) in {result.get('rounds')} rounds"
    if result.get("error"):
        return f"failed: {result['error']}"
    return None


def all_reduce_pairs(
    config: BurnConfig, python: str, nvml: Any, handles: list[Any], indices: list[int]
) -> list[PairVerdict]:
    """An all-reduce between every pair of GPUs; a failed pair whose GPUs have P2P is tried
    again with NCCL_P2P_DISABLE=1, so the verdict can say whether P2P is what breaks."""
    verdicts = []
    for pairs in rounds_of_pairs(indices):
        results = _all_reduce(config, python, pairs, {})
        retry = [
            p for p in pairs if _broken(results[p]) and _pair_status(nvml, handles, *p) == "ok"
        ]
        fallbacks = _all_reduce(config, python, retry, {"NCCL_P2P_DISABLE": "1"}) if retry else {}
        for i, j in pairs:
            v = PairVerdict((i, j), _pair_status(nvml, handles, i, j), results[(i, j)])
            v.fallback = fallbacks.get((i, j))
            _judge_pair(v)
            verdicts.append(v)
    return verdicts


def _judge_pair(v: PairVerdict) -> None:
    i, j = v.gpus
    what = f"all-reduce between GPU {i} and GPU {j}"
    broken = _broken(v.result)
    if broken is None:
        speed = f"{v.result['gbps']} GB/s" if v.result.get("gbps") is not None else "values checked"
        if v.p2p not in (None, "ok"):
            v.warnings.append(
                f"no peer-to-peer between GPU {i} and GPU {j} (NVML: {v.p2p}); NCCL went "
                f"through host memory and every value was right ({speed})"
            )
        return
    if v.fallback is not None and _broken(v.fallback) is None:
        v.failures.append(
            f"{what} {broken} with peer-to-peer and passed with NCCL_P2P_DISABLE=1: the PCIe "
            "path between them breaks P2P (IOMMU or PCIe ACS redirecting it, see NCCL's "
            "troubleshooting guide); turn those off in the BIOS/kernel, or set vllm_extra_env: "
            "{NCCL_P2P_DISABLE: '1'} in the inventory"
        )
        return
    again = f", and again without peer-to-peer ({_broken(v.fallback)})" if v.fallback else ""
    v.failures.append(
        f"{what} {broken}{again}: one of the two GPUs, its PCIe link (airig verify) or the "
        "NCCL install is at fault; burn each GPU in alone to tell which"
    )


def _nccl_check(version: str | None, gpus: list[dict[str, Any]]) -> list[str]:
    """NCCL older than 2.26.2 with an RTX 50 / RTX PRO Blackwell card (compute capability 12)."""
    if not version:
        return []
    blackwell = [g for g in gpus if str(g.get("compute_capability") or "").startswith("12.")]
    have = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
    if blackwell and have < NCCL_MIN_SM120:
        want = ".".join(map(str, NCCL_MIN_SM120))
        return [
            f"NCCL {version} (the vLLM venv's) is older than {want}, which "
            f"{blackwell[0].get('name')} (compute capability 12) needs for multi-GPU work: "
            "re-provision with airig's pinned vLLM (its torch brings a newer NCCL) or install "
            f"{NCCL_PACKAGE} >= {want} in that venv (the package of the CUDA 13 torch airig pins)"
        ]
    return []


def _handle(nvml: Any, index: int) -> Any:
    try:
        return nvml.nvmlDeviceGetHandleByIndex(index)
    except nvml.NVMLError:
        return None  # lost already: the verdict says so


def _sample(g: dict[str, Any]) -> dict[str, Any]:
    if g.get("lost"):
        return {"index": g["index"], "lost": True}
    t = g.get("telemetry", {})
    return {
        "index": g["index"],
        "lost": False,
        "temperature_c": g.get("temperature_c"),
        "power_w": t.get("power_w"),
        "sm_clock_mhz": t.get("clock_sm_mhz"),
        "utilization_pct": t.get("utilization_gpu_pct"),
        "memory_used_mib": g.get("memory_used_mib"),
        "reasons": t.get("clock_event_reasons") or [],
        "ecc_uncorrected": t.get("ecc_errors_uncorrected"),
        "display_active": t.get("display_active"),
    }


def _secs(t: float) -> str:
    return f"{t:.1f} s" if t < 10 else f"{t:.0f} s"


def _verdicts(
    config: BurnConfig,
    gpus: list[dict[str, Any]],
    samples: list[dict[str, Any]],
    xids: list[dict[str, Any]],
    loads: list[dict[str, Any]],
) -> list[GpuVerdict]:
    out = []
    for i, gpu in enumerate(gpus):
        v = GpuVerdict(index=i, name=str(gpu.get("name") or f"GPU {i}"))
        mine = [(s["t"], s["gpus"][i]) for s in samples if i < len(s["gpus"])]
        seen = [(t, g) for t, g in mine if not g.get("lost")]
        lost_at = next((t for t, g in mine if g.get("lost")), None)
        if gpu.get("lost") or lost_at is not None:
            when = "before the load"
            if lost_at is not None and not gpu.get("lost"):
                when = f"{_secs(lost_at)} into the load"
            v.failures.append(
                f"fell off the bus {when}: journalctl -k -g NVRM names the XID; reseat the card "
                "and check its power cables"
            )
        temps = [g["temperature_c"] for _, g in seen if g.get("temperature_c") is not None]
        powers = [g["power_w"] for _, g in seen if g.get("power_w") is not None]
        clocks = [g["sm_clock_mhz"] for _, g in seen if g.get("sm_clock_mhz") is not None]
        v.max_temp_c = max(temps) if temps else None
        v.max_power_w = max(powers) if powers else None
        v.min_sm_clock_mhz = min(clocks) if clocks else None
        if v.max_temp_c is not None and v.max_temp_c >= config.max_temp_c:
            v.failures.append(
                f"reached {v.max_temp_c:.0f} C (limit {config.max_temp_c:.0f} C): improve the "
                "airflow or lower the power limit (profile gpus.power_limit_w)"
            )
        hot = [t for t, g in seen if set(g.get("reasons", [])) & set(THERMAL)]
        if seen and len(hot) / len(seen) > config.thermal_share:
            v.failures.append(
                f"clocks lowered for heat in {len(hot)} of {len(seen)} samples (from "
                f"{_secs(hot[0])}): the card cannot hold its clocks under load; improve cooling"
            )
        brake = [t for t, g in seen if "hw_power_brake" in g.get("reasons", [])]
        if brake:
            v.failures.append(
                f"hardware power brake at {_secs(brake[0])}: the power supply or its cables cannot "
                "feed the GPU under load (check the PSU rating and the 12V-2x6 connectors)"
            )
        ecc = [g.get("ecc_uncorrected") for _, g in seen if g.get("ecc_uncorrected") is not None]
        if ecc and ecc[-1] > ecc[0]:
            v.failures.append(
                f"{ecc[-1] - ecc[0]} uncorrectable memory error(s) under load: drain the box, "
                "reboot to retire the pages and burn in again; replace the card if they return"
            )
        for event in (e for e in xids if e["gpu"] == i):
            v.failures.append(
                f"XID {event['xid']} at {_secs(event['t'])}: look it up in NVIDIA's XID catalogue"
            )
        if i < len(loads):
            v.load = loads[i]
            if loads[i].get("mismatches"):
                v.failures.append(
                    f"computed wrong results {loads[i]['mismatches']} time(s) under load: the "
                    "GPU is faulty or unstable (clocks, memory, power)"
                )
            elif loads[i].get("error"):
                v.failures.append(f"the load failed: {loads[i]['error']}")
                if CUDA_INIT_FAILED.search(str(loads[i]["error"])):
                    # NVML answered (this GPU has samples), CUDA did not start (issue 30 item 14)
                    v.failures.append(CUDA_INIT_ADVICE)
        if any(g.get("display_active") for _, g in seen):
            v.warnings.append(
                "drives a display: on RTX 5090 boxes peer-to-peer transfers break; serve from "
                "GPUs without one"
            )
        if any("sw_power_cap" in g.get("reasons", []) for _, g in seen):
            v.warnings.append("held at its power limit under load (normal for a full load)")
        out.append(v)
    return out


def default_out_dir() -> Path:
    """/srv/airig/state/burn/TIME on a provisioned box (its state directory writable), else
    ./airig-burn-TIME."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    state = Path("/srv/airig/state")
    if state.is_dir() and os.access(state, os.W_OK):
        return state / "burn" / stamp
    return Path(f"airig-burn-{stamp}")


def write_report(report: BurnReport, out_dir: Path) -> tuple[Path, Path]:
    """burn.json and burn.png in ``out_dir``."""
    from airig.planner.plot import render_burn

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        data = report.to_dict()
        json_path = out_dir / "burn.json"
        json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return json_path, render_burn(data, out_dir / "burn.png")
    except OSError as exc:
        raise InputError(f"--out: cannot write the report to {out_dir}: {exc.strerror}") from exc
