"""The fleet gateway (issue 14): one OpenAI endpoint in front of two TEST DOUBLE boxes, team
keys (401 without, wrong or revoked), a team's limit (429), routing by model, usage per team
and model (requests, tokens, cost) matching what was sent and answered and surviving reloads
and restarts, HAProxy's own config check, and a box rolled out and back under load: 0 failed
requests with the drain, failures without it (the control)."""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))
from gateway_client import call as call_port
from gateway_client import send, send_raw, stream_then_close
from gateway_client import team_key as key


def call(host, key=None, model="airig-tiny", text="hello", path="/v1/chat/completions", **ask):
    return call_port(4443, key, model, text, path, **ask)


SHOW_INFO = (
    "python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); "
    "s.connect('/run/haproxy/admin.sock'); s.sendall(b'show info\\n'); print(s.makefile().read())\""
)


def usage(host):
    """{(team, model): airig-gateway-usage's row}."""
    rows = json.loads(host.check_output("airig-gateway-usage --json"))
    return {(u["team"], u["model"]): u for u in rows}


def usage_once_counted(host, team, model, requests):
    """The usage once the meter holds `requests` for (team, model): it adds each request when
    HAProxy logs it, as the request ends (10 s at most)."""
    for _ in range(40):
        rows = usage(host)
        if rows.get((team, model), {}).get("requests", 0) >= requests:
            return rows
        time.sleep(0.25)
    return rows


