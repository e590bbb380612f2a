"""The whole site on a CPU box: llama.cpp built from the local source mirror serving the tiny
scripted test model, both agents configured against it and answering through their own CLIs,
and the kill-and-rerun failure test (side_effect) leaving nothing duplicated or lost."""

import json
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))

from engine_checks import (  # noqa: E402
    check_key_file,
    check_key_not_logged,
    check_loopback_only,
    check_users_file_survives,
    http,
)

REPLY = "Hello from airig"  # what tests/mirror/tiny_gguf.py scripts the model to say
UNIT = "airig-llama-server@airig-tiny.service"
AS_AGENT = "runuser -u airig-agent -- env HOME=/var/lib/airig/agent"


def processed(host):
    log = host.check_output(f"journalctl --no-pager -o cat -u {UNIT}")
    return log.count("processing task")


def test_summary(host):
    summary = json.loads(host.file("/srv/airig/state/summary.json").content_string)
    assert summary["profile"] == "container-demo"
    assert summary["endpoints"][0]["base_url"] == "http://127.0.0.1:8080/v1"
    assert summary["keys"] == ["/srv/airig/keys/llama_cpp.key"]
    assert summary["network"] == {}  # only the status page is exposed: no engine over the network
    assert "llama_cpp" in summary["engines"]


def test_plan_against_actual_from_the_real_llama_server(host):
    """Issue 12 item 3: site.yml read llama-server's buffer lines of its current run and held
    them against the plan: the promised 65536 tokens x 1 user were allocated."""
    (result,) = json.loads(host.file("/srv/airig/state/check.json").content_string)
    assert result["status"] == "ok", result
    assert result["delivered"] == {"context": 65536, "users": 1}
    terms = result["terms"]
    # The test model is the catalog's airig-tiny: the plan meets llama-server's buffers, KV to
    # the MiB line's precision (65536 tokens x 512 bytes), weights within 1% (F32 norms and
    # tensor alignment). The overhead is the plan's margin, not a measurement: far above.
    assert abs(terms["kv"]["drift_gb"]) < 1e-5, terms
    assert abs(terms["weights"]["actual_gb"] / terms["weights"]["plan_gb"] - 1) < 0.01, terms
    assert 0 < terms["overhead"]["actual_gb"] < terms["overhead"]["plan_gb"], terms
    calibration = json.loads(host.file("/srv/airig/state/calibration.json").content_string)
    assert set(calibration["llama_cpp/airig-tiny"]) == {"weights", "kv", "overhead"}


def test_environment_file_for_any_client(host):
    f = host.file("/etc/airig/agent.env")
    assert f.mode == 0o640 and f.group == "airig-agent"
    env = dict(
        line.split("=", 1)
        for line in f.content_string.splitlines()
        if line and not line.startswith("#")
    )
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:8080/v1"
    assert env["OPENAI_MODEL"] == "airig-tiny"
    assert (
        env["OPENAI_API_KEY"] == host.file("/srv/airig/keys/llama_cpp.key").content_string.strip()
    )


def test_openclaw_answers_through_its_gateway(host):
    """The product path: the hardened gateway (token auth) runs the agent."""
    before = processed(host)
    out = host.run(f"{AS_AGENT} openclaw agent --json -m 'Say hello' 2>/dev/null")
    assert out.rc == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["result"]["payloads"][0]["text"].strip() == REPLY
    assert processed(host) > before  # llama-server took the request with the key


def test_openclaw_one_shot_local(host):
    """`openclaw agent --local` refuses while a gateway owns the state: stop it for this one."""
    before = processed(host)
    host.run("systemctl stop airig-openclaw-gateway.service")
    try:
        out = host.run(f"{AS_AGENT} openclaw agent --local --json -m 'Say hello' 2>/dev/null")
    finally:
        host.run("systemctl start airig-openclaw-gateway.service")
        host.run(
            "for i in $(seq 90); do ss -Hltn | grep -q 127.0.0.1:18789 && break; sleep 1; done"
        )
    assert out.rc == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["payloads"][0]["text"].strip() == REPLY
    assert processed(host) > before


