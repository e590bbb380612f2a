"""Issue 10 item 11: bad input never gives a traceback. Each case exits 2 with one sentence that
says what to fix, and nothing runs (the CLI is driven in-process through Typer's runner)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from airig import profiles
from airig.cli import app
from tests.conftest import REPO

PLATFORM_HOSTS = str(REPO / "inventories" / "platform" / "hosts.yml")

BILLION_LAUGHS = "".join(
    f"{a}: &{a} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
    for p, a in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


def write(tmp_path: Path, name: str, data: bytes | str) -> str:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


def valid_profile_text(**changes: object) -> str:
    data = yaml.safe_load((profiles.BUILTIN_DIR / "home.yml").read_text())
    data["name"] = "mybox"
    data.update(changes)
    return yaml.safe_dump(data)


def bad_engine_profile() -> str:
    return valid_profile_text(engines=["nope"])


def markup_profile() -> str:
    return valid_profile_text(models=[{"name": "[/x]", "quant": "Q4_K_M"}])


CASES = {
    "non-UTF-8 profile": (
        lambda t: ["profiles", "show", write(t, "mybox.yml", b"name: \xff\xfe\n")],
        "not UTF-8 text",
    ),
    "non-UTF-8 models file": (
        lambda t: ["plan", "-p", "home", "--models", write(t, "m.yml", b"models: [\xff]\n")],
        "not UTF-8 text",
    ),
    "self-referential alias": (
        lambda t: ["profiles", "show", write(t, "mybox.yml", "a: &x [*x]\n")],
        "refers to a node that contains it",
    ),
    "billion laughs": (
        lambda t: ["profiles", "show", write(t, "mybox.yml", BILLION_LAUGHS)],
        "alias bomb",
    ),
    "duplicate key": (
        lambda t: ["profiles", "show", write(t, "mybox.yml", "name: a\nname: b\n")],
        "duplicate key 'name' at line 2 (first at line 1)",
    ),
    "name over 255 characters": (
        lambda t: ["profiles", "show", "x" * 300],
        "unknown profile",
    ),
    "path over 255 characters": (
        lambda t: ["profiles", "show", str(t / ("x" * 300)) + ".yml"],
        "profile",
    ),
    "missing path": (
        lambda t: ["provision", "-p", str(t / "nope.yml"), "--check"],
        "nope.yml does not exist",
    ),
    "invalid profile file given to provision by path": (
        lambda t: ["provision", "-p", write(t, "mybox.yml", bad_engine_profile()), "--check"],
        "field engines[0]: bad value",
    ),
    "plot to a directory": (
        lambda t: ["plan", "-p", "home", "--plot", str(t)],
        "is a directory",
    ),
    "plot with an unknown extension": (
        lambda t: ["plan", "-p", "home", "--plot", str(t / "plan.bogus")],
        "expected a file name ending in .png, .svg, .pdf",
    ),
    **{
        f"tolerance {value}": (
            lambda t, v=value: ["verify", "-p", "home", "--memory-tolerance-pct", v],
            f"--memory-tolerance-pct: bad value {value}",
        )
        for value in ("nan", "inf", "-5")
    },
    "rich markup in a profile value": (
        lambda t: ["profiles", "show", write(t, "mybox.yml", markup_profile())],
        "unknown model '[/x]'",
    ),
    "rich markup in a profile name": (lambda t: ["profiles", "show", "[/x]"], "[/x]"),
    "missing org file": (
        lambda t: ["platform", "--org", str(t / "org.yml"), "-i", str(t / "hosts.yml")],
        "cannot read: No such file",
    ),
    "org file alias bomb": (
        lambda t: ["platform", "--org", write(t, "org.yml", BILLION_LAUGHS), "-i", "x"],
        "alias bomb",
    ),
    "org file that is a list": (
        lambda t: ["platform", "--org", write(t, "org.yml", "- a\n"), "-i", PLATFORM_HOSTS],
        "expected a mapping",
    ),
    "across more boxes than planned for": (
        lambda t: ["plan", "-p", "team", "-m", "llama-3.1-8b", "--across-boxes", "65"],
        "--across-boxes: bad value 65",
    ),
}
# `airig provision -p cpu --check OPTION VALUE`: (option, value, what the error says).
PROVISION_OPTIONS = {
    "tags that do not exist": ("--tags", "bogus", "--tags: unknown tag 'bogus'"),
    "skip-tags that do not exist": ("--skip-tags", "enignes", "did you mean 'engines'"),
    "host with a leading dash": ("--host", "-Jevil@jump", "--host: bad value '-Jevil@jump'"),
    "host user with a leading dash": ("--host", "-oProxyCommand=x@box", "--host: bad value"),
    "extra var with a bad name": ("-e", "a b=1", "--extra-var: bad value 'a b=1'"),
}
# Issue 30 item 6: a binary or gzipped file where text or JSON is read gave a traceback.
GZIP = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\x48\xcd\xc9\xc9\x07\x00"
BINARY_FILES = {
    "check --log gzipped": (
        lambda t: ["check", "--summary", write(t, "s.json", "{}"), "--log",
                   "airig-vllm.service=" + write(t, "vllm.log.gz", GZIP)],
        "is gzipped: give the file unpacked",
    ),
    "check --log binary": (
        lambda t: ["check", "--summary", write(t, "s.json", "{}"), "--log",
                   "airig-vllm.service=" + write(t, "vllm.log", b"\xff\xd8\xff\xe0 jpeg")],
        "is not a UTF-8 text file",
    ),
    "check --summary gzipped": (
        lambda t: ["check", "--summary", write(t, "summary.json.gz", GZIP)],
        "--summary: ",
    ),
    "plan --calibration binary": (
        lambda t: ["plan", "-p", "home", "--calibration", write(t, "c.json", b"\x00\x01\x02")],
        "is a binary file",
    ),
}  # fmt: skip
CASES.update(BINARY_FILES)
for _case, (_option, _value, _message) in PROVISION_OPTIONS.items():
    CASES[_case] = (
        lambda t, o=_option, v=_value: ["provision", "-p", "cpu", "--check", o, v],
        _message,
    )


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_a_sentence(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10 item 11 (one case per parameter): exit 2, the fix in words, no traceback."""
    monkeypatch.setenv("AIRIG_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("COLUMNS", "200")
    args, message = CASES[case]
    result = CliRunner().invoke(app, args(tmp_path))
    text = " ".join(result.output.split())
    assert result.exit_code == 2, (case, result.exit_code, text, result.exception)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert message in text, (case, text)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "args", [["burn", "--json", "--seconds", "1"], ["plan", "--json", "-m", "no-such-model"]]
)
def test_json_commands_answer_json_when_they_refuse(args: list[str]) -> None:
    """Issue 30 item 6: `burn --json` printed plain text. An error is a JSON object too."""
    import json

    result = CliRunner().invoke(app, args)
    if args[0] == "burn" and result.exit_code != 2:
        pytest.skip("this machine has an NVIDIA driver: burn would run")
    assert result.exit_code == 2, result.output
    answer = json.loads(result.stdout)
    assert answer["exit_code"] == 2 and answer["error"]


def test_bundle_and_platform_refusals_are_json_with_json(tmp_path: Path) -> None:
    import json

    platform = ["platform", "--org", str(tmp_path / "none.yml"), "-i", str(tmp_path), "--json"]
    for args in (["bundle", "--dry-run", "--json"], platform):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        answer = json.loads(result.stdout)
        assert answer["exit_code"] == 2 and answer["error"], args
