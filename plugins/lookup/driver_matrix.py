# Copyright: airig engineers
# Apache-2.0 (see galaxy.yml)
"""Lookup plugin airig.rig.driver_matrix: the NVIDIA driver packages for one box."""

from __future__ import annotations

DOCUMENTATION = r"""
name: driver_matrix
author: airig engineers
version_added: "0.2.0"
short_description: The NVIDIA driver packages, key and module package for one box
description:
  - Resolves the driver set a box gets from airig's one data file (src/airig/data/drivers.yml)
    for its distribution, running kernel, driver source and branch, and refuses a combination
    that cannot work with a message saying what to change.
  - Runs on the controller and needs the C(airig) Python package there.
options:
  _terms:
    description: The distribution key, e.g. C(debian-12) or C(ubuntu-24.04).
    required: true
    type: list
    elements: str
  source:
    description: C(auto), C(distro) or C(cuda_repo).
    type: str
    required: true
  branch:
    description: The driver branch, e.g. C(580).
    type: str
    required: true
  open_modules:
    description: The open kernel modules (true) or the proprietary ones.
    type: bool
    default: true
  kernel:
    description: The running kernel release (uname -r); picks the Ubuntu kernel flavour.
    type: str
    default: ""
  installed:
    description: Names of installed packages (finds Ubuntu's HWE kernel metapackage).
    type: list
    elements: str
    default: []
  version:
    description: The exact driver version asked for, if any.
    type: str
    default: ""
  compute_capability:
    description: The GPUs' compute capability (10.0 and up, Blackwell, needs open modules, 570+).
    type: str
    default: ""
  gpus:
    description: How many GPUs the box has (decides uvm_disable_hmm).
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: Resolve the driver set
  ansible.builtin.set_fact:
    driver: "{{ lookup('airig.rig.driver_matrix', 'ubuntu-24.04', source='distro', branch='580',
                kernel=ansible_facts.kernel, installed=ansible_facts.packages.keys() | list) }}"
"""

RETURN = r"""
_raw:
  description: One dictionary per term (airig.matrix.Resolved), with packages, pre_packages,
    module_packages, nvml_library_package, components, key_file, branch_pin and notes.
  type: list
  elements: dict
"""

from typing import Any

from ansible_collections.airig.rig.plugins.plugin_utils.airig_lookup import AirigLookup

try:
    from airig import matrix as airig_matrix
except ImportError:  # pragma: no cover - AirigLookup says what is missing
    airig_matrix = None


class LookupModule(AirigLookup):
    def one(self, term: str) -> Any:
        flavour = airig_matrix.kernel_flavour(
            term, str(self.get_option("kernel")), list(self.get_option("installed"))
        )
        cc = str(self.get_option("compute_capability"))
        open_modules = bool(self.get_option("open_modules"))
        resolved = airig_matrix.resolve(
            term,
            str(self.get_option("source")),
            str(self.get_option("branch")),
            open_modules,
            flavour,
            str(self.get_option("version")),
            cc,
        ).to_dict()
        resolved["uvm_disable_hmm"] = airig_matrix.uvm_disable_hmm(
            open_modules, cc, int(self.get_option("gpus"))
        )
        return resolved
