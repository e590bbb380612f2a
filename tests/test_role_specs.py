"""Every role documents every option in meta/argument_specs.yml with defaults that equal
defaults/main.yml (STYLE.md: validate inputs first)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

ROLES = sorted(p for p in (REPO / "roles").iterdir() if (p / "tasks" / "main.yml").exists())


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_argument_spec_defaults_match_defaults_file(role: Path) -> None:
    spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    defaults_file = role / "defaults" / "main.yml"
    defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else {}
    assert set(options) == set(defaults or {}), "options and defaults name different variables"
    for name, option in options.items():
        assert name.startswith(f"{role.name}_"), f"{name} lacks the role prefix"
        assert option.get("description"), f"{name} is undocumented"
        assert option.get("default") == defaults[name], name
