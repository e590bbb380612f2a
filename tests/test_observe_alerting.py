"""Issue 13: Alertmanager only when a receiver is set. The observe role's own checks refuse a
receiver URL that is not a plain http(s) URL (it reaches Alertmanager's configuration), and the
files the role renders are what Debian's Alertmanager and Prometheus accept: checked with
Alertmanager's amtool and promtool where this machine has them (the `site` scenario runs them
on the box, against the installed services)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.test_gpu_verify_playbook import BIN, PLAYBOOKS, ansible_env


def render(name: str, tmp_path: Path, **extra: object) -> subprocess.CompletedProcess[str]:
    """tests/playbooks/NAME on localhost with these extra vars and out_dir=tmp_path."""
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-e", json.dumps({"out_dir": str(tmp_path), **extra}),
         str(PLAYBOOKS / name)],
        cwd=REPO, env=ansible_env(tmp_path), capture_output=True, text=True,
    )  # fmt: skip


def play(tmp_path: Path, **extra: object) -> subprocess.CompletedProcess[str]:
    return render("observe_alerting.yml", tmp_path, **extra)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://alerts.example/hook",
        "file:///etc/shadow",
        "https://user:secret@alerts.example/hook",
        "https://alerts.example/hook\nurl: http://evil",
        "https://alerts.example/hook' --x",
        'https://alerts.example/"hook"',
        "https://alerts.example/a b",
        "https://",
        "//alerts.example/hook",
        "https://alerts.example/hook\n",
    ],
)
def test_a_receiver_url_that_is_not_a_plain_url_stops_the_play(tmp_path: Path, url: str) -> None:
    run = play(tmp_path, observe_alert_webhook_url=url)
    assert run.returncode != 0
    assert "observe_alert_webhook_url must be empty or an http:// or https:// URL" in run.stdout
    assert not (tmp_path / "alertmanager.yml").exists()


def test_a_receiver_gets_alertmanager_on_loopback_and_prometheus_sends_to_it(
    tmp_path: Path,
) -> None:
    url = "https://ntfy.example.org/airig-box?priority=high&x=1"
    run = play(tmp_path, observe_alert_webhook_url=url, observe_alert_group_wait="5s")
    assert run.returncode == 0, run.stdout + run.stderr
    am = yaml.safe_load((tmp_path / "alertmanager.yml").read_text())
    assert am["receivers"] == [
        {"name": "airig", "webhook_configs": [{"url": url, "send_resolved": True}]}
    ]
    assert am["route"]["receiver"] == "airig" and am["route"]["group_wait"] == "5s"
    args = (tmp_path / "alertmanager.default").read_text()
    assert "--web.listen-address=127.0.0.1:9093" in args
    assert args.rstrip().endswith('--cluster.listen-address="')  # empty: no gossip port
    prom = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    assert "--web.config.file=/etc/prometheus/airig/alertmanager-web.yml" in args
    assert prom["alerting"]["alertmanagers"] == [
        {
            "static_configs": [{"targets": ["127.0.0.1:9093"]}],
            # issue 29 item 7: Alertmanager answers only Prometheus' password
            "basic_auth": {
                "username": "prometheus",
                "password_file": "/etc/prometheus/airig/keys/alertmanager.pass",
            },
        }
    ]
    for tool, argv in (
        ("amtool", ["check-config", str(tmp_path / "alertmanager.yml")]),
        ("promtool", ["check", "config", "--syntax-only", str(tmp_path / "prometheus.yml")]),
    ):
        if shutil.which(tool):
            check = subprocess.run([tool, *argv], capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr


def test_no_receiver_no_alertmanager(tmp_path: Path) -> None:
    run = play(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "alerting" not in yaml.safe_load((tmp_path / "prometheus.yml").read_text())