def test_hermes_answers_through_the_local_engine(host):
    before = processed(host)
    out = host.run(f"{AS_AGENT} hermes -z 'Say hello'")
    assert out.rc == 0, out.stdout + out.stderr
    assert REPLY in out.stdout
    assert processed(host) > before


HERMES = "/opt/airig/hermes"
TREE = f"{HERMES}/v2026.7.20"


def test_hermes_runs_the_release_tree_it_was_given(host):
    """Issue 11 item 7: the release archive's tree (sha256-checked), not a PyPI package; the
    venv imports it with pip's metadata; the tree is root's; hermes is airig's wrapper."""
    probe = (
        "import importlib.metadata as m, hermes_cli;"
        "print(m.version('hermes-agent'), hermes_cli.__file__)"
    )
    out = host.check_output(f'{AS_AGENT} {HERMES}/venv/bin/python -c "{probe}"')
    assert out.split() == ["0.19.0", f"{TREE}/hermes_cli/__init__.py"]
    tree = host.file(TREE)
    assert tree.user == "root" and tree.mode == 0o755
    wrapper = host.file("/usr/local/bin/hermes")
    assert (
        not wrapper.is_symlink
        and f"{HERMES}/venv/bin/python -m hermes_cli.main" in wrapper.content_string
    )
    assert host.file(f"{TREE}/.install_method").content_string == "airig\n"
    config = host.file("/var/lib/airig/agent/.hermes/config.yaml").content_string
    assert "_config_version: 33\n" in config  # 0.19.0's schema, read from the release


def test_hermes_config_check_uses_the_releases_schema(host):
    """The role's check against the real release: a key Hermes 0.19.0 does not know (a typo),
    an old schema version and a misplaced key are each named; exit 1."""
    bad = "security: {allow_lazy_install: false}\nbase_url: x\n_config_version: 30\n"
    check = f"{HERMES}/venv/bin/python {HERMES}/hermes_release.py check-config {TREE}"
    out = host.run(f"printf '%s' {shlex.quote(bad)} | {check}")
    assert out.rc == 1, out.stdout + out.stderr
    assert "security.allow_lazy_install: not in this release's DEFAULT_CONFIG" in out.stderr
    assert "_config_version: 30, the release's schema is 33" in out.stderr
    assert "Root-level key 'base_url' looks misplaced" in out.stderr


def test_openclaw_gateway_is_a_hardened_loopback_service(host):
    """Issue 10 item 14: the gateway runs under the @system-service syscall filter now (only
    RestrictSUIDSGID, which answers openat2 with ENOSYS on systemd 252, stays off)."""
    assert host.service("airig-openclaw-gateway.service").is_running
    unit = "airig-openclaw-gateway.service"
    show = host.check_output(f"systemctl show -p SystemCallFilter -p RestrictSUIDSGID {unit}")
    assert "RestrictSUIDSGID=no" in show and "SystemCallFilter=" in show
    assert "openat" in show  # the allow-list is in force (empty when no filter)
    exposure = host.check_output(f"systemd-analyze security --no-pager {unit}")
    assert float(exposure.split("Overall exposure level for")[1].split(":")[1].split()[0]) < 3.1
    listeners = host.check_output("ss -Hltn")
    assert "127.0.0.1:18789" in listeners and "0.0.0.0:18789" not in listeners
    check_key_file(host, "openclaw-gateway")


def test_agent_configs_are_private(host):
    for path in (
        "/var/lib/airig/agent/.openclaw/openclaw.json",
        "/var/lib/airig/agent/.hermes/config.yaml",
    ):
        f = host.file(path)
        assert f.user == "airig-agent" and f.mode == 0o600
    hermes = host.file("/var/lib/airig/agent/.hermes/config.yaml").content_string
    assert "context_length: 65536" in hermes and "allow_lazy_installs: false" in hermes
    claw = json.loads(host.file("/var/lib/airig/agent/.openclaw/openclaw.json").content_string)
    assert claw["models"]["catalogRefresh"]["enabled"] is False
    assert claw["update"]["checkOnStart"] is False


def test_key_kept_and_not_logged(host):
    check_key_file(host, "llama_cpp", owner="airig-llama")
    check_key_not_logged(host, "llama_cpp", UNIT)


