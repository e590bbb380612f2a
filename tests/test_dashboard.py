"""Issue 13: the Grafana dashboard is generated from code (scripts/grafana_dashboard.py, with
grafana-foundation-sdk); the committed JSON the observe role installs is what that code writes,
and every query asks for metrics something on the box exports. (The site scenario parses every
query with the box's own promtool.)"""

from __future__ import annotations

import json
import re

from tests.conftest import REPO, load_file

SCRIPT = REPO / "scripts" / "grafana_dashboard.py"
COMMITTED = REPO / "roles" / "observe" / "files" / "grafana" / "airig.json"
EXPORTER = REPO / "roles" / "observe" / "files" / "airig_gpu_exporter.py"
# What the engines and Prometheus export (llama-server: the pinned llama.cpp's
# tools/server/server-task.cpp metric names; vLLM: its v1 metrics; node exporter 1.5).
ENGINE_METRICS = {
    "llamacpp:tokens_predicted_total",
    "llamacpp:prompt_tokens_total",
    "llamacpp:requests_processing",
    "llamacpp:requests_deferred",
    "vllm:generation_tokens_total",
    "vllm:prompt_tokens_total",
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "node_cpu_seconds_total",
    "node_memory_MemAvailable_bytes",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "up",
}
PROMQL_WORDS = {"sum", "by", "increase", "rate", "avg", "type", "mode", "fstype", "unit"}


def exprs(board: dict) -> list[str]:
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def test_the_committed_dashboard_is_what_the_code_writes() -> None:
    assert COMMITTED.read_text() == load_file(SCRIPT).render(), (
        "run: python scripts/grafana_dashboard.py"
    )


def test_every_query_asks_for_metrics_the_box_exports() -> None:
    board = json.loads(COMMITTED.read_text())
    exported = {
        m + s
        for m in re.findall(r'"(airig_[a-z_]+)"', EXPORTER.read_text())
        for s in ("", "_total")
    }
    known = exported | ENGINE_METRICS
    queries = exprs(board)
    assert len(queries) >= 20
    for expr in queries:
        stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\([a-z, ]*\)\s*\(|\"[^\"]*\"", " ", expr)
        names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped)) - PROMQL_WORDS
        assert names <= known, (expr, names - known)
    titles = [p["title"] for p in board["panels"] if p["type"] == "timeseries"]
    assert "Memory per engine" in titles and "Why clocks are lowered" in titles
    assert all(
        p["datasource"]["uid"] == "${datasource}" for p in board["panels"] if p["type"] != "row"
    )
