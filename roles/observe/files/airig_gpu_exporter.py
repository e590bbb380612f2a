#!/usr/bin/python3
# Copyright: airig engineers
# Apache-2.0 (see galaxy.yml)
"""airig's GPU exporter: NVML through airig's own reader (airig_nvml.py, a copy of the
collection's plugins/module_utils/nvml.py installed beside this file) as Prometheus metrics, read
at each scrape: per GPU temperature, power and limit, clocks and why they are lowered,
memory, utilisation, PCIe link, ECC errors, lost GPUs; per systemd service the GPU memory its
processes use (from /proc/PID/cgroup); NVIDIA XID errors counted from the kernel log.

No GPU exporter is installable from the registries airig provisions from (dcgm-exporter and
nvidia_gpu_exporter are not packaged), so airig ships this one.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import airig_nvml
from prometheus_client import start_http_server
from prometheus_client.core import (
    REGISTRY,
    CounterMetricFamily,
    GaugeMetricFamily,
)

MIB = 1024 * 1024
# "NVRM: Xid (PCI:0000:01:00): 79, pid=..., GPU has fallen off the bus."
XID = re.compile(r"NVRM: Xid \(PCI:([0-9a-fA-F:.]+)\): (\d+)")


def unit_of(pid: int, proc: Path) -> str:
    """The systemd service a process runs in ('' when none), from /proc/PID/cgroup."""
    try:
        text = (proc / str(pid) / "cgroup").read_text(encoding="utf-8")
    except OSError:
        return ""
    return airig_nvml.service_of(text) or ""


class XidCounter:
    """Counts XID lines per PCI address and code from a stream of kernel log lines."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()

    def feed(self, line: str) -> None:
        match = XID.search(line)
        if match:
            key = (match.group(1).lower(), match.group(2))
            with self.lock:
                self.counts[key] = self.counts.get(key, 0) + 1

    def follow(self, argv: list[str]) -> None:
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, errors="replace") as p:
            for line in p.stdout or ():
                self.feed(line)

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self.lock:
            return dict(self.counts)