def test_nothing_lost_after_the_killed_run(host):
    """Everything hashed before the kill is there, byte for byte, after the re-run."""
    check_users_file_survives(host)
    out = host.run("sha256sum --check --quiet /root/before-kill.sha256")
    assert out.rc == 0, out.stdout + out.stderr


def test_nothing_duplicated_after_the_killed_run(host):
    units = host.check_output("systemctl list-units --all --plain --no-legend 'airig-*'")
    assert len([u for u in units.splitlines() if u.startswith("airig-llama-server@")]) == 1
    builds = host.check_output("ls /opt/airig/llama.cpp").split()
    assert sorted(b for b in builds if b.startswith("0.3.36")) == ["0.3.36-0c1e570-cpu"]
    assert (
        host.file("/opt/airig/llama.cpp/current").linked_to
        == "/opt/airig/llama.cpp/0.3.36-0c1e570-cpu"
    )
    assert not host.file("/opt/airig/llama.cpp/0.3.36-0c1e570-cpu/bin/llama-server.new").exists
    assert host.service(UNIT).is_running


def targets(host):
    return json.loads(host.check_output("curl -s http://127.0.0.1:9090/api/v1/targets"))["data"][
        "activeTargets"
    ]


def test_prometheus_scrapes_every_target_on_loopback(host):
    """Issue 13: Prometheus and its node exporter from Debian, on 127.0.0.1 only, retention
    sized to the disk; every target up, llama-server's /metrics read with Prometheus' own copy
    of its key (the engine answers 401 without one)."""
    for port in (9090, 9100):
        check_loopback_only(host, port)
    deadline = time.monotonic() + 120
    while not all(t["health"] == "up" for t in targets(host)) and time.monotonic() < deadline:
        time.sleep(3)
    got = {t["labels"]["job"]: t for t in targets(host)}
    assert set(got) == {"prometheus", "node", "llama_cpp", "dcgm"}, got
    assert all(t["health"] == "up" for t in got.values()), got
    assert got["llama_cpp"]["labels"]["model"] == "airig-tiny"
    assert http(host, "http://127.0.0.1:8080/metrics")[0] == 401
    copy = host.file("/etc/prometheus/airig/keys/llama_cpp.key")
    assert (copy.user, copy.group, copy.mode) == ("root", "prometheus", 0o640)
    pid = host.check_output("systemctl show -p MainPID --value prometheus")
    argv = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/cmdline").splitlines()
    assert "--web.listen-address=127.0.0.1:9090" in argv
    assert any(a.startswith("--storage.tsdb.retention.size=") and a.endswith("GB") for a in argv)


def test_node_exporter_runs_confined_and_still_reports(host):
    """Issue 29 item 15: Debian's node exporter unit scored 9.2 (systemd-analyze security); with
    airig's drop-in it reads /proc and /sys read-only, on loopback, and still reports the box."""
    unit = "prometheus-node-exporter.service"
    exposure = host.check_output(f"systemd-analyze security --no-pager {unit}")
    score = float(exposure.split("Overall exposure level for")[1].split(":")[1].split()[0])
    assert score < 3.5, exposure[-2000:]
    metrics = host.check_output("curl -s http://127.0.0.1:9100/metrics")
    for family in (
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "node_filesystem_size_bytes",
    ):
        assert family in metrics, family
    assert 'node_scrape_collector_success{collector="filesystem"} 1' in metrics


def test_alert_rules_are_loaded_and_pass_their_tests(host):
    """The rules Prometheus evaluates, and their promtool cases run on the box itself."""
    rules = json.loads(host.check_output("curl -s http://127.0.0.1:9090/api/v1/rules"))
    names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert {"GpuHot", "GpuLost", "GpuXid", "EngineDown", "KvCacheFull", "DiskNearlyFull"} <= names
    run = host.run("cd /etc/prometheus/airig && promtool test rules alerts.test.yml")
    assert run.rc == 0 and "SUCCESS" in run.stdout, run.stdout + run.stderr


