"""Issue 13: airig's GPU exporter (roles/observe/files/airig_gpu_exporter.py) as the observe
role installs it (beside a copy of plugins/module_utils/nvml.py named airig_nvml.py), run as a
process against the NVML test double and scraped over HTTP like Prometheus does."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import exporter_harness as harness
from tests.nvml_double import FIXTURES

UNIT = "airig-vllm.service"
CGROUPS = {
    4242: rf"0::/system.slice/{UNIT}",
    5151: "0::/user.slice/user-1000.slice/session-2.scope",
}


@pytest.fixture
def scrape(fake_nvml_dir: Path, tmp_path: Path) -> Iterator:
    procs: list[subprocess.Popen] = []

    def run(box: str, expected: int = 2) -> dict[str, list]:
        where = harness.install(tmp_path / box, CGROUPS)
        proc, url = harness.start(where, fake_nvml_dir, FIXTURES / f"{box}.json", expected)
        procs.append(proc)
        out: dict[str, list] = {}
        for family in text_string_to_metric_families(harness.scrape(url)):
            for sample in family.samples:
                out.setdefault(sample.name, []).append((sample.labels, sample.value))
        return out

    yield run
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def value(metrics: dict[str, list], name: str, **labels: str) -> float:
    (got,) = [v for lab, v in metrics[name] if all(lab.get(k) == w for k, w in labels.items())]
    return float(got)


def test_a_hot_throttled_gpu_as_prometheus_reads_it(scrape) -> None:  # type: ignore[no-untyped-def]
    m = scrape("home_hot_throttled")
    assert value(m, "airig_nvml_up") == 1
    assert value(m, "airig_gpus_present") == value(m, "airig_gpus_expected") == 2
    assert value(m, "airig_gpu_temperature_celsius", gpu="0") == 91
    assert value(m, "airig_gpu_power_watts", gpu="0") == 571
    assert value(m, "airig_gpu_power_limit_watts", gpu="0") == 575
    assert value(m, "airig_gpu_sm_clock_hertz", gpu="0") == 1905e6
    assert value(m, "airig_gpu_utilization_ratio", gpu="1") == pytest.approx(0.97)
    reasons = {
        lab["reason"] for lab, v in m["airig_gpu_clock_event_reason"] if lab["gpu"] == "0" and v
    }
    assert reasons == {"sw_power_cap", "hw_thermal"}
    assert not any(v for lab, v in m["airig_gpu_clock_event_reason"] if lab["gpu"] == "1")
    assert value(m, "airig_gpu_pcie_link_generation", gpu="0") == 5
    # Per service: the engine's process on both GPUs, a desktop process outside any service.
    assert value(m, "airig_gpu_process_memory_bytes", gpu="0", unit=UNIT) == 20 * 2**30
    assert (
        value(m, "airig_gpu_process_memory_bytes", gpu="1", unit=UNIT)
        == 20401094656 // 2**20 * 2**20
    )
    assert value(m, "airig_gpu_process_memory_bytes", gpu="0", unit="") == 256 * 2**20
    # GeForce cards answer NOT_SUPPORTED for ECC: no series rather than a false zero.
    assert "airig_gpu_ecc_errors_total" not in m


def test_a_lost_gpu_and_a_box_without_a_driver(scrape) -> None:  # type: ignore[no-untyped-def]
    lost = scrape("home_gpu_lost")
    assert value(lost, "airig_gpus_present") == 1 and value(lost, "airig_gpus_expected") == 2
    assert value(lost, "airig_gpu_lost", gpu="1") == 1
    none = scrape("cpu_box")
    assert value(none, "airig_nvml_up", error="driver_not_loaded") == 0
    assert value(none, "airig_gpus_present") == 0


def test_xid_lines_are_counted_per_gpu_and_code(tmp_path: Path) -> None:
    """The kernel's lines as NVIDIA's XID catalogue documents them ("NVRM: Xid (PCI:...): N")."""
    where = harness.install(tmp_path, {})
    probe = (
        "import sys; sys.argv = ['x']; import airig_gpu_exporter as e; x = e.XidCounter()\n"
        "for line in sys.stdin: x.feed(line)\n"
        "print(sorted((k[0], k[1], n) for k, n in x.snapshot().items()))"
    )
    lines = "\n".join(
        [
            "NVRM: Xid (PCI:0000:01:00): 79, pid=1977, name=python3, GPU has fallen off the bus.",
            "NVRM: Xid (PCI:0000:01:00): 79, pid=1977, GPU has fallen off the bus.",
            "NVRM: Xid (PCI:0000:41:00): 13, pid=2001, Graphics SM Warp Exception",
            "nvidia-modeset: Allocated GPU:0 (GPU-8c2e...) @ PCI:0000:01:00.0",
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], input=lines, cwd=where, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[('0000:01:00', '79', 2), ('0000:41:00', '13', 1)]"