class GpuCollector:
    """Reads NVML at each scrape; NVML is started once and again after it failed."""

    def __init__(
        self, nvml: Any, expected: int, proc: Path, xids: XidCounter | None = None
    ) -> None:
        self.nvml = nvml
        self.expected = expected
        self.proc = proc
        self.xids = xids
        self.started = False

    def _read(self) -> dict[str, Any]:
        if not self.started:
            airig_nvml.init(self.nvml)
            self.started = True
        try:
            return airig_nvml.read(self.nvml, telemetry=True)
        except self.nvml.NVMLError:
            self.started = False
            raise

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily(
            "airig_nvml_up", "1 when NVML answered this scrape", labels=["error"]
        )
        expected = GaugeMetricFamily("airig_gpus_expected", "GPUs the build profile names")
        expected.add_metric([], self.expected)
        yield expected
        try:
            facts = self._read()
        except (airig_nvml.ProbeError, self.nvml.NVMLError) as exc:
            kind = getattr(exc, "kind", "unknown")
            up.add_metric([kind], 0)
            yield up
            present = GaugeMetricFamily("airig_gpus_present", "GPUs NVML lists and can read")
            present.add_metric([], 0)
            yield present
            yield from self._xids()
            return
        up.add_metric([""], 1)
        yield up
        yield from self._gpus(facts)
        yield from self._xids()

    def _gpus(self, facts: dict[str, Any]) -> Iterator[Any]:
        gpus = facts.get("gpus", [])
        present = GaugeMetricFamily("airig_gpus_present", "GPUs NVML lists and can read")
        present.add_metric([], sum(1 for g in gpus if not g.get("lost")))
        yield present
        lab = ["gpu"]
        fam = {
            "lost": GaugeMetricFamily("airig_gpu_lost", "1: the GPU fell off the bus", labels=lab),
            "info": GaugeMetricFamily(
                "airig_gpu_info",
                "The GPU's name and UUID",
                labels=["gpu", "name", "uuid", "driver"],
            ),
            "temp": GaugeMetricFamily("airig_gpu_temperature_celsius", "GPU core", labels=lab),
            "power": GaugeMetricFamily("airig_gpu_power_watts", "Power draw", labels=lab),
            "limit": GaugeMetricFamily("airig_gpu_power_limit_watts", "Power limit", labels=lab),
            "sm": GaugeMetricFamily("airig_gpu_sm_clock_hertz", "SM clock", labels=lab),
            "memclk": GaugeMetricFamily("airig_gpu_memory_clock_hertz", "Memory clock", labels=lab),
            "reason": GaugeMetricFamily(
                "airig_gpu_clock_event_reason",
                "1: the clocks are lowered for this reason (NVML clock event reasons)",
                labels=["gpu", "reason"],
            ),
            "used": GaugeMetricFamily("airig_gpu_memory_used_bytes", "Memory used", labels=lab),
            "total": GaugeMetricFamily("airig_gpu_memory_total_bytes", "Memory", labels=lab),
            "util": GaugeMetricFamily("airig_gpu_utilization_ratio", "Busy time", labels=lab),
            "memutil": GaugeMetricFamily(
                "airig_gpu_memory_utilization_ratio", "Memory controller busy time", labels=lab
            ),
            "gen": GaugeMetricFamily("airig_gpu_pcie_link_generation", "PCIe gen", labels=lab),
            "genmax": GaugeMetricFamily("airig_gpu_pcie_link_max_generation", "", labels=lab),
            "width": GaugeMetricFamily("airig_gpu_pcie_link_width", "PCIe lanes", labels=lab),
            "widthmax": GaugeMetricFamily("airig_gpu_pcie_link_max_width", "", labels=lab),
            "ecc": CounterMetricFamily(
                "airig_gpu_ecc_errors", "ECC errors since the driver loaded", labels=["gpu", "type"]
            ),
            "proc": GaugeMetricFamily(
                "airig_gpu_process_memory_bytes",
                "GPU memory used by the processes of a systemd service ('' outside any)",
                labels=["gpu", "unit"],
            ),
        }
        for g in gpus:
            gpu = str(g["index"])
            fam["lost"].add_metric([gpu], 1 if g.get("lost") else 0)
            if g.get("lost"):
                continue
            fam["info"].add_metric(
                [gpu, g.get("name") or "", g.get("uuid") or "", facts.get("driver_version") or ""],
                1,
            )
            t = g.get("telemetry", {})
            pairs = [
                ("temp", g.get("temperature_c"), 1),
                ("power", t.get("power_w"), 1),
                ("limit", g.get("power_limit_w"), 1),
                ("sm", t.get("clock_sm_mhz"), 1e6),
                ("memclk", t.get("clock_mem_mhz"), 1e6),
                ("used", g.get("memory_used_mib"), MIB),
                ("total", g.get("memory_total_mib"), MIB),
                ("util", t.get("utilization_gpu_pct"), 0.01),
                ("memutil", t.get("utilization_memory_pct"), 0.01),
                ("gen", g.get("pcie_generation_current"), 1),
                ("genmax", g.get("pcie_generation_max"), 1),
                ("width", g.get("pcie_width_current"), 1),
                ("widthmax", g.get("pcie_width_max"), 1),
            ]
            for key, value, scale in pairs:
                if value is not None:
                    fam[key].add_metric([gpu], value * scale)
            reasons = t.get("clock_event_reasons")
            if reasons is not None:
                for name in airig_nvml.CLOCK_EVENT_REASONS:
                    fam["reason"].add_metric([gpu, name], 1 if name in reasons else 0)
            for kind in ("corrected", "uncorrected"):
                count = t.get(f"ecc_errors_{kind}")
                if count is not None:
                    fam["ecc"].add_metric([gpu, kind], count)
            per_unit: dict[str, float] = {}
            for p in g.get("processes", []):
                unit = unit_of(int(p["pid"]), self.proc)
                per_unit[unit] = per_unit.get(unit, 0.0) + p["used_memory_mib"] * MIB
            for unit, used in sorted(per_unit.items()):
                fam["proc"].add_metric([gpu, unit], used)
        yield from fam.values()

    def _xids(self) -> Iterator[Any]:
        xid = CounterMetricFamily(
            "airig_gpu_xid_errors",
            "NVIDIA XID errors in the kernel log since the exporter started",
            labels=["pci", "xid"],
        )
        for (pci, code), count in sorted((self.xids.snapshot() if self.xids else {}).items()):
            xid.add_metric([pci, code], count)
        yield xid


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen-address", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9445)
    ap.add_argument("--expected-gpus", type=int, default=0, help="GPUs the profile names")
    ap.add_argument("--proc", type=Path, default=Path("/proc"), help=argparse.SUPPRESS)
    ap.add_argument(
        "--kernel-log",
        choices=("journal", "none"),
        default="journal",
        help="count XIDs from the kernel's journal (the service user needs systemd-journal)",
    )
    args = ap.parse_args(argv)
    import pynvml

    xids = None
    if args.kernel_log == "journal":
        xids = XidCounter()
        cmd = ["journalctl", "--dmesg", "--follow", "--lines=0", "--output=cat", "--no-pager"]
        threading.Thread(target=xids.follow, args=(cmd,), daemon=True).start()
    REGISTRY.register(GpuCollector(pynvml, args.expected_gpus, args.proc, xids))
    start_http_server(args.port, addr=args.listen_address)
    threading.Event().wait()


if __name__ == "__main__":
    main()
