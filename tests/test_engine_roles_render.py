"""The engine roles' settings as they are rendered for the reference builds (no GPU needed):
vLLM's flags for home, business and team, and the refusal of engines that do not fit, all
through the roles' own validate/config tasks run with ansible-playbook on localhost."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from airig import profiles
from tests.conftest import overcommitted, play_tasks


def run_role(tmp_path: Path, role: str, steps: list[str], extra: dict[str, Any]):
    tasks = [
        {
            "name": f"{role} {step}",
            "ansible.builtin.include_role": {"name": f"airig.rig.{role}", "tasks_from": step},
        }
        for step in steps
    ]
    return play_tasks(tmp_path, tasks, extra)


def render_vllm(tmp_path: Path, profile: dict[str, Any]) -> tuple[dict[str, str], str]:
    (tmp_path / "units").mkdir()
    out = run_role(
        tmp_path,
        "vllm",
        ["validate", "config"],
        {
            "profile_spec": profile,
            # The built-in profiles' repos carry no revision (see test_unpinned_*).
            "airig_allow_unpinned": True,
            "vllm_config_dir": str(tmp_path / "etc"),
            "vllm_unit_dir": str(tmp_path / "units"),
        },
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    env_text = (tmp_path / "etc" / "vllm.env").read_text()
    env = dict(
        line.split("=", 1) for line in env_text.splitlines() if line and not line.startswith("#")
    )
    env["args"] = (tmp_path / "etc" / "vllm.args.json").read_text()
    return env, (tmp_path / "units" / "airig-vllm.service").read_text()


def flags(env: dict[str, str]) -> dict[str, str]:
    args = json.loads(env["args"])
    out = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            nxt = args[i + 1] if i + 1 < len(args) else ""
            out[arg] = "" if nxt.startswith("--") else nxt
    return out


def home_on_vllm() -> dict[str, Any]:
    data = copy.deepcopy(profiles.load("home").raw)
    data["engines"] = ["vllm", "llama_cpp"]
    data["models"] = [
        {
            "name": "qwen3-32b",
            "quant": "AWQ",
            "engine": "vllm",
            "context": 32768,
            "concurrency": 4,
            "source": "Qwen/Qwen3-32B-AWQ",
        }
    ]
    return data


@pytest.mark.parametrize(
    ("name", "profile", "want"),
    [
        (
            "home",
            home_on_vllm(),
            {
                "--tensor-parallel-size": "2",
                "--max-model-len": "32768",
                "--max-num-seqs": "4",
                "--tool-call-parser": "hermes",
                "--served-model-name": "qwen3-32b",
            },
        ),
        (
            "business",
            None,
            {
                "--tensor-parallel-size": "8",
                "--max-model-len": "32768",
                "--max-num-seqs": "8",
                # What the planner's vLLM memory model assumes (issue 12).
                "--max-num-batched-tokens": "2048",
                "--tool-call-parser": "llama3_json",
                "--gpu-memory-utilization": "0.9",
                "--model": "/srv/airig/models/hf/llama-3.1-70b",
            },
        ),
        (
            "team",
            None,
            {
                "--tensor-parallel-size": "4",
                "--max-model-len": "131072",
                "--max-num-seqs": "8",
                "--tool-call-parser": "openai",
                "--gpu-memory-utilization": "0.9",
            },
        ),
    ],
)
def test_vllm_flags_for_the_reference_builds(
    tmp_path: Path, name: str, profile: dict[str, Any] | None, want: dict[str, str]
) -> None:
    data = profile or profiles.load(name).raw
    env, unit = render_vllm(tmp_path, data)
    got = flags(env)
    for flag, value in want.items():
        assert got[flag] == value, (flag, got)
    assert got["--host"] == "127.0.0.1" and got["--port"] == "8000"
    assert "--enable-auto-tool-choice" in got
    # issue 29 item 11: every stream ends with its usage, which the gateway counts
    assert "--enable-force-include-usage" in got
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_NO_USAGE_STATS"] == "1"
    gpus = str(data["gpus"]["count"])
    assert f"airig-gpu-wait --engine vllm --count {gpus} " in unit
    assert (
        "airig-engine-exec --engine vllm --key /srv/airig/keys/vllm.key --key-env VLLM_API_KEY "
        f"--args-file {tmp_path}/etc/vllm.args.json -- " in unit
    )
    assert "RestartPreventExitStatus=78" in unit and "/bin/sh" not in unit
    assert "--api-key" not in unit and "--api-key" not in env["args"]
    # Issue 14: stopping drains (SIGTERM to the API server alone, more time than its timeout).
    assert got["--shutdown-timeout"] == "60"
    assert "\nKillMode=mixed\n" in unit and "\nTimeoutStopSec=90\n" in unit


def test_engines_that_do_not_fit_stop_the_role_before_any_change(tmp_path: Path) -> None:
    data = overcommitted()
    for role in ("vllm", "llama_cpp", "ollama"):
        out = run_role(tmp_path, role, ["validate"], {"profile_spec": data})
        assert out.returncode != 0
        text = " ".join((out.stdout + out.stderr).split())
        assert "does not fit in vLLM's share" in text and "shrink/disable" in text, role


def test_unpinned_vllm_repo_is_refused_without_consent(tmp_path: Path) -> None:
    """Issue 10 item 7: a Hugging Face repo without `revision` downloads whatever `main` is
    today; the role refuses it unless airig_allow_unpinned (airig provision --allow-unpinned)."""
    data = profiles.load("team").raw
    out = run_role(tmp_path, "vllm", ["validate"], {"profile_spec": data})
    assert out.returncode != 0
    assert "needs the profile's `revision`" in " ".join(out.stdout.split())
    pinned = copy.deepcopy(data)
    pinned["models"][0]["revision"] = "0" * 40
    assert run_role(tmp_path, "vllm", ["validate"], {"profile_spec": pinned}).returncode == 0


@pytest.mark.parametrize(
    ("version", "outcome"),
    [
        ("v0.32.7", "ok"),  # the default: its .tar.zst sum is pinned in the role
        ("v0.34.1", "no sha256 is pinned for v0.34.1/ollama-linux-amd64.tar.zst"),
        ("v0.14.0", "no sha256 is pinned for v0.14.0/ollama-linux-amd64.tar.zst"),
        ("v0.13.0", "no sha256 is pinned for v0.13.0/ollama-linux-amd64.tgz"),
        ("v0.32.7/../../x", "ollama_version a release tag such as v0.32.7"),
    ],
)
def test_ollama_archive_follows_the_version(tmp_path: Path, version: str, outcome: str) -> None:
    """Issue 11 item 6: since v0.14.0 Linux releases ship only .tar.zst; the archive name is
    derived from the version and the default release's sha256 is pinned in the role."""
    data = profiles.load("home").raw
    out = run_role(
        tmp_path, "ollama", ["validate"], {"profile_spec": data, "ollama_version": version}
    )
    text = " ".join((out.stdout + out.stderr).split())
    if outcome == "ok":
        assert out.returncode == 0, text[-2000:]
    else:
        assert out.returncode != 0 and outcome in text, text[-2000:]


@pytest.mark.parametrize(
    ("role", "var"), [("vllm", "vllm_pip_index_url"), ("agent", "agent_pip_index_url")]
)
@pytest.mark.parametrize(
    "url", ["http://mirror/simple --trusted-host evil", "file:///srv", "--pre"]
)
def test_pip_index_url_is_one_http_url(tmp_path: Path, role: str, var: str, url: str) -> None:
    """The index URL reaches pip's command line, which is split on spaces: one http(s) URL."""
    data = profiles.load("business").raw
    out = run_role(tmp_path, role, ["validate"], {"profile_spec": data, var: url})
    assert out.returncode != 0
    assert f"{var} must be empty or an http(s) URL without spaces" in " ".join(out.stdout.split())
