"""The NVML probe and the checks, through the real pynvml and the libnvidia-ml test double."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airig import profiles
from airig.verify import nvml_utils

utils = nvml_utils()


def probe() -> dict[str, Any]:
    import pynvml

    result: dict[str, Any] = utils.probe(pynvml)
    return result


def verdicts(checks: list[dict[str, Any]]) -> dict[tuple[str, int | None], str]:
    return {(c["check"], c["gpu"]): c["verdict"] for c in checks}


def test_probe_reads_every_fact(nvml_box: Callable[[str], Path]) -> None:
    nvml_box("home")
    facts = probe()
    assert facts["driver_version"] == "580.95.05"
    assert facts["cuda_driver_version"] == "13.0"
    assert facts["nvml_version"] == "12.580.95.05"
    assert facts["gpu_count"] == 2 and facts["total_memory_mib"] == 2 * 32607
    gpu = facts["gpus"][0]
    assert gpu["name"] == "NVIDIA GeForce RTX 5090"
    assert gpu["uuid"].startswith("GPU-")
    assert gpu["serial"] is None and gpu["ecc_mode"] is None and gpu["mig_mode"] is None
    assert gpu["memory_total_mib"] == 32607 and gpu["memory_used_mib"] == 512
    assert gpu["bar1_total_mib"] == 32768
    assert gpu["compute_capability"] == "12.0"
    assert (gpu["pcie_generation_current"], gpu["pcie_generation_max"]) == (1, 5)
    assert (gpu["pcie_width_current"], gpu["pcie_width_max"]) == (16, 16)
    assert gpu["persistence_mode"] is True
    assert (gpu["power_limit_w"], gpu["power_default_limit_w"], gpu["power_max_limit_w"]) == (
        575,
        575,
        600,
    )
    assert gpu["temperature_c"] == 34
    assert gpu["processes"] == [{"pid": 4242, "used_memory_mib": 1536}]


def test_datacenter_card_answers_serial_ecc_mig(nvml_box: Callable[[str], Path]) -> None:
    nvml_box("team")
    gpu = probe()["gpus"][3]
    assert gpu["serial"] == "1792525000003" and gpu["ecc_mode"] is True
    assert gpu["mig_mode"] is False


@pytest.mark.parametrize(
    ("box", "kind", "reboot"),
    [
        ("cpu_box", "driver_not_loaded", False),
        ("version_mismatch", "version_mismatch", True),
    ],
)
def test_nvml_start_failures(
    nvml_box: Callable[[str], Path], box: str, kind: str, reboot: bool
) -> None:
    nvml_box(box)
    with pytest.raises(utils.ProbeError) as info:
        probe()
    assert info.value.kind == kind and info.value.reboot_required is reboot
    assert str(info.value) == utils.ERROR_HINTS[kind] + f" (NVML: {info.value.detail})"


def test_lost_gpu_is_reported_not_raised(nvml_box: Callable[[str], Path]) -> None:
    nvml_box("home_gpu_lost")
    facts = probe()
    assert facts["gpu_count"] == 2
    assert facts["gpus"][1] == {"index": 1, "lost": True, "error": "GPU is lost"}


EXPECTED_FAILS: dict[str, set[tuple[str, int | None]]] = {
    "home": set(),
    "home_gpu_missing": {("gpu_count", None), ("total_vram", None)},
    "home_wrong_model": {
        ("model", 1),
        ("memory", 1),
        ("compute_capability", 1),
        ("uniform", None),
        ("total_vram", None),
    },
    "home_memory_short": {("memory", 1), ("uniform", None), ("total_vram", None)},
    "home_old_driver": {("driver_branch", None)},
    "home_gpu_lost": {("gpus_present", 1), ("total_vram", None)},
    "home_pcie_x4": {("pcie_width", 1)},
    "home_rebar_off": {("resizable_bar", 0), ("resizable_bar", 1)},
    "home_gen4_no_persistence": set(),
}


@pytest.mark.parametrize("box", sorted(EXPECTED_FAILS))
def test_verdicts_against_home(nvml_box: Callable[[str], Path], box: str) -> None:
    nvml_box(box)
    checks = utils.verify(probe(), profiles.load("home").raw)
    failed = {k for k, v in verdicts(checks).items() if v == "fail"}
    assert failed == EXPECTED_FAILS[box]
    for c in checks:
        if c["verdict"] == "fail":
            assert c["message"], c  # every failure says what to do


def test_wrong_model_message(nvml_box: Callable[[str], Path]) -> None:
    nvml_box("home_wrong_model")
    checks = utils.verify(probe(), profiles.load("home").raw)
    model = next(c for c in checks if c["check"] == "model" and c["gpu"] == 1)
    assert model["expected"] == "NVIDIA GeForce RTX 5090"
    assert model["found"] == "NVIDIA GeForce RTX 4090"
    assert "GPU 1: found NVIDIA GeForce RTX 4090" in model["message"]


def test_pcie_x4_message_names_the_fix(nvml_box: Callable[[str], Path]) -> None:
    nvml_box("home_pcie_x4")
    checks = utils.verify(probe(), profiles.load("home").raw)
    width = next(c for c in checks if c["check"] == "pcie_width" and c["gpu"] == 1)
    assert width["found"] == "x4 (max x16)"
    assert "riser" in width["message"] and "x16 in the BIOS" in width["message"]
    gen = next(c for c in checks if c["check"] == "pcie_generation" and c["gpu"] == 1)
    assert gen["verdict"] == "pass"  # Gen 1 at idle is not judged; the max (Gen 5) is


def test_advisory_checks_warn(nvml_box: Callable[[str], Path]) -> None:
    nvml_box("home_gen4_no_persistence")
    checks = utils.verify(probe(), profiles.load("home").raw)
    warned = {k for k, v in verdicts(checks).items() if v == "warn"}
    assert warned == {
        ("pcie_generation", 0),
        ("pcie_generation", 1),
        ("persistence_mode", 0),
        ("persistence_mode", 1),
    }
    strict = utils.verify(probe(), profiles.load("home").raw, advisory=())
    assert {k for k, v in verdicts(strict).items() if v == "fail"} == warned


def test_rebar_off_message(nvml_box: Callable[[str], Path]) -> None:
    nvml_box("home_rebar_off")
    checks = utils.verify(probe(), profiles.load("home").raw)
    bar = next(c for c in checks if c["check"] == "resizable_bar")
    assert "Above 4G Decoding" in bar["message"] and "Re-Size BAR" in bar["message"]


@pytest.mark.parametrize(("box", "profile"), [("business", "business"), ("team", "team")])
def test_reference_builds_pass(nvml_box: Callable[[str], Path], box: str, profile: str) -> None:
    nvml_box(box)
    checks = utils.verify(probe(), profiles.load(profile).raw)
    assert utils.summarize(checks) == {
        "matched": True,
        "failed_checks": [],
        "advisory_warnings": [],
    }


def test_memory_tolerance_rule() -> None:
    lo, hi = utils.memory_bounds_mib(32, 5)
    assert (lo, hi) == (31129, 34406)
    assert lo <= 32607 <= hi  # a real RTX 5090
    assert not lo <= 24576 <= hi  # a 24 GB card


def test_team_profile_decides_which_pro6000_names_it_accepts(
    nvml_box: Callable[[str], Path],
) -> None:
    nvml_box("team")
    raw = profiles.load("team").raw
    facts = probe()
    for g in facts["gpus"]:
        g["name"] = "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition"
    assert utils.summarize(utils.verify(facts, raw))["matched"]
    for g in facts["gpus"]:
        g["name"] = "NVIDIA RTX 6000 Ada Generation"
    assert not utils.summarize(utils.verify(facts, raw))["matched"]
