"""Issue 11 items 1 and 2: one data file (src/airig/data/drivers.yml) says which driver branch
is the default and what each engine's GPU build needs; profiles, the driver role and
gpu_verify follow it, and it stays equal to what the roles install."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from airig import profiles
from airig.errors import ProfileError
from airig.verify import nvml_utils
from tests.conftest import REPO

DATA = profiles.drivers()


def role_default(role: str, name: str) -> str:
    return str(yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())[name])


def test_data_matches_what_the_roles_install() -> None:
    """The default branch is the driver role's; each engine row names the version its role pins,
    and the vLLM row's torch/CUDA is what the role's hashed requirements hold."""
    assert str(DATA["default_branch"]) == role_default("nvidia_driver", "nvidia_driver_branch")
    assert DATA["branches"][DATA["default_branch"]]["status"] == "long-term support"
    vllm = DATA["engines"]["vllm"]
    assert vllm["version"] == role_default("vllm", "vllm_version")
    lock = (REPO / f"roles/vllm/files/requirements/vllm-{vllm['version']}-py311.txt").read_text()
    cuda_runtime = re.search(r"^nvidia-cuda-runtime==(\d+\.\d+)", lock, flags=re.M)
    assert cuda_runtime and cuda_runtime.group(1) == vllm["cuda"]
    assert "torch==2.14.0" in lock and "torch 2.14.0" in vllm["why"]


@pytest.mark.parametrize("name", ["home", "business", "team", "quad-5090", "duo-pro6000"])
def test_builtin_gpu_profiles_ask_a_supported_branch(name: str) -> None:
    """Issue 11 item 1: no built-in profile asks for an end-of-life branch."""
    branch = profiles.load(name).driver_min_branch
    assert branch is not None and DATA["branches"][branch]["status"] != "end of life"


def test_profile_minimum_follows_its_engines() -> None:
    """Issue 11 item 2: a profile enabling vLLM 0.33.0 with min_branch 570 is refused, naming
    the engine, its CUDA and the branch it needs."""
    data = copy.deepcopy(profiles.load("business").raw)
    data["driver"]["min_branch"] = 570
    with pytest.raises(ProfileError) as err:
        profiles.from_data(data)
    text = str(err.value)
    assert "field driver.min_branch: bad value 570: expected 580 or more" in text
    assert "vllm 0.33.0 runs torch 2.14.0, built for CUDA 13.0" in text
    data["engines"] = ["llama_cpp"]
    data["models"] = [m for m in data["models"] if m.get("engine") != "vllm"]
    profiles.from_data(data)  # llama.cpp alone asks no more than the profile says


def test_gpu_verify_fails_a_driver_too_old_for_the_engines(
    nvml_box: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 item 2: a box on driver 575 verified against a vLLM profile fails, naming the
    driver, the branch and the profile's engines. TEST DOUBLE: the NVML double plays the
    business box with its driver set back to 575.57.08."""
    import pynvml

    box = json.loads(nvml_box("business").read_text())
    box["driver_version"] = "575.57.08"
    older = tmp_path / "business_575.json"
    older.write_text(json.dumps(box))
    monkeypatch.setenv("FAKE_NVML_CONFIG", str(older))
    utils = nvml_utils()
    checks = utils.verify(utils.probe(pynvml), profiles.load("business").raw)
    (check,) = [c for c in checks if c["check"] == "driver_branch"]
    assert check["verdict"] == "fail" and check["expected"] == ">= 580"
    assert "driver 575.57.08 is older than branch 580" in check["message"]
    assert "engines (vllm, llama_cpp)" in check["message"]


def test_data_file_is_in_the_package() -> None:
    assert profiles.DRIVERS_PATH.is_file() and profiles.DRIVERS_PATH.parent.name == "data"
