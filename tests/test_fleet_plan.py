"""Issue 14: `airig plan -i INVENTORY` says which models a fleet serves, on which boxes, for
how many users in total, and through how many boxes the gateway reaches each (the engines
their proxy exposes). The inventory is read as Ansible reads it: group and host variables,
templated values such as profile_dirs: ["{{ inventory_dir }}/profiles"]."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from typer.testing import CliRunner

from airig.cli import app
from airig.fleet import PROXY_UPSTREAMS
from tests.conftest import REPO

INVENTORY = """
all:
  children:
    boxes:
      hosts:
        home-1: {profile_name: home}
        home-2: {profile_name: home, proxy_expose: {llama_cpp: 8443}}
        team-1: {profile_name: team, proxy_expose: {vllm: 8444, status: 8447}}
        demo-1: {profile_name: container-demo, proxy_expose: {llama_cpp: 8443}}
      vars:
        profile_dirs: ["{{ inventory_dir }}/profiles"]
    gateway:
      hosts:
        gw: {gateway_teams: [{name: research}]}
"""


def fleet(tmp_path: Path, text: str = INVENTORY) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "hosts.yml").write_text(text)
    shutil.copytree(REPO / "inventories" / "container" / "profiles", tmp_path / "profiles")
    return tmp_path / "hosts.yml"


def test_models_boxes_users_and_what_the_gateway_reaches(tmp_path: Path) -> None:
    run = CliRunner().invoke(app, ["plan", "-i", str(fleet(tmp_path)), "--json"])
    assert run.exit_code == 0, run.output
    rows = {r["model"]: r for r in json.loads(run.output)}
    assert set(rows) == {"qwen3-32b", "gpt-oss-120b", "airig-tiny"}  # the gateway is no box
    qwen = rows["qwen3-32b"]
    assert (qwen["quant"], qwen["engine"]) == ("Q4_K_M", "llama_cpp")
    assert qwen["boxes"] == ["home-1", "home-2"] and qwen["users"] == 2 + 2
    assert qwen["context"] == 32768 and qwen["routed"] == ["home-2"]
    assert rows["gpt-oss-120b"]["users"] == 8 and rows["gpt-oss-120b"]["routed"] == ["team-1"]
    # The demo profile comes from the inventory's own profiles/ (a templated profile_dirs).
    assert rows["airig-tiny"]["boxes"] == ["demo-1"] and rows["airig-tiny"]["context"] == 65536


def test_the_table_fits_80_columns(tmp_path: Path) -> None:
    run = CliRunner().invoke(app, ["plan", "-i", str(fleet(tmp_path))], env={"COLUMNS": "80"})
    assert run.exit_code == 0, run.output
    assert "home-1, home-2" in run.output and "1 of 2" in run.output
    assert max(len(line) for line in run.output.splitlines()) <= 80


def test_an_inventory_it_cannot_plan_says_what_to_fix(tmp_path: Path) -> None:
    no_profile = INVENTORY.replace("home-1: {profile_name: home}", "home-1: {}")
    run = CliRunner().invoke(app, ["plan", "-i", str(fleet(tmp_path, no_profile))])
    assert run.exit_code == 2 and "home-1 has no profile_name" in run.output
    run = CliRunner().invoke(app, ["plan", "-i", str(tmp_path / "missing.yml")])
    assert run.exit_code == 2 and "does not exist" in run.output
    unknown = INVENTORY.replace("profile_name: team", "profile_name: nosuch")
    run = CliRunner().invoke(app, ["plan", "-i", str(fleet(tmp_path / "u", unknown))])
    assert run.exit_code == 2 and "nosuch" in run.output and "Traceback" not in run.output


def test_the_engine_ports_behind_a_box_proxy_agree_everywhere() -> None:
    """The proxy's upstreams, fleet.yml's reading of a box's summary and the planner's endpoints
    name the same engine ports (a port changed in one place would route the gateway nowhere)."""
    proxy = yaml.safe_load((REPO / "roles/proxy/vars/main.yml").read_text())["proxy__upstreams"]
    shared = yaml.safe_load((REPO / "playbooks/vars/fleet.yml").read_text())
    fleet = shared["airig_fleet_upstreams"]
    assert fleet == PROXY_UPSTREAMS
    # fleet.yml and reprovision.yml read that one list (they each had a copy of it).
    for book in ("fleet.yml", "reprovision.yml"):
        text = (REPO / "playbooks" / book).read_text()
        assert "vars/fleet.yml" in text and "intersect(airig_fleet_upstreams.keys()" in text
    assert {e: proxy[e] for e in PROXY_UPSTREAMS} == PROXY_UPSTREAMS


def test_a_model_across_two_boxes_counts_its_users_once() -> None:
    from airig import profiles
    from airig.fleet import Box, fleet_plan
    from tests.test_multinode_role import pair_profile

    pair = profiles.from_data(pair_profile())
    (row,) = fleet_plan([Box("team-a", pair, ("vllm",)), Box("team-b", pair, ("vllm",))])
    assert row.boxes == ["team-a", "team-b"] and row.users == 4
