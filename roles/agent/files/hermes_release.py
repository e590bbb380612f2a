"""airig's helper for a Hermes Agent release tree, run by the agent role with the Hermes venv's
python (root). Upstream releases are calendar tags (v2026.8.16), no longer PyPI packages, and
upstream blocks building wheels from the tree, so airig installs the tree as it is:

  requires TREE             JSON: the tree's version, requires-python, core requirements
  install TREE              make the venv import TREE (a .pth file and the dist-info pip would
                            write, so importlib.metadata knows hermes-agent); prints changed/ok
  schema TREE               import the release (as Hermes would); JSON: version, config schema
  check-config TREE         a config.yaml on stdin, checked against this release's own schema:
                            its DEFAULT_CONFIG keys, its _config_version, its validator

Exit 1 with one line per problem on stderr when something does not fit.
"""

from __future__ import annotations

import json
import os
import re
import sys
import sysconfig
import tempfile
import tomllib
from pathlib import Path

PTH = "airig-hermes-agent.pth"


def project(tree: Path) -> dict:
    return tomllib.loads((tree / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def python_fits(spec: str, have: tuple[int, ...]) -> bool:
    """Whether this python satisfies a requires-python such as ">=3.11,<3.14" (the clauses
    pyproject files use; an unknown one does not fit, so the role refuses, naming it)."""
    ops = {
        ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        "<": lambda a, b: a < b,
        "==": lambda a, b: a[: len(b)] == b,
        "!=": lambda a, b: a[: len(b)] != b,
    }
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        found = re.fullmatch(r"(>=|<=|>|<|==|!=)\s*([0-9]+(?:\.[0-9]+)*)", clause)
        if not found:
            return False
        want = tuple(int(n) for n in found[2].split("."))
        if not ops[found[1]](have[: len(want)], want):
            return False
    return True


def requires(tree: Path) -> dict:
    meta = project(tree)
    spec = meta.get("requires-python", "")
    return {
        "version": meta["version"],
        "requires_python": spec,
        "python_fits": python_fits(spec, tuple(sys.version_info[:3])),
        "dependencies": meta.get("dependencies", []),
    }


def write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def install(tree: Path) -> bool:
    """What `pip install` would leave for the tree, without building a wheel: a path entry and
    the distribution's metadata. Another release's dist-info is removed."""
    meta = project(tree)
    version = meta["version"]
    if not re.fullmatch(r"[0-9A-Za-z.+!-]+", version):
        raise SystemExit(f"hermes_release: {tree}/pyproject.toml has an odd version {version!r}")
    site = Path(sysconfig.get_paths()["purelib"])
    changed = False
    dist = site / f"hermes_agent-{version}.dist-info"
    for old in site.glob("hermes_agent-*.dist-info"):
        if old != dist or (old / "INSTALLER").read_text(encoding="utf-8") != "airig\n":
            uninstall(site, old)
            changed = True
    changed |= write_if_changed(site / PTH, f"{tree}\n")
    dist.mkdir(exist_ok=True)
    files = {
        "METADATA": f"Metadata-Version: 2.1\nName: hermes-agent\nVersion: {version}\n"
        f"Summary: {meta.get('description', '')}\n",
        "INSTALLER": "airig\n",
        "RECORD": f"{PTH},,\nhermes_agent-{version}.dist-info/METADATA,,\n"
        f"hermes_agent-{version}.dist-info/INSTALLER,,\n"
        f"hermes_agent-{version}.dist-info/RECORD,,\n",
    }
    for name, text in files.items():
        changed |= write_if_changed(dist / name, text)
    # Hermes reads its install method from a stamp next to its code: no self-update paths.
    changed |= write_if_changed(tree / ".install_method", "airig\n")
    return changed


def uninstall(site: Path, dist: Path) -> None:
    """Remove an installed hermes-agent as pip would, from its RECORD: another release, or the
    PyPI wheel airig installed before releases came from archives (its code would shadow the
    tree). Only files inside this venv are touched."""
    venv = Path(sys.prefix).resolve()
    record = dist / "RECORD"
    lines = record.read_text(encoding="utf-8").splitlines() if record.exists() else []
    tops = set()
    for line in lines:
        name = line.rsplit(",", 2)[0]
        path = (site / name).resolve()
        if name and path.is_relative_to(venv) and (path.is_file() or path.is_symlink()):
            path.unlink()
            tops.add(site / Path(name).parts[0])
    for top in tops:  # its packages' directories, now without files
        if top.is_dir() and not any(p.is_file() for p in top.rglob("*")):
            for sub in sorted(top.rglob("*"), reverse=True):
                sub.rmdir()
            top.rmdir()
    if dist.exists():
        for item in dist.iterdir():
            item.unlink()
        dist.rmdir()


def load_release(tree: Path):  # type: ignore[no-untyped-def]
    """Import the release's config module and entry points in a throwaway HERMES_HOME (importing
    Hermes creates logs there), so a missing dependency shows here, not at the first prompt."""
    sys.path.insert(0, str(tree))
    with tempfile.TemporaryDirectory(prefix="airig-hermes-") as home:
        os.environ["HERMES_HOME"] = home
        os.environ["HOME"] = home
        import hermes_cli.config as config
        import hermes_cli.main  # noqa: F401
        import run_agent  # noqa: F401
    return config


def check_config(config, wanted: dict) -> list[str]:  # type: ignore[no-untyped-def]
    defaults = config.DEFAULT_CONFIG
    problems = []
    for key, value in wanted.items():
        if key not in defaults:
            problems.append(f"{key}: not in this release's DEFAULT_CONFIG")
        elif isinstance(defaults[key], dict) and isinstance(value, dict):
            problems += [
                f"{key}.{sub}: not in this release's DEFAULT_CONFIG"
                for sub in value
                if sub not in defaults[key]
            ]
        # `model` defaults to a string and takes a mapping: the validator below checks it.
    schema, ours = defaults.get("_config_version"), wanted.get("_config_version")
    if ours != schema:
        problems.append(f"_config_version: {ours!r}, the release's schema is {schema!r}")
    problems += [
        f"{issue.severity}: {issue.message}" for issue in config.validate_config_structure(wanted)
    ]
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in {"requires", "install", "schema", "check-config"}:
        print(__doc__, file=sys.stderr)
        return 2
    tree = Path(argv[2]).resolve()
    if argv[1] == "requires":
        print(json.dumps(requires(tree)))
    elif argv[1] == "install":
        print("changed" if install(tree) else "ok")
    elif argv[1] == "schema":
        config = load_release(tree)
        print(
            json.dumps(
                {
                    "version": project(tree)["version"],
                    "config_version": config.DEFAULT_CONFIG.get("_config_version"),
                }
            )
        )
    else:
        import yaml

        wanted = yaml.safe_load(sys.stdin.read()) or {}
        problems = check_config(load_release(tree), wanted)
        for line in problems:
            print(f"config.yaml {line}", file=sys.stderr)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
