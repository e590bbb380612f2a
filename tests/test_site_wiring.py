"""Issue 10 item 10: the profile's driver.open_kernel_modules, gpus.compute_capability and
gpus.power_limit_w reach the nvidia_driver role from site.yml. Shown through the role's own
input checks, which stop a --check run of site.yml (tag driver) on this machine before anything
changes: with the values wired, each bad value is refused by name."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from airig import profiles
from tests.conftest import REPO

BIN = Path(sys.executable).parent


def site_check(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / f"{data['name']}.yml"
    path.write_text(yaml.safe_dump(data))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "t")}
    out = subprocess.run(
        [str(BIN / "ansible-playbook"), str(REPO / "playbooks" / "site.yml"), "--check",
         "--tags", "driver", "-i", "localhost,", "-c", "local",
         "-e", json.dumps({"profile_name": str(path), "airig_become": False,
                           "ansible_python_interpreter": sys.executable})],
        capture_output=True, text=True, env=env, timeout=600, check=False, cwd=REPO,
    )  # fmt: skip
    return " ".join((out.stdout + out.stderr).split())


def home(**gpus: Any) -> dict[str, Any]:
    data = copy.deepcopy(profiles.load("home").raw)
    data["name"] = "wired"
    data["gpus"].update(gpus)
    return data


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (
            {"driver": {"min_branch": 570, "open_kernel_modules": False}},
            "compute capability 12.0 (Blackwell): NVIDIA supports them only with the open kernel",
        ),
        (
            {"gpus": {"power_limit_w": 2000}},
            "nvidia_driver_power_limit_w null or 50-1500 W (is 2000)",
        ),
    ],
)
def test_profile_driver_settings_reach_the_driver_role(
    tmp_path: Path, change: dict[str, Any], refusal: str
) -> None:
    """Issue 10 item 10: a profile asking for closed modules on Blackwell, or an impossible
    power limit, is refused by the driver role (before: the role never saw either value)."""
    data = home(**change.get("gpus", {}))
    data["driver"].update(change.get("driver", {}))
    text = site_check(tmp_path, data)
    assert refusal in text, text[-3000:]
