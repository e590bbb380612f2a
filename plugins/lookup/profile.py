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

from ansible.errors import AnsibleError, AnsibleLookupError
from ansible.plugins.lookup import LookupBase

try:
    from airig import profiles as airig_profiles
    from airig.errors import AirigError
except ImportError as exc:  # pragma: no cover - exercised only without the package
    AIRIG_IMPORT_ERROR: ImportError | None = exc
else:
    AIRIG_IMPORT_ERROR = None


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: Any = None, **kwargs: Any) -> list[Any]:
        if AIRIG_IMPORT_ERROR is not None:
            raise AnsibleError(
                "the airig Python package is missing on the controller: install it with "
                "'pip install airig' (it carries this collection)"
            ) from AIRIG_IMPORT_ERROR
        self.set_options(var_options=variables, direct=kwargs)
        dirs = tuple(Path(d) for d in self.get_option("profiles_dirs"))
        result = []
        for term in terms:
            try:
                result.append(airig_profiles.load(str(term), dirs).raw)
            except AirigError as exc:
                raise AnsibleLookupError(str(exc)) from exc
        return result
