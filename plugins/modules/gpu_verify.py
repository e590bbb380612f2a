#!/usr/bin/python
# Copyright: airig engineers
# Apache-2.0 (see galaxy.yml)
"""Ansible module airig.rig.gpu_verify: NVML facts and verification against a build profile."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_verify
short_description: Verify a host's NVIDIA GPUs against an airig build profile through NVML
version_added: "0.1.0"
author: airig engineers
description:
  - Reads the driver version and, per GPU, name, UUID, serial, memory, BAR1 size, compute
    capability, PCIe link (current and maximum generation and width), persistence mode, power
    limits, ECC and MIG mode, temperature and running processes through NVML (C(pynvml)).
    A query a GPU does not support (GeForce cards answer NOT_SUPPORTED for serial, ECC and more)
    yields null.
  - Compares them with a build profile and returns one check per fact, each with C(expected),
    C(found) and a C(verdict) of C(pass), C(fail) (a required check failed), C(warn) (an advisory
    check failed) or C(skip) (the host cannot answer).
  - Fails with a message that says what to do when NVML cannot start (no driver, driver not
    loaded, driver/library version mismatch after an upgrade) or when a required check fails.
  - With a profile name, the action plugin loads and validates the profile on the controller
    (the C(airig) Python package) and sends the module the profile's data.
  - Reads only; never changes the host. Memory rule - a card sold as N GB carries N GiB of
    memory and NVML reports a little less; a GPU passes when it reports N GiB
    +/- O(memory_tolerance_pct).
requirements:
  - nvidia-ml-py (imported as pynvml) on the target host
  - the NVIDIA driver (libnvidia-ml.so.1) on the target host
options:
  profile:
    description:
      - The build profile - a name (C(home), C(team), ...) or path resolved on the controller,
        or the profile's data as a dictionary (e.g. from the C(airig.rig.profile) lookup).
    type: raw
    required: true
  memory_tolerance_pct:
    description: How far a GPU's reported memory may sit from C(memory_gib), in percent.
    type: float
    default: 5.0
  advisory:
    description:
      - Checks that only warn instead of failing. The others are required.
      - Check names are gpus_present, gpu_count, model, memory, total_vram, driver_branch,
        compute_capability, pcie_width, pcie_generation, resizable_bar, persistence_mode and
        uniform.
    type: list
    elements: str
    default: [pcie_generation, persistence_mode]
  fail_on_mismatch:
    description:
      - Fail the task when a required check fails or NVML is unusable. With V(false) the task
        succeeds and the playbook decides from RV(matched), RV(error_kind) and RV(reboot_required).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same in check mode.
  diff_mode:
    support: full
    description:
      - With C(--diff), returns C(diff) with the profile's expected values (before) against what
        was found (after). The task never changes anything, and Ansible's default callback prints
        diffs of changed tasks only, so read it from the registered result.
  facts:
    support: full
    description: Sets C(ansible_facts.airig_gpu).
notes:
  - Exit codes of the sister command C(airig verify) are 0 match, 1 mismatch, 2 no usable NVML
    or driver, 3 reboot required.
"""

EXAMPLES = r"""
- name: Verify the box is the home build
  airig.rig.gpu_verify:
    profile: home

- name: Verify, let the play decide on a reboot after a driver upgrade
  airig.rig.gpu_verify:
    profile: "{{ profile_spec }}"
    fail_on_mismatch: false
  register: gpu_verify__result

- name: Reboot when the new driver needs its kernel module
  ansible.builtin.reboot:
    reboot_timeout: 900
  when: gpu_verify__result.reboot_required

- name: A box whose risers run at PCIe Gen 4 on purpose
  airig.rig.gpu_verify:
    profile: business
    advisory: [pcie_generation, persistence_mode, pcie_width]
"""

RETURN = r"""
matched:
  description: True when no required check failed and NVML answered.
  returned: always
  type: bool
  sample: true
checks:
  description: One entry per check (per GPU where it applies).
  returned: when NVML answered
  type: list
  elements: dict
  sample:
    - {check: memory, gpu: 0, expected: "31129-34406 MiB (32 GiB +/- 5%)", found: 32607,
       verdict: pass, required: true, message: ""}
failed_checks:
  description: The messages of failed required checks; each says what to do.
  returned: always
  type: list
  elements: str
advisory_warnings:
  description: The messages of failed advisory checks (also shown as warnings).
  returned: always
  type: list
  elements: str
gpu_facts:
  description: What NVML reported (also set as C(ansible_facts.airig_gpu)).
  returned: when NVML answered
  type: dict
  contains:
    driver_version: {description: NVIDIA driver version., type: str, sample: "575.57.08"}
    cuda_driver_version: {description: CUDA version the driver supports., type: str, sample: "12.9"}
    nvml_version: {description: NVML library version., type: str}
    gpu_count: {description: GPUs NVML counts (lost ones included)., type: int}
    total_memory_mib: {description: Memory of all answering GPUs in MiB., type: int}
    gpus:
      description: Per GPU - index, name, uuid, serial, memory_total/used/free_mib, bar1_total_mib,
        compute_capability, pcie_generation_current/max, pcie_width_current/max, persistence_mode,
        power_limit_w, power_default_limit_w, power_max_limit_w, ecc_mode, mig_mode, temperature_c,
        processes, lost. Unsupported queries are null.
      type: list
      elements: dict
error_kind:
  description: Why NVML could not be used, or null. One of pynvml_missing, library_not_found,
    driver_not_loaded, version_mismatch, no_permission, unknown.
  returned: always
  type: str
reboot_required:
  description: True after a driver upgrade whose kernel module is not loaded yet
    (Driver/library version mismatch). Reboot, then verify again.
  returned: always
  type: bool
profile:
  description: Name of the profile verified against.
  returned: always
  type: str
"""

