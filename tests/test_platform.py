"""Issue 16 B: `airig platform` plans an organisation's pool on Kubernetes + Kueue. No API
server can run here, so every manifest is validated the way one would: core objects strictly
against Kubernetes' schemas (kubernetes-validate), Kueue and LeaderWorkerSet objects against
upstream's CRDs (vendored in src/airig/data/schemas with their provenance) including the CRDs'
CEL rules (cel-python). The tests break manifests on purpose to show each check can fail."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from airig import platform, profiles
from airig.cli import app
from airig.errors import InputError
from airig.fleet import Box
from tests.conftest import REPO

EXAMPLE = REPO / "inventories" / "platform"
PRO = "rtx-pro-6000-blackwell-workstation-edition"


def pool() -> dict[str, platform.Flavour]:
    team, home = profiles.load("team", ()), profiles.load("home", ())
    return platform.flavours_from(
        [Box("team-a", team, ()), Box("team-b", team, ()), Box("home-1", home, ())]
    )


def example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((EXAMPLE / "org.yml").read_text())
    return data


def objects(files: dict[str, list[dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [o for objs in files.values() for o in objs if o["kind"] == kind]


def test_example_renders_and_every_manifest_validates(tmp_path: Path) -> None:
    out = CliRunner().invoke(
        app,
        [
            "platform",
            "--org",
            str(EXAMPLE / "org.yml"),
            "-i",
            str(EXAMPLE / "hosts.yml"),
            "-o",
            str(tmp_path),
        ],
    )
    assert out.exit_code == 0, out.output
    files = {p.name: list(yaml.safe_load_all(p.read_text())) for p in tmp_path.glob("*.yaml")}
    assert sorted(files) == [
        "00-cluster.yaml",
        "01-kueue.yaml",
        "10-team-product.yaml",
        "10-team-research.yaml",
    ]
    plugin = objects(files, "DaemonSet")[0]["spec"]["template"]["spec"]
    assert plugin["runtimeClassName"] == "nvidia"
    assert plugin["containers"][0]["image"] == platform.versions()["device_plugin"]["image"]
    # One ResourceFlavor per GPU model of the boxes, labelled as the nodes are.
    flavours = {o["metadata"]["name"]: o for o in objects(files, "ResourceFlavor")}
    assert sorted(flavours) == ["geforce-rtx-5090", PRO]
    assert flavours[PRO]["spec"]["nodeLabels"] == {platform.GPU_LABEL: PRO}
    assert [o["metadata"]["name"] for o in objects(files, "Cohort")] == ["acme"]
    queues = {o["metadata"]["name"]: o for o in objects(files, "ClusterQueue")}
    assert sorted(queues) == ["product", "research"]
    research = queues["research"]["spec"]
    assert research["cohortName"] == "acme"
    assert research["fairSharing"] == {"weight": "2"}
    gpu = research["resourceGroups"][0]["flavors"][0]["resources"][2]
    assert gpu == {"name": "nvidia.com/gpu", "nominalQuota": "6", "borrowingLimit": "2"}
    local = {
        (o["metadata"]["namespace"], o["spec"]["clusterQueue"])
        for o in objects(files, "LocalQueue")
    }
    assert local == {("team-research", "research"), ("team-product", "product")}
    for p in tmp_path.glob("*.yaml"):  # what was written, read back, still validates
        for obj in yaml.safe_load_all(p.read_text()):
            assert platform.validate(obj) == [], obj["kind"]


def test_workloads_carry_the_queue_and_drain_in_time() -> None:
    org = platform.load_org(example(), pool())
    files = platform.manifests(org)
    lws = objects(files, "LeaderWorkerSet")
    deployments = objects(files, "Deployment")
    assert [o["metadata"]["name"] for o in lws] == ["llama-405b"]
    assert [o["metadata"]["name"] for o in deployments] == ["gpt-oss-20b"]
    templates = [d["spec"]["template"] for d in deployments] + [
        o["spec"]["leaderWorkerTemplate"][t]
        for o in lws
        for t in ("leaderTemplate", "workerTemplate")
    ]
    for t in templates:
        assert t["metadata"]["labels"][platform.QUEUE_LABEL] in ("research", "product")
        spec = t["spec"]
        c = spec["containers"][0]
        cmd = c["command"]
        stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        timeout = int(cmd[cmd.index("--shutdown-timeout") + 1])
        assert spec["terminationGracePeriodSeconds"] >= stop + timeout
        assert spec["runtimeClassName"] == "nvidia"
        key = c["env"][0]["valueFrom"]["secretKeyRef"]
        assert key["optional"] is False  # no key Secret, no pod: fail closed
    leader, worker = (
        lws[0]["spec"]["leaderWorkerTemplate"][t]["spec"]["containers"][0]["command"]
        for t in ("leaderTemplate", "workerTemplate")
    )
    assert leader[leader.index("--node-rank") + 1] == "0"
    assert "--headless" in worker and "--headless" not in leader
    assert leader[leader.index("--pipeline-parallel-size") + 1] == "2"
    assert leader[leader.index("--tensor-parallel-size") + 1] == "4"


def bad(change: str) -> dict[str, Any]:
    data = example()
    research = data["teams"]["research"]
    serve = research["serve"][0]
    match change:
        case "quota over the pool":
            research["quota"][PRO] = 7
        case "unknown flavour":
            research["quota"] = {"h100": 1}
        case "weight 0":
            research["weight"] = 0
        case "pod wider than a node":
            serve["gpus"] = 5
        case "more nodes than boxes":
            serve["nodes"] = 3
        case "replica over quota and borrowing":
            research["borrowing_limit"] = 1
        case "name with a trailing newline":
            data["teams"]["bad\n"] = data["teams"].pop("product")
        case "org name with a trailing newline":
            data["org"] = "acme\n"
        case "path with ..":
            serve["path"] = "../../etc"
        case "arg with a space":
            serve["args"] = ["--max-model-len 4096"]
        case "arg airig sets":
            serve["args"] = ["--api-key=x"]
        case "unknown priority":
            serve["priority"] = "urgent"
        case "lending over quota":
            data["teams"]["product"]["lending_limit"] = 3
        case "unknown key":
            research["quotas"] = {}
        case "models_dir relative":
            data["models_dir"] = "srv/models"
    return data


@pytest.mark.parametrize(
    "change",
    [
        "quota over the pool",
        "unknown flavour",
        "weight 0",
        "pod wider than a node",
        "more nodes than boxes",
        "replica over quota and borrowing",
        "name with a trailing newline",
        "org name with a trailing newline",
        "path with ..",
        "arg with a space",
        "arg airig sets",
        "unknown priority",
        "lending over quota",
        "unknown key",
        "models_dir relative",
    ],
)
def test_a_plan_that_does_not_hold_is_refused(change: str) -> None:
    with pytest.raises(InputError):
        platform.load_org(bad(change), pool())


def test_a_box_without_host_memory_in_its_profile_is_refused() -> None:
    raw = copy.deepcopy(profiles.load("home", ()).raw)
    del raw["host"]
    boxes = [Box("home-x", profiles.from_data(raw), ())]
    org = {"org": "acme", "teams": {"a": {"quota": {"geforce-rtx-5090": 1}}}}
    with pytest.raises(InputError, match=r"gives no host\.ram_gb"):
        platform.load_org(org, platform.flavours_from(boxes))


def test_refusal_says_what_to_fix(tmp_path: Path) -> None:
    org_file = tmp_path / "org.yml"
    org_file.write_text(yaml.safe_dump(bad("quota over the pool")))
    out = CliRunner().invoke(
        app, ["platform", "--org", str(org_file), "-i", str(EXAMPLE / "hosts.yml")]
    )
    assert out.exit_code == 2
    assert "quotas add up to 9 GPUs, the pool has 8 (team-a, team-b)" in out.output
    assert "Traceback" not in out.output


def manifests() -> dict[str, list[dict[str, Any]]]:
    return platform.manifests(platform.load_org(example(), pool()))


def first(kind: str) -> dict[str, Any]:
    return copy.deepcopy(objects(manifests(), kind)[0])


def test_cel_rules_of_the_crds_are_evaluated() -> None:
    cq = first("ClusterQueue")
    del cq["spec"]["cohortName"]  # borrowing without a cohort
    assert platform.validate(cq) == [
        "ClusterQueue research: spec: borrowingLimit must be nil when cohort is empty"
    ]
    cq = first("ClusterQueue")
    cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"].pop()
    assert (
        "flavors must have the same number of resources as the coveredResources"
        in (platform.validate(cq)[0])
    )
    rf = first("ResourceFlavor")
    rf["spec"] = {"topologyName": "rack", "nodeLabels": {}}
    assert "at least one nodeLabel is required when topology is set" in platform.validate(rf)[0]


def test_structural_schemas_are_strict() -> None:
    cq = first("ClusterQueue")
    cq["spec"]["cohort"] = "acme"  # v1beta1's name for the field, gone in v1beta2
    assert "'cohort' was unexpected" in platform.validate(cq)[0]
    lws = first("LeaderWorkerSet")
    lws["spec"]["leaderWorkerTemplate"]["size"] = "two"
    assert "'two' is not of type 'integer'" in platform.validate(lws)[0]
    lws = first("LeaderWorkerSet")
    lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["gpu"] = 1
    assert "'gpu' was unexpected" in platform.validate(lws)[0]
    # Core objects: Kubernetes' own strict schemas.
    dep = first("Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    assert "'resource' was unexpected" in platform.validate(dep)[0]
    dep = first("Deployment")
    dep["spec"]["replicas"] = "1"
    assert platform.validate(dep)


def test_references_across_manifests_are_checked() -> None:
    files = manifests()
    lq = next(o for o in files["10-team-research.yaml"] if o["kind"] == "LocalQueue")
    lq["spec"]["clusterQueue"] = "reserch"
    dep = next(o for o in files["10-team-product.yaml"] if o["kind"] == "Deployment")
    dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
    dep["spec"]["template"]["metadata"]["labels"][platform.PRIORITY_LABEL] = "urgent"
    problems = platform.validate_all(files)
    assert any("no ClusterQueue reserch" in p for p in problems)
    assert any(
        "terminationGracePeriodSeconds 30 < preStop + --shutdown-timeout (70)" in p
        for p in problems
    )
    assert any("no WorkloadPriorityClass urgent" in p for p in problems)


def test_int_or_string_fields_take_both() -> None:
    cq = first("ClusterQueue")
    cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"][2]["nominalQuota"] = 6
    assert platform.validate(cq) == []
    cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"][2]["nominalQuota"] = [6]
    assert platform.validate(cq)


def test_versions_file_agrees_with_the_roles_and_the_validator() -> None:
    v = platform.versions()
    role = yaml.safe_load((REPO / "roles" / "vllm" / "defaults" / "main.yml").read_text())
    assert v["vllm"]["image"] == f"vllm/vllm-openai:v{role['vllm_version']}"
    # kubernetes-validate ships schemas for the version the manifests are checked against.
    assert f"{v['kubernetes']['version']}.0" in kubernetes_validate.utils.all_versions()
    for entry in v.values():
        assert entry["source"].startswith("https://")
    for crd in ("kueue", "lws"):
        readme = (platform.SCHEMAS / crd / "README.md").read_text()
        assert "Apache License 2.0" in readme and "commit" in readme


def test_each_team_namespace_admits_only_the_team_and_the_gateway() -> None:
    """Issue 29 item 10: vLLM pods listened on every address with no NetworkPolicy."""
    data = {**example(), "gateway": {"cidrs": ["10.0.0.5/32", "fd00::/64"]}}
    org = platform.load_org(data, pool())
    files = platform.manifests(org)
    assert not platform.validate_all(files)
    for team in org.teams:
        policies = {
            o["metadata"]["name"]: o["spec"]
            for o in files[f"10-team-{team.name}.yaml"]
            if o["kind"] == "NetworkPolicy"
        }
        assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
        (rule,) = policies["team-and-gateway"]["ingress"]
        assert rule["from"] == [
            {"podSelector": {}},
            {"namespaceSelector": {"matchLabels": {"airig.dev/gateway": "true"}}},
            {"ipBlock": {"cidr": "10.0.0.5/32"}},
            {"ipBlock": {"cidr": "fd00::/64"}},
        ]
    for bad in (["10.0.0.5/24"], ["any"], [5], "10.0.0.0/8"):
        with pytest.raises(InputError, match=r"gateway\.cidrs"):
            platform.load_org({**example(), "gateway": {"cidrs": bad}}, pool())


def test_a_team_removed_from_the_org_is_removed_from_the_output(tmp_path: Path) -> None:
    """Issue 29 item 10: the output directory holds only the current org (a file of anyone
    else's stays)."""
    platform.render(platform.load_org(example(), pool()), tmp_path)
    assert (tmp_path / "10-team-product.yaml").exists()
    (tmp_path / "mine.yaml").write_text("# the admin's own\n")
    smaller = example()
    del smaller["teams"]["product"]
    research = smaller["teams"]["research"]
    del research["borrowing_limit"]  # borrowing needs a second team
    research["quota"] = {PRO: 8}  # what it borrowed, its own now
    platform.render(platform.load_org(smaller, pool()), tmp_path)
    assert not (tmp_path / "10-team-product.yaml").exists()
    assert (tmp_path / "10-team-research.yaml").exists()
    assert (tmp_path / "mine.yaml").read_text() == "# the admin's own\n"


def test_platform_speaks_json(runner: CliRunner) -> None:
    """Issue 30 item 7: `airig platform --json` for scripts."""
    out = runner.invoke(
        app,
        ["platform", "--org", str(EXAMPLE / "org.yml"), "-i", str(EXAMPLE / "hosts.yml"), "--json"],
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["org"] == "acme" and data["written_to"] is None
    assert "NetworkPolicy/default-deny" in data["files"]["10-team-research.yaml"]
    assert {f["name"] for f in data["flavours"]} == {"geforce-rtx-5090", PRO}
