"""The molecule scenarios (docker, systemd inside, testinfra): converge, idempotence (0 changed),
check mode, side effects (the driver upgrade) and verify, each on a clean local Debian image.

scripts/test prepares docker and the images (scripts/container-env) first. Choose scenarios
with AIRIG_MOLECULE: "all" (default: every scenario but the heavy ones), "everything" (with
the heavy ones: vllm, nvidia_driver_open, llama_cpp_cuda, fleet; airgap in its full variant),
"none", or a comma-separated list
of scenario names.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent
SCENARIOS = sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))


# Scenarios left out of "all" (the default test run) for their size; "everything" adds them.
HEAVY = {"vllm", "nvidia_driver_open", "llama_cpp_cuda", "fleet"}


def selected(name: str) -> bool:
    choice = os.environ.get("AIRIG_MOLECULE", "all").strip()
    if choice == "everything":
        return True
    if choice == "all":
        return name not in HEAVY
    return name in {c.strip() for c in choice.split(",")}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario: str, tmp_path: Path) -> None:
    if not selected(scenario):
        pytest.skip(f"AIRIG_MOLECULE={os.environ.get('AIRIG_MOLECULE')} leaves {scenario} out")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_FORCE_COLOR": "0",
        "PY_COLORS": "0",
        "NO_COLOR": "1",
    }
    if scenario == "airgap" and os.environ.get("AIRIG_MOLECULE", "all").strip() == "everything":
        # The full variant: the demo profile (llama.cpp from source, both agents) from a bundle.
        env.setdefault("AIRIG_AIRGAP_PROFILE", "container-demo")
    log = tmp_path / f"molecule-{scenario}.log"
    with log.open("w") as fh:
        run = subprocess.run(
            [str(BIN / "molecule"), "test", "-s", scenario],
            cwd=REPO,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=1800,
        )
    text = log.read_text(errors="replace")
    assert run.returncode == 0, f"molecule test -s {scenario} failed:\n{text[-6000:]}"