def tokens_of(body):
    """(prompt, completion) tokens an answer reported: its usage, or a stream's last usage or
    llama.cpp timings."""
    if not body.startswith("data: "):
        u = json.loads(body)["usage"]
        return u["prompt_tokens"], u["completion_tokens"]
    events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: {")]
    last = events[-1]
    if "usage" in last:
        return last["usage"]["prompt_tokens"], last["usage"]["completion_tokens"]
    t = last["timings"]
    return t["prompt_n"] + t["cache_n"], t["predicted_n"]


def test_haproxy_accepts_its_configuration_and_holds_the_keys_privately(host):
    assert host.run("haproxy -c -q -f /etc/haproxy/haproxy.cfg").rc == 0
    cfg = host.file("/etc/haproxy/haproxy.cfg")
    assert (cfg.user, cfg.group, cfg.mode) == ("root", "haproxy", 0o640)
    teams = host.file("/etc/haproxy/airig/teams.map")
    assert (teams.user, teams.group, teams.mode) == ("root", "haproxy", 0o640)
    for team in ("research", "ops", "interns"):
        k = host.file(f"/srv/airig/keys/team-{team}.key")
        assert (k.user, k.mode) == ("root", 0o600)


def test_a_request_without_a_team_key_wrong_or_revoked_is_refused(host):
    assert call(host)[0] == 401
    assert call(host, "not-a-team-key")[0] == 401
    status, body = call(host, key(host, "interns"))
    assert status == 401 and "revoked" in body
    assert call(host, key(host, "research"))[0] == 200


def test_models_are_listed_and_routed_to_the_boxes_that_serve_them(host):
    status, body = call(host, key(host, "research"), path="/v1/models")
    assert status == 200
    assert sorted(m["id"] for m in json.loads(body)["data"]) == ["airig-tiny", "qwen3-8b"]
    research = key(host, "research")
    for i in range(4):
        status, body = call(host, research, model="qwen3-8b", text=f"q{i}")
        answer = json.loads(body)["choices"][0]["message"]["content"]
        assert status == 200 and answer == f"box-b/vllm answers q{i}"
    boxes = set()
    for i in range(6):
        status, body = call(host, research, text=f"t{i}")
        boxes.add(json.loads(body)["choices"][0]["message"]["content"].split()[0])
    assert boxes == {"box-a/llama_cpp", "box-b/llama_cpp"}
    status, body = call(host, research, model="no-such-model")
    assert status == 404 and "no box serves this model" in body


# An engine's routes beyond inference (Ollama's model management, llama.cpp's slots, props and
# adapters), a wrong method, and paths that only look like an allowed one.
FORBIDDEN = [
    ("POST", "/api/create"),
    ("POST", "/api/copy"),
    ("POST", "/api/push"),
    ("POST", "/api/pull"),
    ("DELETE", "/api/delete"),
    ("POST", "/slots/0?action=erase"),
    ("GET", "/slots"),
    ("POST", "/props"),
    ("POST", "/lora-adapters"),
    ("GET", "/health"),
    ("GET", "/v1/chat/completions"),
    ("POST", "/v1/models"),
    ("POST", "//v1/chat/completions"),
    ("POST", "/v1/chat/completions/../../api/create"),
    ("POST", "/v1/chat%2Fcompletions"),
]


def test_a_team_key_reaches_only_the_inference_routes(host):
    """Issue 29 item 1: a team key on any other method or path gets 403 at the gateway, before
    a box is asked (the stand-in boxes answer every POST, so a 200 would mean it got through)."""
    research = key(host, "research")
    for method, path in FORBIDDEN:
        status, body = send(4443, research, method, path, {"model": "airig-tiny", "name": "x"})
        assert status == 403, (method, path, status, body)
        assert "route not allowed through the gateway" in body and "POST /v1/embeddings" in body
    assert send(4443, "not-a-team-key", "POST", "/api/create", {"model": "airig-tiny"})[0] == 401
    assert call(host, research)[0] == 200
    assert call(host, research, path="/v1/completions")[0] == 200


def test_a_refused_request_cannot_forge_another_teams_usage(host):
    """Issue 29 item 2: a model name carrying the tail of a routed request's log line (for ops),
    or a newline, is refused (404) and adds nothing: test_usage_per_team_and_model_matches_what
    _was_sent below still finds ops at the 5 requests it made."""
    research = key(host, "research")
    forged = "x model_0/box-a_llama_cpp team=ops model=airig-tiny prompt_tokens=1"
    forged += " completion_tokens=1"
    for model in (forged, "airig-tiny\n" + forged, "airig-tiny "):
        assert call(host, research, model=model)[0] == 404, model


def test_a_body_that_repeats_a_key_or_is_too_big_to_check_is_refused(host):
    """Issue 29 item 3: HAProxy routes and bills on the first "model", the engine serves the
    last: a repeated top-level key (as JSON decodes it) is refused, a nested or quoted one is
    not; a body over gateway_max_request_kb (1024) cannot be held whole to check: 413."""
    research = key(host, "research")
    msgs = '"messages": [{"role": "user", "content": "hi"}]'
    for body in (
        f'{{"model": "airig-tiny", {msgs}, "model": "qwen3-8b"}}',
        f'{{"model": "airig-tiny", {msgs}, "mod\\u0065l": "qwen3-8b"}}',
        f'{{"model": "airig-tiny", {msgs}, "stream": false, "stream": true}}',
    ):
        status, answer = send_raw(4443, research, body.encode())
        assert status == 400 and "more than once" in answer, (body, status, answer)
    for body in (
        f'{{"model": "airig-tiny", {msgs[:-2]}, "name": "model"}}], "tools": [{{"type": '
        '"function", "function": {"name": "f", "parameters": {"model": 1, "x": {"model": 2}}}}]}',
        '{"model": "airig-tiny", "messages": [{"role": "user", "content": '
        '"\\"model\\": \\"qwen3-8b\\", {\\"model\\""}]}',
    ):
        status, answer = send_raw(4443, research, body.encode())
        assert status == 200 and "box-" in answer, (body, status, answer)
    big = f'{{"model": "airig-tiny", {msgs}, "pad": "{"x" * (1100 * 1024)}"}}'
    status, answer = send_raw(4443, research, big.encode())
    assert status == 413 and "1024 KB" in answer, (status, answer[:200])
    fits = f'{{"model": "airig-tiny", {msgs}, "pad": "{"x" * (900 * 1024)}"}}'
    assert send_raw(4443, research, fits.encode())[0] == 200


def test_a_team_over_its_limit_gets_429_and_others_do_not(host):
    ops = key(host, "ops")  # 5 requests per minute
    got = [call(host, ops, text=f"o{i}")[0] for i in range(7)]
    assert got[:5] == [200] * 5 and got[5:] == [429, 429], got
    assert call(host, key(host, "research"))[0] == 200


def test_usage_per_team_and_model_matches_what_was_sent(host):
    loops = [
        json.loads(host.file(f"/tmp/airig-load-{k}.json").content_string)
        for k in ("drain", "nodrain")
    ]
    # research's airig-tiny: the two load loops (every request, answered or not) and the
    # requests of the tests above (1 + 6 + 2 + 3 + 1, in this order of the module; the 403s,
    # 404s, 400s and 413 are not counted).
    sent = sum(loop["sent"] for loop in loops) + 13
    rows = usage_once_counted(host, "research", "airig-tiny", sent)
    got = {k: u["requests"] for k, u in rows.items()}
    assert got[("research", "airig-tiny")] == sent
    assert got[("ops", "airig-tiny")] == 5  # the refused ones are not counted
    assert got[("research", "qwen3-8b")] == 4


def test_tokens_and_cost_per_team_and_model_are_what_the_answers_reported(host):
    research = key(host, "research")
    before = usage(host)[("research", "qwen3-8b")]
    asks = [{}, {}, {"stream": True, "stream_options": {"include_usage": True}}, {"stream": True}]
    sent = []
    for i, ask in enumerate(asks):
        status, body = call(host, research, model="qwen3-8b", text=f"tokens {i} " * (i + 1), **ask)
        assert status == 200, body
        sent.append(tokens_of(body))
    after = usage_once_counted(host, "research", "qwen3-8b", before["requests"] + 4)
    row = after[("research", "qwen3-8b")]
    assert row["requests"] == before["requests"] + 4
    assert row["prompt_tokens"] - before["prompt_tokens"] == sum(p for p, _ in sent)
    assert row["completion_tokens"] - before["completion_tokens"] == sum(c for _, c in sent)
    assert row["uncounted"] == 0
    # HAProxy sent every request's line to the meter (it drops one it cannot send at once)
    info = host.check_output(SHOW_INFO).splitlines()
    assert "DroppedLogs: 0" in info, [x for x in info if "Dropped" in x]
    # converge priced qwen3-8b at 1.5 (input) and 6 (output) EUR per million tokens
    assert row["cost"] == round((row["prompt_tokens"] * 1.5 + row["completion_tokens"] * 6) / 1e6, 6)
    assert after[("research", "airig-tiny")]["cost"] is None  # no price, no cost
    table = host.check_output("airig-gateway-usage")
    assert "cost EUR" in table and max(len(line) for line in table.splitlines()) <= 80


def test_a_stream_closed_early_counts_what_streamed_as_estimated(host):
    """Issue 29 item 11: a client that stops reading a stream before its last event (which
    carries the count) counted no tokens; now the chunks that passed count as completion
    tokens, marked estimated, and the report shows the team's share."""
    before = usage(host)[("research", "qwen3-8b")]
    text = "a long question " * 10  # the stand-in answers one word per event: 33 events
    got = stream_then_close(4443, key(host, "research"), "qwen3-8b", text, events=2)
    assert len(got) == 2 and "usage" not in got[-1] and "timings" not in got[-1]
    after = usage_once_counted(host, "research", "qwen3-8b", before["requests"] + 1)
    row = after[("research", "qwen3-8b")]
    assert row["requests"] == before["requests"] + 1
    assert row["estimated"] == before["estimated"] + 1
    assert row["uncounted"] == before["uncounted"]
    assert row["prompt_tokens"] == before["prompt_tokens"]  # the prompt's count never came
    streamed = row["completion_tokens"] - before["completion_tokens"]
    assert 2 <= streamed < len((f"box-x/llama_cpp answers {text}").split()), streamed
    table = host.check_output("airig-gateway-usage")
    assert any(x.startswith("  research: no count ") and "estimated" in x for x in table.splitlines())


def test_the_token_filter_never_failed(host):
    # With lua-load (one Lua state for all of HAProxy's threads) Debian's 2.6.12 corrupted the
    # filter's stack under the roll's load: "Lua filter 'airig_usage': attempt to index a number
    # value", and that request hung until the server timeout. The rolls above ran with it on.
    log = host.check_output("journalctl -u haproxy --no-pager -o cat")
    threads = [x for x in host.check_output(SHOW_INFO).splitlines() if x.startswith("Nbthread")]
    assert "Lua filter" not in log, (threads, [x for x in log.splitlines() if "Lua" in x][:5])


def test_a_local_user_cannot_add_usage(host):
    socket = host.file("/run/airig-gateway-meter.sock")
    assert (socket.user, socket.group, socket.mode) == ("root", "haproxy", 0o620)
    forged = (
        "import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
        "s.sendto(b' model_0/x team=ops model=airig-tiny prompt_tokens=1 completion_tokens=1', "
        "'/run/airig-gateway-meter.sock')"
    )
    got = host.run(f"runuser -u nobody -- python3 -c {forged!r}")
    assert got.rc != 0 and "PermissionError" in got.stderr
    meter = host.check_output("systemctl show -p MainPID --value airig-gateway-meter")
    assert host.check_output(f"ps -o user= -p {meter}") != "root"


def test_usage_survives_reloads_and_restarts_of_haproxy_and_the_meter(host):
    before = usage(host)
    for command in ("reload haproxy", "restart haproxy", "restart airig-gateway-meter"):
        assert host.run(f"systemctl {command}").rc == 0
    assert usage(host) == before
    assert call(host, key(host, "research"), text="after restarts")[0] == 200
    n = before[("research", "airig-tiny")]["requests"] + 1
    assert usage_once_counted(host, "research", "airig-tiny", n)[("research", "airig-tiny")]["requests"] == n

    run = json.loads(host.file("/tmp/airig-load-drain.json").content_string)
    assert run["sent"] == 400 and run["ok"] == 400, run["failed"][:5]
    assert run["boxes"] == ["box-a", "box-b"]  # box-a served before and after its roll


def test_the_control_without_the_drain_loses_requests(host):
    run = json.loads(host.file("/tmp/airig-load-nodrain.json").content_string)
    assert run["sent"] == 400 and run["ok"] < 400, "killing a box mid-answer lost nothing?"
    assert all(f["error"] for f in run["failed"])
