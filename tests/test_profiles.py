"""Build profiles: the built-ins load; every malformed profile is refused with file, field,
bad value and what is allowed (exit code 2 from the CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from airig import profiles
from airig.cli import app
from airig.errors import ProfileError

BUILTINS = {
    "home": (2, 32, "NVIDIA GeForce RTX 5090"),
    "business": (8, 32, "NVIDIA GeForce RTX 5090"),
    "team": (4, 96, "NVIDIA RTX PRO 6000 Blackwell Workstation Edition"),
    "quad-5090": (4, 32, "NVIDIA GeForce RTX 5090"),
    "duo-pro6000": (2, 96, "NVIDIA RTX PRO 6000 Blackwell Workstation Edition"),
    "cpu": (0, 0, None),
}
VALID = yaml.safe_load((profiles.BUILTIN_DIR / "home.yml").read_text())


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_profiles(name: str) -> None:
    prof = profiles.load(name)
    count, gib, model = BUILTINS[name]
    assert (prof.gpus.count, prof.gpus.memory_gib, prof.gpus.model) == (count, gib, model)
    if count:
        assert prof.driver_min_branch is not None and prof.driver_min_branch >= 570
        assert prof.open_kernel_modules and prof.gpus.compute_capability == "12.0"


def test_reference_builds_total_vram() -> None:
    assert {n: profiles.load(n).total_vram_gib for n in profiles.REFERENCE_BUILDS} == {
        "home": 64,
        "business": 256,
        "team": 384,
    }


def write(tmp_path: Path, data: object, name: str = "mybox", raw: str | None = None) -> Path:
    path = tmp_path / f"{name}.yml"
    path.write_text(raw if raw is not None else yaml.safe_dump(data))
    return path


def mutated(**changes: object) -> dict:
    data = yaml.safe_load(yaml.safe_dump(VALID))
    data["name"] = "mybox"
    for dotted, value in changes.items():
        keys = dotted.split("__")
        target = data
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if value is _DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
    return data


_DELETE = object()

BAD = [
    # (changes, field named, bad value shown, what is allowed)
    ({"gpus__cout": 2}, "gpus.cout", '"cout"', "did you mean 'count'"),
    ({"gpus__count": -1}, "gpus.count", "-1", ">= 0"),
    ({"gpus__count": "two"}, "gpus.count", '"two"', "type integer"),
    ({"gpus__memory_gib": 0}, "gpus.memory_gib", "0", "> 0"),
    ({"gpus__memory_gib": _DELETE}, "gpus.memory_gib", "(missing)", "required field"),
    ({"gpus__compute_capability": "sm120"}, "gpus.compute_capability", '"sm120"', "matching"),
    ({"gpus__pcie__width": 12}, "gpus.pcie.width", "12", "one of 1, 16, 2, 4, 8"),
    ({"engines": ["llama_cpp", "olama"]}, "engines[1]", '"olama"', "did you mean 'ollama'"),
    ({"driver__min_branch": 300}, "driver.min_branch", "300", ">= 390"),
    ({"description": _DELETE}, "description", "(missing)", "required field"),
    ({"name": "My Box"}, "name", '"My Box"', "lower-case"),
]


@pytest.mark.parametrize(
    ("changes", "field", "value", "allowed"), BAD, ids=[b[1] + "-" + b[2] for b in BAD]
)
def test_schema_errors_name_file_field_value_and_allowed(
    tmp_path: Path, changes: dict, field: str, value: str, allowed: str
) -> None:
    path = write(tmp_path, mutated(**changes))
    with pytest.raises(ProfileError) as info:
        profiles.load(str(path))
    msg = str(info.value)
    assert str(path) in msg
    assert f"field {field}: bad value {value}" in msg
    assert allowed in msg


@pytest.mark.parametrize(
    ("changes", "field", "allowed"),
    [
        ({"models__0__name": "qwen3-33b"}, "models[0].name", "did you mean 'qwen3-32b'"),
        ({"models__0__quant": "Q4KM"}, "models[0].quant", "did you mean 'Q4_K_M'"),
        ({"models__0__engine": "vllm"}, "models[0].engine", "Q4_K_M runs on llama_cpp, ollama"),
        (
            {"models__0__quant": "FP16", "models__0__engine": "vllm"},
            "models[0].engine",
            "not in this profile's engines",
        ),
        ({"models__0__context": 10_000_000}, "models[0].context", "at most 131072"),
    ],
)
def test_cross_field_errors(tmp_path: Path, changes: dict, field: str, allowed: str) -> None:
    path = write(tmp_path, mutated(**changes))
    with pytest.raises(ProfileError) as info:
        profiles.load(str(path))
    assert str(path) in str(info.value)
    assert f"field {field}" in str(info.value)
    assert allowed in str(info.value)


def test_broken_yaml_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, None, raw="name: mybox\ngpus: [count: 2\n")
    with pytest.raises(ProfileError, match=r"not valid YAML at line \d+, column \d+"):
        profiles.load(str(path))


def test_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, ["just", "a", "list"])
    with pytest.raises(ProfileError, match="must be a YAML mapping"):
        profiles.load(str(path))


def test_name_must_match_file(tmp_path: Path) -> None:
    data = mutated()
    path = write(tmp_path, data, name="other")
    with pytest.raises(ProfileError, match="must match its file name"):
        profiles.load(str(path))


def test_cpu_profile_cannot_enable_vllm(tmp_path: Path) -> None:
    data = yaml.safe_load((profiles.BUILTIN_DIR / "cpu.yml").read_text())
    data["name"] = "mybox"
    data["engines"] = ["llama_cpp", "vllm"]
    with pytest.raises(ProfileError, match="vLLM needs a GPU"):
        profiles.load(str(write(tmp_path, data)))


def test_unknown_profile_suggests() -> None:
    with pytest.raises(ProfileError, match=r"unknown profile 'hoem' \(did you mean 'home'\?\)"):
        profiles.load("hoem")


def test_user_profiles_from_dir_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    write(first, mutated())
    assert profiles.load("mybox", (first,)).source == first / "mybox.yml"
    monkeypatch.setenv(profiles.ENV_PATH, str(second))
    override = mutated(description="mine")
    write(second, override)
    # explicit directories come last and win over the environment
    assert profiles.load("mybox", (first,)).description != "mine"
    assert profiles.load("mybox").description == "mine"


def test_cli_profiles_list_and_show(runner: CliRunner) -> None:
    listed = runner.invoke(app, ["profiles", "--json"])
    assert listed.exit_code == 0, listed.output
    for name in BUILTINS:
        assert f'"{name}"' in listed.output
    shown = runner.invoke(app, ["profiles", "show", "team"])
    assert shown.exit_code == 0
    assert "RTX PRO 6000 Blackwell Max-Q Workstation Edition" in shown.output
    table = runner.invoke(app, ["profiles"], env={"COLUMNS": "300"})
    assert table.exit_code == 0 and "2 x NVIDIA GeForce RTX 5090" in table.output


def test_cli_malformed_profile_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    write(tmp_path, mutated(gpus__count=-3))
    for args in (
        ["profiles", "--profiles-dir", str(tmp_path)],
        ["profiles", "show", "mybox", "--profiles-dir", str(tmp_path)],
        ["plan", "-p", "mybox", "--profiles-dir", str(tmp_path)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "field gpus.count: bad value -3: expected a number >= 0" in result.output


def test_cli_unknown_profile_exits_2(runner: CliRunner) -> None:
    result = runner.invoke(app, ["profiles", "show", "nope"])
    assert result.exit_code == 2
    assert "known profiles:" in result.output


def test_every_schema_field_is_documented() -> None:
    def walk(node: dict, where: str) -> list[str]:
        missing = []
        for name, sub in node.get("properties", {}).items():
            if "description" not in sub:
                missing.append(f"{where}{name}")
            missing += walk(sub, f"{where}{name}.")
        if isinstance(node.get("items"), dict):
            missing += walk(node["items"], f"{where}[].")
        return missing

    assert walk(profiles.schema(), "") == []


def test_inline_profile_data_is_validated_like_a_file() -> None:
    data = mutated(gpus__count=-1)
    with pytest.raises(ProfileError, match=r"\(inline profile\): invalid profile"):
        profiles.from_data(data)
    assert profiles.from_data(mutated()).name == "mybox"


def test_profiles_show_prints_the_profiles_own_text_unwrapped(runner: CliRunner) -> None:
    """Issue 30 item 5: `airig profiles show home > my.yml` wrote YAML wrapped at 80 columns."""
    result = runner.invoke(app, ["profiles", "show", "home"], env={"COLUMNS": "40"})
    assert result.exit_code == 0, result.output
    home = profiles.load("home")
    assert yaml.safe_load(result.output) == home.raw
    assert home.source is not None
    assert result.output.endswith(home.source.read_text(encoding="utf-8"))


def test_profiles_new_writes_a_valid_copy(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["profiles", "new", "lab", "--from", "home"])
    assert result.exit_code == 0, result.output
    copy = profiles.USER_DIR / "lab.yml"
    lab = profiles.load("lab")
    assert lab.source == copy and lab.name == "lab"
    assert {k: v for k, v in lab.raw.items() if k != "name"} == {
        k: v for k, v in profiles.load("home").raw.items() if k != "name"
    }
    again = runner.invoke(app, ["profiles", "new", "lab", "--from", "home"])
    assert again.exit_code == 2 and "exists" in again.output
    bad = runner.invoke(app, ["profiles", "new", "../etc/x", "--from", "home"])
    assert bad.exit_code == 2 and "profile name" in bad.output
    assert not (tmp_path / "etc").exists()
