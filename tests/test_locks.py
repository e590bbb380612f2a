"""Issue 10 item 7: the dependency locks the roles install from are complete and match the
versions the roles pin: every pip requirement pinned with == and sha256 hashes (pip
--require-hashes refuses anything else), every npm package with a sha512 integrity."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

PIP_LOCKS = sorted(REPO.glob("roles/*/files/requirements/*.txt"))


def requirements(path: Path) -> dict[str, list[str]]:
    """name -> hashes, from a pip-compile --generate-hashes file."""
    out: dict[str, list[str]] = {}
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        spec = line.split()[0]
        assert "==" in spec, f"{path.name}: {spec} is not pinned with =="
        out[spec.split("==")[0].lower()] = re.findall(r"--hash=sha256:([0-9a-f]{64})", line)
    return out


def role_default(role: str, name: str) -> str:
    return str(yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())[name])


@pytest.mark.parametrize("path", PIP_LOCKS, ids=lambda p: p.name)
def test_every_pip_requirement_is_pinned_and_hashed(path: Path) -> None:
    reqs = requirements(path)
    assert reqs and all(reqs.values()), [n for n, h in reqs.items() if not h]
    assert "not pinned" not in path.read_text()


def test_the_locks_hold_the_versions_the_roles_install() -> None:
    release = role_default("agent", "agent_hermes_release")
    agent_vars = yaml.safe_load((REPO / "roles/agent/vars/main.yml").read_text())
    pinned = agent_vars["agent__hermes_releases"][release]
    assert re.fullmatch(r"[0-9a-f]{64}", pinned["sha256"])
    lock = REPO / f"roles/agent/files/requirements/{pinned['deps']}-py311.txt"
    # The release's core requirements, pinned as its pyproject pins them (0.19's list).
    for pin in ("openai==2.24.0", "pydantic==2.13.4", "rich==14.3.3", "ruamel-yaml==0.18.17"):
        assert f"{pin} " in re.sub(r"\\\n\s*", " ", lock.read_text()), pin
    vllm = role_default("vllm", "vllm_version")
    lock = REPO / f"roles/vllm/files/requirements/vllm-{vllm}-py311.txt"
    reqs = requirements(lock)
    assert f"vllm=={vllm} " in re.sub(r"\\\n\s*", " ", lock.read_text()) and "torch" in reqs


def test_openclaw_lockfile_pins_every_package() -> None:
    version = role_default("agent", "agent_openclaw_version")
    folder = REPO / "roles" / "agent" / "files" / f"openclaw-{version}"
    packages = json.loads((folder / "package-lock.json").read_text())["packages"]
    assert packages[""]["dependencies"] == {"openclaw": version}
    assert packages["node_modules/openclaw"]["version"] == version
    unpinned = [
        name
        for name, entry in packages.items()
        if name and not entry.get("inBundle") and not entry.get("link")
        if not str(entry.get("integrity", "")).startswith("sha512-")
    ]
    assert not unpinned, unpinned
    # npm 12 trusts a pinned allowScripts entry only when the lock records where the package
    # came from (the resolved URL); a lock made with omit-lockfile-registry-resolved blocks them.
    for name in ("node_modules/openclaw", "node_modules/koffi"):
        assert packages[name]["resolved"].startswith("https://registry.npmjs.org/"), name
