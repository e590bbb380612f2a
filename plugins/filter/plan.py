# Copyright: airig engineers
# Apache-2.0 (see galaxy.yml)
"""Filter plugins that turn a profile and a model into the planner's answer."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

try:
    from airig import check as _check
    from airig import planner, profiles
    from airig.errors import AirigError
    from airig.planner.engines import engine_plan as _engine_plan
except ImportError as exc:  # pragma: no cover - exercised only without the package
    AIRIG_IMPORT_ERROR: ImportError | None = exc
else:
    AIRIG_IMPORT_ERROR = None


def _need_airig() -> None:
    if AIRIG_IMPORT_ERROR is not None:
        raise AnsibleFilterError("the airig Python package is missing on the controller")


def _profile(profile: Any) -> Any:
    if isinstance(profile, dict):
        return profiles.from_data(profile)
    return profiles.load(str(profile))


def engine_plan(profile: Any) -> dict[str, Any]:
    """Flags per engine for a profile (a name, a path or the profile's data), or an error that
    says which engine to shrink or disable when the enabled engines do not fit together."""
    if AIRIG_IMPORT_ERROR is not None:
        raise AnsibleFilterError("the airig Python package is missing on the controller")
    try:
        return _engine_plan(_profile(profile))
    except AirigError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def model_fit(
    profile: Any,
    model: str,
    quant: str,
    context: int = 8192,
    concurrency: int = 1,
    engine: str | None = None,
    kv_dtype: str = "fp16",
) -> dict[str, Any]:
    """The plan row (weights, KV cache, overhead, fits, max context...) for one model."""
    if AIRIG_IMPORT_ERROR is not None:
        raise AnsibleFilterError("the airig Python package is missing on the controller")
    try:
        prof = _profile(profile)
        catalog = planner.Catalog.default()
        request = planner.PlanRequest(
            models=(catalog.model(model),),
            quants=(quant,),
            profiles=(prof,),
            context=int(context),
            concurrency=int(concurrency),
            engine=engine,
            kv_dtype=kv_dtype,
        )
        return planner.plan(request, catalog)[0].to_dict()
    except AirigError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def nvml_by_unit(gpu_facts: dict[str, Any], cgroups: dict[Any, str]) -> dict[str, float]:
    """GPU memory in use per systemd service: gpu_verify's facts (per-process memory) and each
    process's /proc/PID/cgroup text (pid -> text), read on the box."""
    if AIRIG_IMPORT_ERROR is not None:
        raise AnsibleFilterError("the airig Python package is missing on the controller")
    texts = {int(pid): str(text) for pid, text in cgroups.items()}

    def owner(pid: int) -> str | None:
        return _check.unit_of(pid, lambda _path: texts[pid]) if pid in texts else None

    return _check.nvml_by_unit(gpu_facts or {}, owner)


def plan_vs_actual(
    plan: dict[str, Any], logs: dict[str, str], nvml: dict[str, float] | None = None
) -> dict[str, Any]:
    """The engine plan's served models against their units' start-up lines (unit -> text) and,
    on a GPU box, what NVML says each unit's processes use (unit -> bytes)."""
    if AIRIG_IMPORT_ERROR is not None:
        raise AnsibleFilterError("the airig Python package is missing on the controller")
    try:
        results = _check.check(plan, {str(k): str(v) for k, v in logs.items()}, nvml or None)
    except AirigError as exc:
        raise AnsibleFilterError(str(exc)) from exc
    return {
        "results": results,
        "calibration": _check.calibration(results),
        "table": _check.table(results),
        "failed": _check.failed(results),
    }


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "model_fit": model_fit,
            "engine_plan": engine_plan,
            "plan_vs_actual": plan_vs_actual,
            "nvml_by_unit": nvml_by_unit,
            "bundle_vars": bundle_vars,
            "bundle_target_problem": bundle_target_problem,
            "gpu_flavour": gpu_flavour,
        }


def bundle_vars(manifest: Any, base_url: str, profile_spec: Any) -> dict[str, Any]:
    """Role variables pointing a run's downloads at a bundle served on the box's loopback."""
    _need_airig()
    from airig import bundle

    try:
        return bundle.provision_vars(manifest, base_url, profile_spec)
    except AirigError as exc:
        raise AnsibleFilterError(str(exc)) from None


def bundle_target_problem(manifest: Any, distro: str, version: str, arch: str) -> str:
    """Why a bundle does not fit this box, or '' when it does."""
    _need_airig()
    from airig import bundle

    return bundle.target_problem(manifest, str(distro), str(version), str(arch)) or ""


def gpu_flavour(gpu_model: Any) -> str:
    """A GPU model as airig platform names its ResourceFlavor and node label value."""
    _need_airig()
    from airig import platform

    return platform.slug(str(gpu_model or ""))