import traceback
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.airig.rig.plugins.module_utils.nvml import (
    DEFAULT_ADVISORY,
    DEFAULT_MEMORY_TOLERANCE_PCT,
    ERROR_HINTS,
    NO_DRIVER_KINDS,
    ProbeError,
    diff_text,
    facts_without_driver,
    probe,
    summarize,
    unknown_advisory,
    verify,
)

try:
    import pynvml
except ImportError:
    PYNVML_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    PYNVML_IMPORT_ERROR = None


def build_module() -> AnsibleModule:
    return AnsibleModule(
        argument_spec={
            "profile": {"type": "raw", "required": True},
            "memory_tolerance_pct": {"type": "float", "default": DEFAULT_MEMORY_TOLERANCE_PCT},
            "advisory": {"type": "list", "elements": "str", "default": list(DEFAULT_ADVISORY)},
            "fail_on_mismatch": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )


def run(module: AnsibleModule) -> dict[str, Any]:
    """Probe and verify; returns the result dict (``failed`` set when the task should fail)."""
    params = module.params
    profile = params["profile"]
    result: dict[str, Any] = {
        "changed": False,
        "matched": False,
        "failed_checks": [],
        "advisory_warnings": [],
        "error_kind": None,
        "reboot_required": False,
        "profile": profile.get("name") if isinstance(profile, dict) else str(profile),
    }
    if not isinstance(profile, dict) or not isinstance(profile.get("gpus"), dict):
        result["failed"] = True
        result["msg"] = (
            f"option profile: bad value {profile!r}: expected a profile name (resolved on the "
            "controller by the action plugin) or a profile dictionary with a 'gpus' mapping"
        )
        return result
    problem = unknown_advisory(params["advisory"], "option advisory")
    if problem:
        result["failed"] = True
        result["msg"] = problem
        return result
    if not 0 <= params["memory_tolerance_pct"] < 50:
        result["failed"] = True
        result["msg"] = (
            f"option memory_tolerance_pct: bad value {params['memory_tolerance_pct']}: "
            "expected 0 to 50"
        )
        return result

    want = int(profile["gpus"].get("count", 0))
    try:
        facts = probe(pynvml)
    except ProbeError as exc:
        if want == 0 and exc.kind in NO_DRIVER_KINDS:
            # A CPU-only profile on a box without an NVIDIA driver is what was ordered.
            facts = facts_without_driver()
        else:
            result.update(
                error_kind=exc.kind,
                reboot_required=exc.reboot_required,
                msg=str(exc),
                failed=params["fail_on_mismatch"],
            )
            return result

    checks = verify(facts, profile, params["memory_tolerance_pct"], params["advisory"])
    summary = summarize(checks)
    result.update(summary, checks=checks, gpu_facts=facts, ansible_facts={"airig_gpu": facts})
    for message in summary["advisory_warnings"]:
        module.warn(message)
    if module._diff:
        before, after = diff_text(checks)
        result["diff"] = {
            "before": before,
            "after": after,
            "before_header": f"profile {result['profile']} (expected)",
            "after_header": "this host (found by NVML)",
        }
    if summary["matched"]:
        result["msg"] = f"{facts['gpu_count']} GPU(s) match profile {result['profile']}" + (
            f"; {len(summary['advisory_warnings'])} warning(s)"
            if summary["advisory_warnings"]
            else ""
        )
    else:
        result["msg"] = f"this host does not match profile {result['profile']}: " + "; ".join(
            summary["failed_checks"]
        )
        result["failed"] = params["fail_on_mismatch"]
    return result


def main() -> None:
    module = build_module()
    if PYNVML_IMPORT_ERROR is not None:
        module.fail_json(
            msg=missing_required_lib("nvidia-ml-py (import name pynvml)"),
            exception=PYNVML_IMPORT_ERROR,
            error_kind="pynvml_missing",
            hint=ERROR_HINTS["pynvml_missing"],
            matched=False,
            reboot_required=False,
        )
    result = run(module)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