def test_the_grafana_dashboard_queries_parse_on_the_box(host):
    """The dashboard the role installs for a Grafana elsewhere: every query is PromQL that the
    box's own promtool accepts (as recording rules)."""
    board = json.loads(host.file("/etc/prometheus/airig/airig.json").content_string)
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"airig:dashboard_{i}", "expr": e} for i, e in enumerate(exprs)
    ]}]}  # fmt: skip
    path = "/tmp/airig-dashboard-rules.yml"
    host.run(f"printf '%s' {shlex.quote(json.dumps(rules))} > {path}")
    run = host.run(f"promtool check rules {path}")
    assert run.rc == 0 and f"SUCCESS: {len(exprs)} rules found" in run.stdout, (
        run.stdout + run.stderr
    )


def test_the_status_page_in_headless_chromium(host):
    """Issue 13: the status page on 127.0.0.1, rendered by Debian's Chromium (headless): the
    box's engine with its plan against actual, its endpoint, the scraped targets, the alerts
    and the last provisioning; a screenshot is kept (AIRIG_ARTIFACTS, default /tmp)."""
    check_loopback_only(host, 9447)
    install = "apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core"
    assert host.run(f"command -v chromium || DEBIAN_FRONTEND=noninteractive {install}").rc == 0
    chromium = (
        "chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-dev-shm-usage"
        " --disable-background-networking --disable-component-update --disable-sync"
        " --user-data-dir=/tmp/airig-chromium"
    )
    dom = host.check_output(f"{chromium} --dump-dom http://127.0.0.1:9447/ 2>/dev/null")
    for section in ("gpus", "engines", "endpoints", "targets", "alerts", "burn"):
        assert f'id="{section}"' in dom, section
    assert "No GPU on this box" in dom and "No burn-in yet" in dom
    assert f"{UNIT}: airig-tiny" in dom and '<span class="ok">ok</span>' in dom
    assert "<code>http://127.0.0.1:8080/v1</code>" in dom
    assert '<li class="up">llama_cpp 127.0.0.1:8080: up</li>' in dom
    assert "Last provisioned: 20" in dom
    shot = "/tmp/airig-status.png"
    host.run(f"{chromium} --window-size=1280,1600 --screenshot={shot} http://127.0.0.1:9447/")
    png = host.file(shot).content
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    keep = Path(os.environ.get("AIRIG_ARTIFACTS", "/tmp")) / "airig-status.png"
    keep.write_bytes(png)


def test_the_status_page_beyond_loopback_needs_its_key(host):
    """Exposed (proxy_expose: {status: 8447}) it is behind nginx with TLS and a key of its own."""
    url = "https://127.0.0.1:8447/"
    assert http(host, url)[0] == 401
    assert http(host, url, "not-the-key")[0] == 401
    status, page = http(host, url, host.file("/srv/airig/keys/status.key").content_string.strip())
    assert status == 200 and "<h1>airig: container-demo</h1>" in page


RECEIVER = """
import http.server
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open("/tmp/airig-alerts.jsonl", "ab") as f:
            f.write(body.replace(b"\\n", b" ") + b"\\n")
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", 9449), Hook).serve_forever()
"""


