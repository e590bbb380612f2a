"""Issue 14: usage per team and model that survives the gateway's reloads and restarts. The
real airig-gateway-meter (roles/gateway/files) receives HAProxy-shaped log lines on a real
datagram socket and keeps them in SQLite; the real airig-gateway-usage reads that file with
prices. HAProxy itself, its Lua filter and systemd's socket run in the gateway scenario; here
the meter binds its own socket (--socket), as it does without systemd."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

FILES = Path(__file__).resolve().parents[1] / "roles" / "gateway" / "files"
METER, USAGE = FILES / "airig-gateway-meter", FILES / "airig-gateway-usage"
HEAD = "10.0.0.5:40000 [01/Dec/2026:10:00:00.000] 200 812 43"


def line(
    backend: str = "model_0/box-a_llama_cpp",
    team: str = "research",
    model: str = "qwen3-8b",
    prompt: str = "12",
    completion: str = "30",
    streamed: str | None = "-",
) -> bytes:
    """A line as the gateway's log-format writes it (streamed=None: as one set up before
    issue 29 item 11 wrote it, without the chunk count)."""
    tail = "" if streamed is None else f" streamed={streamed}"
    return (
        f"{HEAD} {backend} team={team} model={model} "
        f"prompt_tokens={prompt} completion_tokens={completion}{tail}\n"
    ).encode()


class Meter:
    def __init__(self, tmp: Path) -> None:
        self.sock, self.db = tmp / "meter.sock", tmp / "usage.sqlite3"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.sock.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, METER, "--socket", self.sock, "--db", self.db]
        )
        for _ in range(100):
            if self.sock.exists():
                return
            time.sleep(0.05)
        raise AssertionError("the meter did not bind its socket")

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(10)

    def send(self, *lines: bytes) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            for data in lines:
                s.sendto(data, str(self.sock))


def usage(db: Path, prices: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, USAGE, "--db", db, "--prices", prices, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def rows(db: Path, prices: Path, want: int) -> dict:
    """{(team, model): row} once the meter holds `want` requests in all (5 s at most)."""
    for _ in range(100):
        got = json.loads(usage(db, prices, "--json").stdout) if db.exists() else []
        if sum(r["requests"] for r in got) >= want:
            break
        time.sleep(0.05)
    return {(r["team"], r["model"]): r for r in got}


@pytest.fixture
def meter(tmp_path: Path):
    m = Meter(tmp_path)
    m.start()
    yield m
    if m.proc and m.proc.poll() is None:
        m.stop()


@pytest.fixture
def prices(tmp_path: Path) -> Path:
    p = tmp_path / "prices.json"
    p.write_text(
        json.dumps({"currency": "EUR", "models": {"qwen3-8b": {"input": 2.0, "output": 8.0}}})
    )
    return p


def test_routed_requests_and_their_tokens_are_added_per_team_and_model(meter, prices) -> None:
    meter.send(
        line(),
        line(prompt="8", completion="2"),
        line(team="ops", model="airig-tiny"),
        line(prompt="-", completion="-"),
    )
    got = rows(meter.db, prices, 4)
    assert got[("research", "qwen3-8b")] == {
        "team": "research",
        "model": "qwen3-8b",
        "requests": 3,
        "prompt_tokens": 20,
        "completion_tokens": 32,
        "uncounted": 1,
        "estimated": 0,
        "cost": round((20 * 2.0 + 32 * 8.0) / 1e6, 6),
    }
    assert got[("ops", "airig-tiny")]["cost"] is None  # no price for it


def test_refusals_and_lines_of_another_shape_add_nothing(meter, prices) -> None:
    meter.send(
        line(backend="openai/<NOSRV>", model="-", prompt="-", completion="-"),  # 401/429
        line(backend="openai/<NOSRV>"),  # 404 model
        line(team="-"),
        line(model="qwen3-8b prompt_tokens=999999 completion_tokens=999999"),
        line(team="Research Team"),
        line(prompt="12 completion_tokens=1"),
        # issue 29 item 2: a refused request whose model (the client's text) carries the tail
        # of a routed one for another team, and the same with a newline
        line(
            backend="openai/<NOSRV>",
            model="x model_0/box-a_llama_cpp team=ops model=airig-tiny prompt_tokens=1"
            " completion_tokens=1",
        ),
        line(backend="openai/<NOSRV>", model="x\n" + line(team="ops").decode().strip()),
        b"junk " + line(team="ops"),
        b"\xff\xfe not a log line",
        line(),  # the one that counts
    )
    rows(meter.db, prices, 1)
    time.sleep(0.3)  # the lines were sent before the good one: had one counted, it is in by now
    got = rows(meter.db, prices, 1)
    assert list(got) == [("research", "qwen3-8b")]
    assert (
        got[("research", "qwen3-8b")]["requests"],
        got[("research", "qwen3-8b")]["prompt_tokens"],
    ) == (1, 12)


def test_counts_survive_the_meter_restarting(meter, prices) -> None:
    meter.send(line(), line())
    assert rows(meter.db, prices, 2)[("research", "qwen3-8b")]["requests"] == 2
    meter.stop()
    meter.start()
    meter.send(line())
    assert rows(meter.db, prices, 3)[("research", "qwen3-8b")]["requests"] == 3


def test_the_report_fits_a_terminal_and_filters_by_day(meter, prices) -> None:
    meter.send(line(), line(team="support", model="airig-tiny", prompt="-", completion="-"))
    rows(meter.db, prices, 2)
    table = usage(meter.db, prices)
    assert table.returncode == 0
    head, *body = table.stdout.splitlines()
    assert head.split() == [
        "team",
        "model",
        "requests",
        "in",
        "tok",
        "out",
        "tok",
        "no",
        "count",
        "estim.",
        "cost",
        "EUR",
    ]
    assert body[0].split() == ["research", "qwen3-8b", "1", "12", "30", "0", "0", "0.0003"]
    assert body[1].split() == ["support", "airig-tiny", "1", "0", "0", "1", "0", "-"]
    assert "  support: no count 1 of 1 (100.0%), estimated 0 (0.0%)" in body
    assert max(len(x) for x in table.stdout.splitlines()) <= 80
    assert (
        usage(meter.db, prices, "--until", "2000-01-01").stdout
        == "no request counted yet in those days\n"
    )


def test_the_report_says_what_is_wrong_without_a_traceback(tmp_path: Path, prices: Path) -> None:
    assert usage(tmp_path / "none.sqlite3", prices).stdout == "no request counted yet\n"
    bad = usage(tmp_path / "none.sqlite3", prices, "--since", "yesterday")
    assert bad.returncode == 2 and "'yesterday' is not a day (YYYY-MM-DD)" in bad.stderr
    broken = tmp_path / "prices.json"
    broken.write_text("{not json")
    bad = usage(tmp_path / "none.sqlite3", broken)
    assert (
        bad.returncode == 2
        and "cannot read the prices" in bad.stderr
        and "Traceback" not in bad.stderr
    )


def test_a_stream_with_no_count_counts_what_streamed_and_each_teams_share_is_shown(
    meter, prices
) -> None:
    """Issue 29 item 11: a stream closed early (or from an engine that reports no tokens)
    counted nothing; now its chunks count as completion tokens, marked estimated, and the
    report gives each team's share of requests with no count and estimated."""
    meter.send(
        line(prompt="-", completion="-", streamed="17"),  # closed before its usage came
        line(prompt="-", completion="-", streamed="-"),  # not a stream, no usage: no count
        line(streamed="40"),  # the engine's own count wins over the chunks
        line(streamed=None),  # a line of a gateway set up before the chunk count
        line(team="ops", model="airig-tiny", prompt="-", completion="-", streamed="5"),
    )
    got = rows(meter.db, prices, 5)
    research = got[("research", "qwen3-8b")]
    assert (research["requests"], research["prompt_tokens"], research["completion_tokens"]) == (
        4,
        24,
        17 + 30 + 30,
    )
    assert (research["uncounted"], research["estimated"]) == (1, 1)
    assert got[("ops", "airig-tiny")]["estimated"] == 1
    body = usage(meter.db, prices).stdout.splitlines()
    assert "  research: no count 1 of 4 (25.0%), estimated 1 (25.0%)" in body
    assert "  ops: no count 0 of 1 (0.0%), estimated 1 (100.0%)" in body


def test_a_usage_file_from_an_older_meter_keeps_its_counts(tmp_path: Path, prices: Path) -> None:
    import sqlite3

    db = tmp_path / "usage.sqlite3"
    with sqlite3.connect(db) as old:
        old.execute(
            "CREATE TABLE usage (day TEXT NOT NULL, team TEXT NOT NULL, model TEXT NOT NULL,"
            " requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL,"
            " completion_tokens INTEGER NOT NULL, uncounted INTEGER NOT NULL,"
            " PRIMARY KEY (day, team, model))"
        )
        old.execute("INSERT INTO usage VALUES ('2026-12-01', 'research', 'qwen3-8b', 3, 9, 9, 1)")
    before = json.loads(usage(db, prices, "--json").stdout)  # read before the meter migrates
    assert before[0]["requests"] == 3 and before[0]["estimated"] == 0
    m = Meter(tmp_path)
    m.db = db
    m.start()
    try:
        m.send(line(prompt="-", completion="-", streamed="4"))
        got = rows(db, prices, 4)[("research", "qwen3-8b")]
        assert (got["requests"], got["uncounted"], got["estimated"]) == (4, 1, 1)
    finally:
        m.stop()
