"""Issue 30 item 13: Kueue's manager Configuration, checked against the v1beta2 API's own Go
types (vendored in src/airig/data/schemas/kueue with their provenance). docs/scale.md asked for
`fairSharing.enable: true`, which releases serving v1beta2 do not have: Kueue's strict decoding
would have stopped the manager."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from airig import kueue_config, platform
from airig.cli import app
from tests.conftest import REPO

EXAMPLE = REPO / "inventories" / "platform"


def test_the_types_are_read_from_the_vendored_api() -> None:
    t = kueue_config.types()
    assert t["Configuration"]["fairSharing"] == "FairSharing"
    assert t["Configuration"]["integrations"] == "Integrations"
    assert t["FairSharing"] == {"preemptionStrategies": None}  # no "enable" in v1beta2
    assert {"apiVersion", "kind", "health", "webhook"} <= set(t["Configuration"])  # inlined


def test_airig_platform_writes_a_kueue_configuration_that_validates(tmp_path: Path) -> None:
    out = CliRunner().invoke(
        app,
        ["platform", "--org", str(EXAMPLE / "org.yml"), "-i", str(EXAMPLE / "hosts.yml"),
         "-o", str(tmp_path)],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    cfg = yaml.safe_load((tmp_path / platform.KUEUE_CONFIG).read_text())
    assert kueue_config.validate(cfg) == []
    assert cfg["apiVersion"] == "config.kueue.x-k8s.io/v1beta2"
    assert cfg["fairSharing"] == {
        "preemptionStrategies": ["LessThanOrEqualToFinalShare", "LessThanInitialShare"]
    }
    assert {"pod", "deployment", "leaderworkerset.x-k8s.io/leaderworkerset"} <= set(
        cfg["integrations"]["frameworks"]
    )
    assert not (tmp_path / "controller_manager_config.yaml").exists()  # not for k3s' auto-deploy


@pytest.mark.parametrize(
    ("change", "said"),
    [
        # what docs/scale.md asked for
        (lambda c: c["fairSharing"].update(enable=True), "fairSharing.enable: unknown field"),
        (lambda c: c.update(fairSharing=None), "fairSharing: not set"),
        (
            lambda c: c["fairSharing"].update(preemptionStrategies=["LessThanInitialShare"] * 2),
            "fairSharing.preemptionStrategies",
        ),
        (
            lambda c: c["integrations"]["frameworks"].remove("deployment"),
            "integrations.frameworks: no 'deployment'",
        ),
        (lambda c: c.update(fairsharing={}), "fairsharing: unknown field of Configuration"),
        (
            lambda c: c["webhook"].update(prot=9443),
            "webhook.prot: unknown field of ControllerWebhook",
        ),
    ],
)
def test_each_problem_is_named(change, said) -> None:
    cfg = copy.deepcopy(kueue_config.configuration())
    change(cfg)
    problems = kueue_config.validate(cfg)
    assert any(said in p for p in problems), problems


def _release_manifest(cfg_text: str) -> str:
    """The shape of Kueue's release manifest around its manager configuration."""
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kueue-manager-config", "namespace": "kueue-system"},
        "data": {"controller_manager_config.yaml": cfg_text},
    }
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kueue-system"}}
    return yaml.safe_dump_all([ns, cm])


def test_the_pinned_kueue_manifest_is_checked(tmp_path: Path) -> None:
    # Kueue's default (config/components/manager/controller_manager_config.yaml): fair sharing
    # commented out
    default = {k: v for k, v in kueue_config.configuration().items() if k != "fairSharing"}
    pinned = tmp_path / "kueue-manifests.yaml"
    pinned.write_text(_release_manifest(yaml.safe_dump(default)))
    args = ["platform", "--org", str(EXAMPLE / "org.yml"), "-i", str(EXAMPLE / "hosts.yml"),
            "--kueue-manifest", str(pinned)]  # fmt: skip
    bad = CliRunner().invoke(app, args)
    text = " ".join(bad.output.split())
    assert bad.exit_code == 2 and "fairSharing: not set" in text, text
    assert "kueue/controller_manager_config.yaml" in text
    pinned.write_text(_release_manifest(yaml.safe_dump(kueue_config.configuration())))
    good = CliRunner().invoke(app, args)
    assert good.exit_code == 0, good.output
    assert kueue_config.check_manifest("kind: Deployment\n", "x") == [
        "x: no ConfigMap kueue-manager-config (not a Kueue release manifest?)"
    ]
