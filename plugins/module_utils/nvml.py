# Copyright: airig engineers
# Apache-2.0 (see galaxy.yml)
"""NVML probing and verification against a build profile.

Shared by the module airig.rig.gpu_verify (runs on the target host) and by `airig verify`
(runs locally). Pure standard library plus the optional `pynvml` (PyPI: nvidia-ml-py), so it
can travel to a target inside the module payload.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

# NVML return codes (nvml.h, nvmlReturn_t).
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18

MIB = 1024 * 1024
# Without Resizable BAR the BAR1 aperture is 256 MiB; with it, about the card's memory.
BAR1_SMALL_MIB = 256

ALL_CHECKS = (
    "gpus_present",
    "gpu_count",
    "model",
    "memory",
    "total_vram",
    "driver_branch",
    "compute_capability",
    "pcie_width",
    "pcie_generation",
    "resizable_bar",
    "persistence_mode",
    "uniform",
)
DEFAULT_ADVISORY = ("pcie_generation", "persistence_mode")
DEFAULT_MEMORY_TOLERANCE_PCT = 5.0

# What to do, per failure kind. Every message names an action.
ERROR_HINTS = {
    "pynvml_missing": "install nvidia-ml-py on the host (pip package; imported as pynvml)",
    "library_not_found": (
        "no NVIDIA driver is installed (libnvidia-ml.so.1 not found): run the nvidia_driver role"
    ),
    "driver_not_loaded": (
        "the NVIDIA kernel module is not loaded: reboot after the driver install, or run "
        "'modprobe nvidia' and read 'dmesg | grep -i nvidia' (Secure Boot may block an unsigned "
        "module)"
    ),
    "version_mismatch": (
        "Driver/library version mismatch: the driver packages were upgraded but the old kernel "
        "module is still loaded; reboot the host, then verify again"
    ),
    "no_permission": "NVML refused access: run as root or a user in the video group",
    "unknown": "NVML failed: read 'nvidia-smi' output and 'dmesg | grep -i -e nvrm -e xid'",
}


# Why clocks are below their maximum (nvml.h, nvmlClocksEventReason*): the names the exporter
# and the alert rules use. Power and thermal reasons mean the GPU is throttled.
CLOCK_EVENT_REASONS = {
    "gpu_idle": 0x1,
    "applications_clocks": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal": 0x20,
    "hw_thermal": 0x40,
    "hw_power_brake": 0x80,
    "display_clock": 0x100,
}
# nvml.h: nvmlClockType_t, nvmlMemoryErrorType_t, nvmlEccCounterType_t.
NVML_CLOCK_GRAPHICS, NVML_CLOCK_SM, NVML_CLOCK_MEM = 0, 1, 2
NVML_MEMORY_ERROR_CORRECTED, NVML_MEMORY_ERROR_UNCORRECTED = 0, 1
NVML_VOLATILE_ECC = 0

# NVML failures that mean "no NVIDIA driver here": on a CPU-only profile that is what was ordered.
NO_DRIVER_KINDS = ("library_not_found", "driver_not_loaded")


# A system service's cgroup, and nothing else (issue 29 item 13): the unit directly in
# system.slice, or in the system-<name>.slice systemd makes for a template's instances; a
# container's own systemd under the host's docker-<id>.scope (cgroup namespace of the host). A
# local user's own manager can name a unit of theirs airig-vllm.service, but only under
# /user.slice/user-UID.slice/user@UID.service/, which this never matches.
_SYSTEM_SERVICE = re.compile(
    r"(?:/system\.slice/[a-z0-9-]{1,64}-[0-9a-f]{12,64}\.scope)?"
    r"/system\.slice/(?:system-[^/]{1,200}\.slice/)?(?P<unit>[^/]{1,200}\.service)"
)


def service_of(cgroup: str) -> str | None:
    """The systemd system service a process runs in, from the text of its /proc/PID/cgroup
    (cgroup v2 "0::/system.slice/system-airig\\x2dllama\\x2dserver.slice/airig-llama-server@m
    .service", or v1's "1:name=systemd:/system.slice/..."): what maps NVML's process IDs to
    engines. Only the unified (0::) or systemd (name=systemd) hierarchy counts, and its whole
    path must be a system service's (_SYSTEM_SERVICE)."""
    for line in cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if (hierarchy, controllers) != ("0", "") and controllers != "name=systemd":
            continue
        found = _SYSTEM_SERVICE.fullmatch(path)
        return found["unit"] if found else None
    return None


def facts_without_driver() -> dict[str, Any]:
    """The facts of a box with no usable NVIDIA driver: no GPUs."""
    return {"driver_version": None, "gpu_count": 0, "gpus": [], "total_memory_mib": 0}


def unknown_advisory(names: Any, option: str) -> str:
    """A message naming advisory check names that do not exist ('' when all are known)."""
    unknown = sorted(set(names) - set(ALL_CHECKS))
    if not unknown:
        return ""
    return f"{option}: unknown check(s) {', '.join(unknown)}; allowed: {', '.join(ALL_CHECKS)}"


class ProbeError(Exception):
    """NVML cannot be used on this host; ``kind`` is a key of ERROR_HINTS."""

    def __init__(self, kind: str, detail: str = "") -> None:
        self.kind = kind
        self.detail = detail
        self.reboot_required = kind == "version_mismatch"
        super().__init__(f"{ERROR_HINTS[kind]}" + (f" (NVML: {detail})" if detail else ""))


def _kind_of(code: int | None) -> str:
    return {
        NVML_ERROR_LIBRARY_NOT_FOUND: "library_not_found",
        NVML_ERROR_DRIVER_NOT_LOADED: "driver_not_loaded",
        NVML_ERROR_LIB_RM_VERSION_MISMATCH: "version_mismatch",
        NVML_ERROR_NO_PERMISSION: "no_permission",
    }.get(code or -1, "unknown")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe(nvml: Any) -> dict[str, Any]:
    """Read driver and per-GPU facts through the ``pynvml`` module ``nvml``.

    A query a GPU does not support yields None; a GPU that fell off the bus is reported with
    ``lost: true``. Raises ProbeError when NVML itself cannot start.
    """
    init(nvml)
    try:
        return read(nvml)
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()


def init(nvml: Any) -> None:
    """Start NVML, or raise ProbeError with what to do."""
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise ProbeError(_kind_of(getattr(exc, "value", None)), str(exc)) from exc


def read(nvml: Any, telemetry: bool = False) -> dict[str, Any]:
    """The facts of ``probe`` from an NVML already started (a long-running reader such as the
    exporter keeps it open); ``telemetry``: also what changes by the second (power, clocks and
    why they are lowered, utilisation, ECC error counts) under each GPU's ``telemetry``."""

    def opt(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except nvml.NVMLError as exc:
            if getattr(exc, "value", None) in (
                NVML_ERROR_NOT_SUPPORTED,
                NVML_ERROR_FUNCTION_NOT_FOUND,
                NVML_ERROR_NO_PERMISSION,
            ):
                return None
            raise

    cuda = opt(nvml.nvmlSystemGetCudaDriverVersion)
    facts: dict[str, Any] = {
        "driver_version": _text(nvml.nvmlSystemGetDriverVersion()),
        "nvml_version": _text(opt(nvml.nvmlSystemGetNVMLVersion) or ""),
        "cuda_driver_version": f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else None,
        "gpus": [],
    }
    count = nvml.nvmlDeviceGetCount()
    for index in range(count):
        facts["gpus"].append(_probe_gpu(nvml, index, opt, telemetry))
    facts["gpu_count"] = count
    facts["total_memory_mib"] = sum(g.get("memory_total_mib") or 0 for g in facts["gpus"])
    return facts


def _probe_gpu(nvml: Any, index: int, opt: Any, telemetry: bool = False) -> dict[str, Any]:
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = _text(nvml.nvmlDeviceGetName(handle))
    except nvml.NVMLError as exc:
        if getattr(exc, "value", None) == NVML_ERROR_GPU_IS_LOST:
            return {"index": index, "lost": True, "error": str(exc)}
        raise
    try:
        facts = _gpu_facts(nvml, index, handle, name, opt)
        if telemetry:
            facts["telemetry"] = _telemetry(nvml, handle, opt)
        return facts
    except nvml.NVMLError as exc:
        if getattr(exc, "value", None) == NVML_ERROR_GPU_IS_LOST:
            return {"index": index, "name": name, "lost": True, "error": str(exc)}
        raise


def _gpu_facts(nvml: Any, index: int, handle: Any, name: str, opt: Any) -> dict[str, Any]:
    mem = nvml.nvmlDeviceGetMemoryInfo(handle)
    bar1 = opt(nvml.nvmlDeviceGetBAR1MemoryInfo, handle)
    cc = opt(nvml.nvmlDeviceGetCudaComputeCapability, handle)
    limits = opt(nvml.nvmlDeviceGetPowerManagementLimitConstraints, handle)
    limit = opt(nvml.nvmlDeviceGetPowerManagementLimit, handle)
    default = opt(nvml.nvmlDeviceGetPowerManagementDefaultLimit, handle)
    ecc = opt(nvml.nvmlDeviceGetEccMode, handle)
    mig = opt(nvml.nvmlDeviceGetMigMode, handle)
    persistence = opt(nvml.nvmlDeviceGetPersistenceMode, handle)
    serial = opt(nvml.nvmlDeviceGetSerial, handle)
    procs = opt(nvml.nvmlDeviceGetComputeRunningProcesses, handle) or []
    return {
        "index": index,
        "lost": False,
        "name": name,
        "uuid": _text(opt(nvml.nvmlDeviceGetUUID, handle) or "") or None,
        "serial": _text(serial) if serial else None,
        "memory_total_mib": mem.total // MIB,
        "memory_used_mib": mem.used // MIB,
        "memory_free_mib": mem.free // MIB,
        "bar1_total_mib": bar1.bar1Total // MIB if bar1 else None,
        "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
        "pcie_generation_current": opt(nvml.nvmlDeviceGetCurrPcieLinkGeneration, handle),
        "pcie_generation_max": opt(nvml.nvmlDeviceGetMaxPcieLinkGeneration, handle),
        "pcie_width_current": opt(nvml.nvmlDeviceGetCurrPcieLinkWidth, handle),
        "pcie_width_max": opt(nvml.nvmlDeviceGetMaxPcieLinkWidth, handle),
        "persistence_mode": bool(persistence) if persistence is not None else None,
        "power_limit_w": limit / 1000 if limit is not None else None,
        "power_default_limit_w": default / 1000 if default is not None else None,
        "power_max_limit_w": limits[1] / 1000 if limits else None,
        "ecc_mode": bool(ecc[0]) if ecc else None,
        "mig_mode": bool(mig[0]) if mig else None,
        "temperature_c": opt(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU),
        "processes": [
            {"pid": p.pid, "used_memory_mib": (p.usedGpuMemory or 0) // MIB} for p in procs
        ],
    }


def _telemetry(nvml: Any, handle: Any, opt: Any) -> dict[str, Any]:
    power = opt(nvml.nvmlDeviceGetPowerUsage, handle)
    # The older name is the one Debian 12's python3-pynvml (11.495) has.
    reasons_fn = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
    reasons = opt(reasons_fn or nvml.nvmlDeviceGetCurrentClocksThrottleReasons, handle)
    util = opt(nvml.nvmlDeviceGetUtilizationRates, handle)

    def ecc(kind: int) -> Any:
        return opt(nvml.nvmlDeviceGetTotalEccErrors, handle, kind, NVML_VOLATILE_ECC)

    return {
        "power_w": power / 1000 if power is not None else None,
        "clock_sm_mhz": opt(nvml.nvmlDeviceGetClockInfo, handle, NVML_CLOCK_SM),
        "clock_mem_mhz": opt(nvml.nvmlDeviceGetClockInfo, handle, NVML_CLOCK_MEM),
        "clock_event_reasons": (
            None
            if reasons is None
            else sorted(name for name, bit in CLOCK_EVENT_REASONS.items() if reasons & bit)
        ),
        "utilization_gpu_pct": util.gpu if util is not None else None,
        "utilization_memory_pct": util.memory if util is not None else None,
        "ecc_errors_corrected": ecc(NVML_MEMORY_ERROR_CORRECTED),
        "ecc_errors_uncorrected": ecc(NVML_MEMORY_ERROR_UNCORRECTED),
        "display_active": _enabled(opt(nvml.nvmlDeviceGetDisplayActive, handle)),
    }


def _enabled(state: Any) -> bool | None:
    return None if state is None else bool(state)


# ---- verification ------------------------------------------------------------------------


def _check(
    name: str,
    expected: Any,
    found: Any,
    ok: bool | None,
    fix: str,
    required: bool,
    gpu: int | None = None,
) -> dict[str, Any]:
    """One check. ok None means the host cannot answer (NOT_SUPPORTED): verdict 'skip'."""
    if ok is None:
        verdict = "skip"
    elif ok:
        verdict = "pass"
    else:
        verdict = "fail" if required else "warn"
    where = f"GPU {gpu}: " if gpu is not None else ""
    return {
        "check": name,
        "gpu": gpu,
        "expected": expected,
        "found": found,
        "verdict": verdict,
        "required": required,
        "message": "" if verdict in ("pass", "skip") else f"{where}{fix}",
    }


def memory_bounds_mib(memory_gib: float, tolerance_pct: float) -> tuple[int, int]:
    """The memory-per-GPU rule: a card sold as N GB carries N GiB of chips and NVML reports a
    little less (the driver reserves some; ECC may take more). Accept N GiB +/- tolerance."""
    nominal = memory_gib * 1024
    return int(nominal * (1 - tolerance_pct / 100)), int(nominal * (1 + tolerance_pct / 100))


def verify(
    facts: dict[str, Any],
    profile: dict[str, Any],
    memory_tolerance_pct: float = DEFAULT_MEMORY_TOLERANCE_PCT,
    advisory: tuple[str, ...] | list[str] = DEFAULT_ADVISORY,
) -> list[dict[str, Any]]:
    """Compare probed ``facts`` with a build ``profile``; return the list of checks."""
    spec = profile.get("gpus") or {}
    want = int(spec.get("count", 0))
    names = [spec["model"], *spec.get("accepted_models", [])] if spec.get("model") else []
    gpus = facts.get("gpus", [])
    live = [g for g in gpus if not g.get("lost")]
    checks: list[dict[str, Any]] = []

    def req(name: str) -> bool:
        return name not in advisory

    for g in gpus:
        if g.get("lost"):
            checks.append(
                _check(
                    "gpus_present",
                    "on the bus",
                    "lost",
                    False,
                    "fell off the bus (NVML: GPU is lost): read 'dmesg | grep -i xid', check "
                    "power cables and seating; a reboot usually brings it back",
                    req("gpus_present"),
                    g["index"],
                )
            )
    found_count = facts.get("gpu_count", len(gpus))
    fewer = (
        "check power cables, seating and risers/MCIO cables, 'lspci | grep -i nvidia', and that "
        "Above 4G Decoding is on in the BIOS"
    )
    checks.append(
        _check(
            "gpu_count",
            want,
            found_count,
            found_count == want,
            f"{found_count} GPU(s) visible, profile {profile.get('name')} expects {want}: "
            + (fewer if found_count < want else "use a profile that matches this box"),
            req("gpu_count"),
        )
    )
    if want == 0:
        return checks
    lo, hi = memory_bounds_mib(float(spec["memory_gib"]), memory_tolerance_pct)
    for g in live:
        checks.append(
            _check(
                "model",
                " or ".join(names),
                g["name"],
                g["name"] in names,
                f"found {g['name']}, profile expects {' or '.join(names)}: fit the ordered card "
                "or choose the profile for this hardware",
                req("model"),
                g["index"],
            )
        )
        total = g.get("memory_total_mib")
        checks.append(
            _check(
                "memory",
                f"{lo}-{hi} MiB ({spec['memory_gib']:g} GiB +/- {memory_tolerance_pct:g}%)",
                total,
                lo <= total <= hi if total is not None else None,
                f"reports {total} MiB, outside {lo}-{hi} MiB: a different card variant, or "
                "memory disabled by a fault (check retired pages: "
                "'nvidia-smi -q -d PAGE_RETIREMENT')",
                req("memory"),
                g["index"],
            )
        )
    found_total = sum(g.get("memory_total_mib") or 0 for g in live)
    checks.append(
        _check(
            "total_vram",
            f">= {lo * want} MiB",
            found_total,
            found_total >= lo * want,
            f"{found_total} MiB of GPU memory in total, the build needs at least {lo * want} MiB",
            req("total_vram"),
        )
    )
    min_branch = (profile.get("driver") or {}).get("min_branch")
    driver = str(facts.get("driver_version") or "")
    branch = int(driver.split(".")[0]) if driver.split(".")[0].isdigit() else None
    if min_branch:
        checks.append(
            _check(
                "driver_branch",
                f">= {min_branch}",
                driver or None,
                branch >= int(min_branch) if branch is not None else None,
                f"driver {driver} is older than branch {min_branch}, the lowest the profile "
                f"and its engines ({', '.join(profile.get('engines') or []) or 'none'}) need: "
                f"set nvidia_driver_branch to {min_branch} or newer and run the nvidia_driver "
                "role",
                req("driver_branch"),
            )
        )
    cc_want = spec.get("compute_capability")
    pcie = spec.get("pcie") or {}
    for g in live:
        if cc_want:
            cc = g.get("compute_capability")
            checks.append(
                _check(
                    "compute_capability",
                    cc_want,
                    cc,
                    cc == cc_want if cc else None,
                    f"compute capability {cc}, profile expects {cc_want}: a different GPU "
                    "generation than ordered",
                    req("compute_capability"),
                    g["index"],
                )
            )
        checks.append(_width_check(g, pcie.get("width"), req("pcie_width")))
        checks.append(_generation_check(g, pcie.get("generation"), req("pcie_generation")))
        checks.append(_bar_check(g, req("resizable_bar")))
        pm = g.get("persistence_mode")
        checks.append(
            _check(
                "persistence_mode",
                True,
                pm,
                pm,
                "persistence mode is off: enable nvidia-persistenced (systemctl enable --now "
                "nvidia-persistenced) so the driver stays initialised between jobs",
                req("persistence_mode"),
                g["index"],
            )
        )
    shapes = {
        (g["name"], g.get("memory_total_mib"), g.get("compute_capability"), g.get("pcie_width_max"))
        for g in live
    }
    checks.append(
        _check(
            "uniform",
            "all GPUs alike",
            f"{len(shapes)} kind(s)",
            len(shapes) <= 1,
            "the GPUs differ (name, memory, compute capability or link): tensor parallelism "
            "runs at the pace of the weakest card; fit identical cards",
            req("uniform"),
        )
    )
    return checks


def _width_check(g: dict[str, Any], want: int | None, required: bool) -> dict[str, Any]:
    cur, top = g.get("pcie_width_current"), g.get("pcie_width_max")
    if cur is None or top is None:
        return _check("pcie_width", want, cur, None, "", required, g["index"])
    expected = want or top
    ok = cur >= expected and top >= expected
    if top < expected:
        fix = (
            f"slot and card allow only x{top} (profile expects x{expected}): move the card to a "
            "x16 slot, check the riser/MCIO cable, set the slot's link width to x16 in the BIOS"
        )
    else:
        fix = (
            f"link trained at x{cur} of x{top}: reseat the card, check the riser/MCIO cable, set "
            "the slot's link width to x16 in the BIOS"
        )
    return _check(
        "pcie_width", f"x{expected}", f"x{cur} (max x{top})", ok, fix, required, g["index"]
    )


def _generation_check(g: dict[str, Any], want: int | None, required: bool) -> dict[str, Any]:
    # The current generation drops at idle to save power: judge the maximum the device and
    # slot negotiate, and report the current one.
    cur, top = g.get("pcie_generation_current"), g.get("pcie_generation_max")
    if top is None:
        return _check("pcie_generation", want, None, None, "", required, g["index"])
    expected = want or top
    return _check(
        "pcie_generation",
        f"Gen {expected}",
        f"Gen {top} max (Gen {cur} now; drops at idle)",
        top >= expected,
        f"slot and card negotiate at most Gen {top}, the build expects Gen {expected}: set the "
        "slot to Gen 5 (or Auto) in the BIOS; a riser or cable may limit it",
        required,
        g["index"],
    )


def _bar_check(g: dict[str, Any], required: bool) -> dict[str, Any]:
    bar1, total = g.get("bar1_total_mib"), g.get("memory_total_mib")
    if bar1 is None or total is None:
        return _check("resizable_bar", "on", None, None, "", required, g["index"])
    on = bar1 > BAR1_SMALL_MIB and bar1 >= total // 2
    return _check(
        "resizable_bar",
        f"BAR1 about {total} MiB (Resizable BAR on)",
        f"BAR1 {bar1} MiB",
        on,
        f"BAR1 is {bar1} MiB, so Resizable BAR is off: turn on 'Above 4G Decoding' and "
        "'Re-Size BAR Support' in the BIOS",
        required,
        g["index"],
    )


def summarize(checks: list[dict[str, Any]]) -> dict[str, Any]:
    failed = [c for c in checks if c["verdict"] == "fail"]
    warned = [c for c in checks if c["verdict"] == "warn"]
    return {
        "matched": not failed,
        "failed_checks": [c["message"] for c in failed],
        "advisory_warnings": [c["message"] for c in warned],
    }


def diff_text(checks: list[dict[str, Any]]) -> tuple[str, str]:
    """Expected vs found, one line per check, for Ansible's --diff."""
    before, after = [], []
    for c in checks:
        where = f"gpu{c['gpu']}." if c["gpu"] is not None else ""
        before.append(f"{where}{c['check']}: {c['expected']}\n")
        after.append(f"{where}{c['check']}: {c['found']}\n")
    return "".join(before), "".join(after)