def test_alerts_reach_the_receiver_through_alertmanager_on_loopback(host):
    """Issue 13: with observe_alert_webhook_url set, Debian's Alertmanager runs on 127.0.0.1
    without its cluster port, Prometheus sends to it, and an alert reaches the receiver (a
    webhook server started here on the box, as a person's would be elsewhere)."""
    check_loopback_only(host, 9093)
    assert host.run("ss -Hltn 'sport = :9094'").stdout.strip() == ""  # no gossip port
    pid = host.check_output("systemctl show -p MainPID --value prometheus-alertmanager")
    argv = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/cmdline").splitlines()
    assert "--web.listen-address=127.0.0.1:9093" in argv and "--cluster.listen-address=" in argv
    conf = host.file("/etc/prometheus/airig/alertmanager.yml")
    assert (conf.user, conf.group, conf.mode) == ("root", "prometheus", 0o640)
    deadline = time.monotonic() + 60
    while True:
        ams = json.loads(host.check_output("curl -s http://127.0.0.1:9090/api/v1/alertmanagers"))
        active = [a["url"] for a in ams["data"]["activeAlertmanagers"]]
        if active or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert active == ["http://127.0.0.1:9093/api/v2/alerts"], ams
    host.run("rm -f /tmp/airig-alerts.jsonl; systemctl stop airig-test-hook 2>/dev/null")
    run = host.run(f"systemd-run --unit=airig-test-hook python3 -c {shlex.quote(RECEIVER)}")
    assert run.rc == 0, run.stderr
    password = host.file("/etc/prometheus/airig/keys/alertmanager.pass").content_string.strip()
    add = host.run(
        "amtool alert add AirigTestAlert severity=warning gpu=0 --annotation=summary=test"
        f" --alertmanager.url=http://prometheus:{password}@127.0.0.1:9093"
    )
    assert add.rc == 0, add.stdout + add.stderr
    deadline = time.monotonic() + 60
    while not host.file("/tmp/airig-alerts.jsonl").exists and time.monotonic() < deadline:
        time.sleep(1)
    first = json.loads(host.file("/tmp/airig-alerts.jsonl").content_string.splitlines()[0])
    assert first["receiver"] == "airig" and first["status"] == "firing"
    assert first["alerts"][0]["labels"]["alertname"] == "AirigTestAlert"
    host.run("systemctl stop airig-test-hook")


def test_alertmanager_answers_only_prometheus(host):
    """Issue 29 item 7: without Prometheus' password, a local user can neither silence alerts,
    send one, nor read the receiver's URL (/api/v2/status carries the configuration)."""
    for method, path in (
        ("GET", "/api/v2/status"),
        ("GET", "/api/v2/silences"),
        ("POST", "/api/v2/silences"),
        ("POST", "/api/v2/alerts"),
    ):
        cmd = (
            f"runuser -u nobody -- curl -s -o /dev/null -w '%{{http_code}}' -X {method}"
            f" -H 'Content-Type: application/json' -d '[]' http://127.0.0.1:9093{path}"
        )
        assert host.check_output(cmd) == "401", (method, path)
    secret = host.file("/etc/prometheus/airig/keys/alertmanager.pass")
    assert (secret.user, secret.group, secret.mode) == ("root", "prometheus", 0o640)
    web = host.file("/etc/prometheus/airig/alertmanager-web.yml")
    assert (web.user, web.group, web.mode) == ("root", "prometheus", 0o640)
    assert secret.content_string.strip() not in web.content_string  # only its bcrypt hash
    status = host.check_output(
        f"curl -s -u prometheus:{secret.content_string.strip()} http://127.0.0.1:9093/api/v2/status"
    )
    assert "9449" in status  # the receiver's URL, for the password's holder only
    prom = host.file("/etc/prometheus/prometheus.yml").content_string
    assert "password_file: /etc/prometheus/airig/keys/alertmanager.pass" in prom


def test_dcgm_exporter_runs_on_loopback_and_its_package_unit_is_masked(host):
    """Issue 13: where an apt source offers datacenter-gpu-manager-exporter (here the mirror's
    TEST DOUBLE package standing in for NVIDIA's CUDA repository), the role installs it, masks
    the package's own unit (it listens on every interface) and runs the binary on 127.0.0.1."""
    check_loopback_only(host, 9400)
    enabled = host.run("systemctl is-enabled nvidia-dcgm-exporter.service").stdout.strip()
    assert enabled == "masked"
    # Issue 29 item 14: masked before the package was installed, so its unit never started (the
    # stand-in logs each start's address where only root writes; it ran as root only if so).
    starts = host.run("cat /var/log/airig-dcgm-standin-starts.log 2>/dev/null").stdout
    assert ":9400" not in starts.replace("127.0.0.1:9400", ""), starts
    pid = host.check_output("systemctl show -p MainPID --value airig-dcgm-exporter.service")
    argv = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/cmdline").splitlines()
    assert argv[-2:] == ["--address", "127.0.0.1:9400"], argv
    user = host.check_output(f"stat -c %U /proc/{pid}")
    assert user not in ("root", "prometheus"), user  # a dynamic user
