"""Module airig.rig.gpu_verify, unit-tested with set_module_args against the NVML test double."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.airig.rig.plugins.module_utils.nvml import ALL_CHECKS
from ansible_collections.airig.rig.plugins.modules import gpu_verify

from airig import profiles
from tests.module_utils import AnsibleExitJson, AnsibleFailJson, set_module_args

H100_PROFILE = {
    "name": "h100-box",
    "description": "8 x H100 SXM",
    "gpus": {
        "count": 8,
        "model": "NVIDIA H100 80GB HBM3",
        "memory_gib": 80,
        "compute_capability": "9.0",
        "pcie": {"generation": 5, "width": 16},
    },
    "driver": {"min_branch": 550},
    "engines": ["vllm"],
    "models": [],
}


def run(args: dict[str, Any], **kw: bool) -> dict[str, Any]:
    with set_module_args(args, **kw), pytest.raises((AnsibleExitJson, AnsibleFailJson)) as info:
        gpu_verify.main()
    result: dict[str, Any] = info.value.result  # type: ignore[attr-defined]
    return result


def home() -> dict[str, Any]:
    return profiles.load("home").raw


def test_match(nvml_box: Callable[[str], Path]) -> None:
    nvml_box("home")
    result = run({"profile": home()})
    assert not result.get("failed") and result["matched"] and not result["changed"]
    assert result["msg"] == "2 GPU(s) match profile home"
    assert result["ansible_facts"]["airig_gpu"]["gpu_count"] == 2
    assert result["gpu_facts"]["driver_version"] == "580.95.05"
    assert {c["verdict"] for c in result["checks"]} == {"pass"}
    assert {c["check"] for c in result["checks"]} == set(ALL_CHECKS) - {"gpus_present"}


def test_inline_profile_for_an_h100_box(nvml_box: Callable[[str], Path]) -> None:
    nvml_box("h100")
    result = run({"profile": H100_PROFILE})
    assert result["matched"], result["failed_checks"]
    assert not any(c["verdict"] == "fail" for c in result["checks"])


@pytest.mark.parametrize(
    ("box", "needle"),
    [
        ("home_gpu_missing", "1 GPU(s) visible, profile home expects 2"),
        ("home_wrong_model", "GPU 1: found NVIDIA GeForce RTX 4090"),
        ("home_memory_short", "GPU 1: reports 24576 MiB, outside 31129-34406 MiB"),
        ("home_old_driver", "driver 550.163.01 is older than branch 580"),
        ("home_gpu_lost", "GPU 1: fell off the bus"),
        ("home_pcie_x4", "GPU 1: link trained at x4 of x16"),
        ("home_rebar_off", "Resizable BAR is off"),
    ],
)
def test_mismatch_fails_with_what_to_do(
    nvml_box: Callable[[str], Path], box: str, needle: str
) -> None:
    nvml_box(box)
    result = run({"profile": home()})
    assert result["failed"] and not result["matched"]
    assert result["msg"].startswith("this host does not match profile home: ")
    assert needle in result["msg"]
    assert any(needle in m for m in result["failed_checks"])
    assert result["checks"]  # the evidence is kept on failure


def test_fail_on_mismatch_false_returns_without_failing(nvml_box: Callable[[str], Path]) -> None:
    nvml_box("home_wrong_model")
    result = run({"profile": home(), "fail_on_mismatch": False})
    assert not result.get("failed") and not result["matched"]


def test_version_mismatch_says_reboot(nvml_box: Callable[[str], Path]) -> None:
    nvml_box("version_mismatch")
    result = run({"profile": home()})
    assert result["failed"] and result["reboot_required"] is True
    assert result["error_kind"] == "version_mismatch"
    assert "reboot the host, then verify again" in result["msg"]
    soft = run({"profile": home(), "fail_on_mismatch": False})
    assert not soft.get("failed") and soft["reboot_required"] is True


def test_driver_not_loaded(nvml_box: Callable[[str], Path]) -> None:
    nvml_box("cpu_box")
    result = run({"profile": home()})
    assert result["failed"] and result["error_kind"] == "driver_not_loaded"
    assert "modprobe nvidia" in result["msg"] and result["reboot_required"] is False


def test_cpu_profile_without_driver_matches(nvml_box: Callable[[str], Path]) -> None:
    nvml_box("cpu_box")
    result = run({"profile": profiles.load("cpu").raw})
    assert result["matched"] and not result.get("failed")


def test_advisory_downgrades_a_check(nvml_box: Callable[[str], Path]) -> None:
    nvml_box("home_pcie_x4")
    result = run({"profile": home(), "advisory": ["pcie_width", "pcie_generation"]})
    assert result["matched"] and any("x4 of x16" in w for w in result["advisory_warnings"])


def test_check_mode_and_diff(nvml_box: Callable[[str], Path]) -> None:
    nvml_box("home_wrong_model")
    result = run({"profile": home(), "fail_on_mismatch": False}, check_mode=True, diff=True)
    assert not result["changed"]
    diff = result["diff"]
    assert "gpu1.model: NVIDIA GeForce RTX 5090" in diff["before"]
    assert "gpu1.model: NVIDIA GeForce RTX 4090" in diff["after"]
    assert diff["before_header"] == "profile home (expected)"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({"profile": "home"}, "option profile: bad value 'home'"),
        ({"profile": {"name": "x"}}, "a 'gpus' mapping"),
        ({"profile": "HOME", "advisory": ["pci_width"]}, "option profile"),
        ({"advisory": ["pci_width"]}, "option advisory: unknown check(s) pci_width"),
        ({"memory_tolerance_pct": 80}, "option memory_tolerance_pct: bad value 80"),
    ],
)
def test_bad_options(nvml_box: Callable[[str], Path], args: dict[str, Any], needle: str) -> None:
    nvml_box("home")
    result = run({"profile": home(), **args})
    assert result["failed"] and needle in result["msg"]


def test_pynvml_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_verify, "PYNVML_IMPORT_ERROR", "Traceback: No module named pynvml")
    result = run({"profile": home()})
    assert result["failed"] and result["error_kind"] == "pynvml_missing"
    assert "nvidia-ml-py" in result["msg"]
