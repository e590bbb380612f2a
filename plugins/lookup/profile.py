# Copyright: airig engineers
# Apache-2.0 (see galaxy.yml)
"""Lookup plugin airig.rig.profile: load and validate a build profile on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
name: profile
author: airig engineers
version_added: "0.1.0"
short_description: Load and validate an airig build profile
description:
  - Loads a build profile by name (built-in, C(~/.config/airig/profiles), C($AIRIG_PROFILES_PATH),
    or O(profiles_dirs)) or by path to a YAML file, validates it against the airig profile schema
    and the model catalog, and returns it as a dictionary.
  - A malformed or unknown profile fails with a message that names the file, the field, the bad
    value and what is allowed.
  - Runs on the controller and needs the C(airig) Python package there (the wheel that carries
    this collection).
options:
  _terms:
    description: Profile names or paths to profile files.
    required: true
    type: list
    elements: str
  profiles_dirs:
    description: Extra directories searched for C(NAME.yml), after the built-in ones.
    type: list
    elements: path
    default: []
"""

EXAMPLES = r"""
- name: Load the home profile
  ansible.builtin.set_fact:
    airig_profile: "{{ lookup('airig.rig.profile', 'home') }}"

- name: Load a profile from a file next to the inventory
  ansible.builtin.set_fact:
    airig_profile: "{{ lookup('airig.rig.profile', inventory_dir ~ '/my-box.yml') }}"
"""

RETURN = r"""
_raw:
  description: One validated profile per term, as in the YAML file (name, description, gpus,
    driver, engines, models, host).
  type: list
  elements: dict
"""

from pathlib import Path
from typing import Any

from ansible_collections.airig.rig.plugins.plugin_utils.airig_lookup import AirigLookup

try:
    from airig import profiles as airig_profiles
except ImportError:  # pragma: no cover - AirigLookup says what is missing
    airig_profiles = None


class LookupModule(AirigLookup):
    def one(self, term: str) -> Any:
        dirs = tuple(Path(d) for d in self.get_option("profiles_dirs"))
        return airig_profiles.load(term, dirs).raw
