"""`airig verify`: the NVML probe and checks of module airig.rig.gpu_verify, run locally.

The probe and the checks live once, in the collection's ``plugins/module_utils/nvml.py``
(they must travel to target hosts inside the module); this module loads that file from the
checkout when airig runs from one, else from the collection installed with the wheel.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from airig import profiles
from airig.errors import InputError

EXIT_MATCH, EXIT_MISMATCH, EXIT_NO_NVML, EXIT_REBOOT = 0, 1, 2, 3
_CHECKOUT_UTILS = Path(__file__).resolve().parents[2] / "plugins" / "module_utils" / "nvml.py"
_INSTALLED_UTILS = "ansible_collections.airig.rig.plugins.module_utils.nvml"


@cache
def nvml_utils() -> ModuleType:
    if _CHECKOUT_UTILS.is_file():
        spec = importlib.util.spec_from_file_location("airig_nvml_utils", _CHECKOUT_UTILS)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(_INSTALLED_UTILS)


@dataclass
class Report:
    """What `airig verify` found. ``exit_code`` follows the documented table."""

    profile: str | None
    matched: bool
    exit_code: int
    message: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] | None = None
    error_kind: str | None = None
    reboot_required: bool = False
    closest_misses: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "matched": self.matched,
            "exit_code": self.exit_code,
            "message": self.message,
            "error_kind": self.error_kind,
            "reboot_required": self.reboot_required,
            "checks": self.checks,
            "closest_misses": self.closest_misses,
            "gpu_facts": self.facts,
        }


PCI_DEVICES = Path("/sys/bus/pci/devices")


def nvidia_pci_devices(root: Path | None = None) -> list[str]:
    """PCI addresses of NVIDIA display/3D controllers (vendor 0x10de, class 0x03xxxx), read from
    sysfs: they are there before any driver is."""
    found = []
    base = root or PCI_DEVICES
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return []
    for dev in entries:
        try:
            vendor = (dev / "vendor").read_text().strip().lower()
            klass = (dev / "class").read_text().strip().lower()
        except OSError:
            continue
        if vendor == "0x10de" and klass.startswith("0x03"):
            found.append(dev.name)
    return found


def _probe() -> tuple[dict[str, Any] | None, str | None, str]:
    utils = nvml_utils()
    try:
        import pynvml
    except ImportError:
        return None, "pynvml_missing", utils.ERROR_HINTS["pynvml_missing"]
    try:
        return utils.probe(pynvml), None, ""
    except utils.ProbeError as exc:
        return None, exc.kind, str(exc)


def _distance(facts: dict[str, Any], profile: profiles.Profile) -> tuple[float, int]:
    """How far a box is from a profile: share of GPUs of another model, then GPU count gap."""
    names = {profile.gpus.model, *profile.gpus.accepted_models} - {None}
    gpus = facts.get("gpus", [])
    other = sum(1 for g in gpus if g.get("name") not in names)
    share = other / len(gpus) if gpus else float(profile.gpus.count > 0)
    return share, abs(facts.get("gpu_count", 0) - profile.gpus.count)


def run(
    profile: str = "auto",
    extra_dirs: tuple[Path, ...] = (),
    memory_tolerance_pct: float | None = None,
    advisory: tuple[str, ...] | None = None,
) -> Report:
    """Probe this machine and verify it against ``profile`` (a name, a file, or 'auto')."""
    utils = nvml_utils()
    tol = (
        utils.DEFAULT_MEMORY_TOLERANCE_PCT if memory_tolerance_pct is None else memory_tolerance_pct
    )
    if not math.isfinite(tol) or not 0 <= tol <= 50:
        raise InputError(
            f"--memory-tolerance-pct: bad value {tol}: expected a number from 0 to 50 (percent "
            "of the profile's memory per GPU a card may lack)"
        )
    adv = tuple(utils.DEFAULT_ADVISORY if advisory is None else advisory)
    problem = utils.unknown_advisory(adv, "--advisory")
    if problem:
        raise InputError(problem)
    candidates = (
        profiles.load_all(extra_dirs) if profile == "auto" else [profiles.load(profile, extra_dirs)]
    )
    facts, kind, why = _probe()
    if kind is not None:
        nvidia = nvidia_pci_devices() if kind in utils.NO_DRIVER_KINDS else []
        if nvidia:
            # A GPU box whose driver is not in yet is not a CPU box (issue 30 item 4).
            return Report(
                profile=None if profile == "auto" else candidates[0].name,
                matched=False,
                exit_code=EXIT_NO_NVML,
                message=(
                    f"{len(nvidia)} NVIDIA GPU(s) on the PCI bus ({', '.join(nvidia[:4])}) but no "
                    f"NVIDIA driver answers yet ({why}): provision the box with its profile "
                    "(airig provision -p home|business|team|..., which installs the driver and "
                    "checks the GPUs), then run airig verify again"
                ),
                error_kind="gpu_without_driver",
            )
        cpu = [p for p in candidates if p.gpus.count == 0]
        if not (kind in utils.NO_DRIVER_KINDS and cpu):
            code = EXIT_REBOOT if kind == "version_mismatch" else EXIT_NO_NVML
            return Report(
                profile=None if profile == "auto" else candidates[0].name,
                matched=False,
                exit_code=code,
                message=why,
                error_kind=kind,
                reboot_required=kind == "version_mismatch",
            )
        facts = utils.facts_without_driver()
    assert facts is not None
    scored = []
    for cand in candidates:
        checks = utils.verify(facts, cand.raw, tol, adv)
        failed = [c for c in checks if c["verdict"] == "fail"]
        warned = [c for c in checks if c["verdict"] == "warn"]
        scored.append((len(failed), _distance(facts, cand), len(warned), cand, checks))
    scored.sort(key=lambda s: (s[0] > 0, s[1], s[0], s[2]))
    n_failed, _, _, best, checks = scored[0]
    summary = utils.summarize(checks)
    gpus = facts["gpu_count"]
    if n_failed == 0:
        message = f"{gpus} GPU(s): this machine matches profile {best.name}"
        if summary["advisory_warnings"]:
            message += f" with {len(summary['advisory_warnings'])} warning(s)"
        return Report(best.name, True, EXIT_MATCH, message, checks, facts)
    lead = "closest profile" if profile == "auto" else "profile"
    message = f"this machine does not match {lead} {best.name}"
    return Report(
        best.name,
        False,
        EXIT_MISMATCH,
        message,
        checks,
        facts,
        closest_misses=summary["failed_checks"],
    )
