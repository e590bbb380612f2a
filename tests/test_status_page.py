"""Issue 13: the status page (roles/observe/files/airig_status.py). Its rendering with the GPUs
a box with GPUs reports (the site scenario has none: it renders that case in Chromium against
the real Prometheus and llama-server), escaping of what it did not write, and the server run as
a process when Prometheus does not answer."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import REPO, load_file

PAGE = REPO / "roles" / "observe" / "files" / "airig_status.py"


def test_gpus_engines_alerts_and_escaping() -> None:
    data = {
        "problems": [],
        "gpus": [
            {"gpu": "0", "name": "NVIDIA GeForce RTX 5090", "used": 31e9, "total": 34.2e9,
             "temperature": 71.0},
            {"gpu": "1", "name": "NVIDIA GeForce RTX 5090", "used": 3e9, "total": 34.2e9,
             "temperature": None},
        ],
        "units": [{"gpu": "0", "unit": "airig-vllm.service", "bytes": 30e9}],
        "targets": [{"job": "airig_gpu", "instance": "127.0.0.1:9445", "up": False}],
        "alerts": [{"state": "firing", "labels": {"alertname": "GpuHot"},
                    "annotations": {"summary": "GPU 0 has been above 85 C", "action": "Cool it."}}],
        "summary": {"profile": "home", "endpoints": [
            {"engine": "vllm", "model": "<script>alert(1)</script>",
             "base_url": "http://127.0.0.1:8000/v1"}]},
        "check": [{"unit": "airig-vllm.service", "model": "qwen3-32b", "status": "short",
                   "message": "4096 tokens x 2 users promised, 1 allocated",
                   "terms": {"kv": {"plan_gb": 8.0, "actual_gb": 4.0}}}],
        "provisioned": "2026-11-30 19:00 UTC",
        "burn": {"when": "20261130T1900Z", "passed": False, "load": "torch",
                 "gpus": [{"index": 0, "failures": []}, {"index": 1, "failures": []}],
                 "pairs": [{"gpus": [0, 1], "passed": False,
                            "failures": ["all-reduce between GPU 0 and GPU 1 <hung>"]}],
                 "failures": []},
    }  # fmt: skip
    page = load_file(PAGE).render(data)
    assert page.count('<tr class="gpu">') == 2
    assert "GPU 0: 31.0 of 34.2 GB" in page and 'fill="#c0392b"' in page  # over 90%: red
    assert "airig-vllm.service 30.0 GB" in page
    assert '<li class="down">airig_gpu 127.0.0.1:9445: down</li>' in page
    assert '<li class="firing">GpuHot (firing): GPU 0 has been above 85 C. Cool it.</li>' in page
    assert '<span class="short">short</span>' in page and "<td>8.000</td><td>4.000</td>" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Last provisioned: 2026-11-30 19:00 UTC" in page
    assert (
        '<p class="down" id="burn-verdict">20261130T1900Z: FAILED, 2 GPUs under torch load, '
        "0 of 1 GPU pairs all-reduced right</p>"
    ) in page
    assert '<li class="down">GPUs 0-1: all-reduce between GPU 0 and GPU 1 &lt;hung&gt;</li>' in page


def test_the_server_answers_when_prometheus_does_not(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({"profile": "cpu", "endpoints": []}))
    for when, passed in (("20261129T1000Z", False), ("20261130T1000Z", True)):
        (tmp_path / "burn" / when).mkdir(parents=True)
        report = {"passed": passed, "load": "cpu", "gpus": [{"index": 0}], "pairs": []}
        (tmp_path / "burn" / when / "burn.json").write_text(json.dumps(report))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port, dead = s.getsockname()[1], s.getsockname()[1] + 1
    argv = [sys.executable, str(PAGE), "--port", str(port), "--state", str(tmp_path)]
    proc = subprocess.Popen([*argv, "--prometheus", f"http://127.0.0.1:{dead}"])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    page, headers = r.read().decode(), r.headers
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert f"Prometheus at http://127.0.0.1:{dead} did not answer" in page
        assert "<h1>airig: cpu</h1>" in page and "No plan-against-actual yet" in page
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert "20261130T1000Z: passed, 1 GPUs under cpu load" in page  # the newest run
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _serve(state: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, str(PAGE), "--port", str(port), "--state", str(state)]
    proc = subprocess.Popen([*argv, "--prometheus", f"http://127.0.0.1:{port + 1}"])
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)


def _page(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        return str(r.read().decode())


def test_a_malformed_check_json_is_named_never_a_dropped_connection(tmp_path: Path) -> None:
    """Issue 29 item 13: a check.json of another shape dropped the page's connection."""
    (tmp_path / "summary.json").write_text(json.dumps({"profile": "cpu", "endpoints": [3]}))
    proc, port = _serve(tmp_path)
    try:
        for bad in (
            "[1, 2]",
            '{"unit": "x"}',
            '[{"unit": "a", "terms": {"weights": {"plan_gb": "many"}}}]',
            '[{"unit": "a", "terms": [1]}]',
            '[{"unit": "ok", "status": "ok", "terms": {"kv": {"plan_gb": 1, "actual_gb": 2}}}]',
        ):
            (tmp_path / "check.json").write_text(bad)
            page = _page(port)
            assert "<h1>airig: cpu</h1>" in page, bad
            if "ok" in bad:
                assert "<td>kv</td><td>1.000</td><td>2.000</td>" in page
            else:
                assert "check.json" in page and 'class="problem"' in page, bad
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_connections_never_start_threads_without_end(tmp_path: Path) -> None:
    """Issue 29 item 13: every open connection held a thread for good. At most MAX_CLIENTS
    requests at once, each with CLIENT_TIMEOUT_S to send its request; then the page answers."""
    status = load_file(PAGE)
    proc, port = _serve(tmp_path)
    idle = []
    try:
        for _ in range(40):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.5)
        threads = int(
            next(
                line.split()[1]
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                if line.startswith("Threads:")
            )
        )
        assert threads <= status.MAX_CLIENTS + 2, threads
        for s in idle:
            s.close()
        time.sleep(status.CLIENT_TIMEOUT_S + 0.5)
        assert "<h1>airig: this box</h1>" in _page(port)
    finally:
        for s in idle:
            s.close()
        proc.terminate()
        proc.wait(timeout=10)
