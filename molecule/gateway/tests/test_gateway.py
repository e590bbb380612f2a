"""The fleet gateway (issue 14): one OpenAI endpoint in front of two TEST DOUBLE boxes, team
keys (401 without, wrong or revoked), a team's limit (429), routing by model, usage per team
and model matching what was sent, HAProxy's own config check, and a box rolled out and back
under load: 0 failed requests with the drain, failures without it (the control)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))
from gateway_client import call as call_port
from gateway_client import team_key as key


def call(host, key=None, model="airig-tiny", text="hello", path="/v1/chat/completions"):
    return call_port(4443, key, model, text, path)


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


def test_a_team_over_its_limit_gets_429_and_others_do_not(host):
    ops = key(host, "ops")  # 5 requests per minute
    got = [call(host, ops, text=f"o{i}")[0] for i in range(7)]
    assert got[:5] == [200] * 5 and got[5:] == [429, 429], got
    assert call(host, key(host, "research"))[0] == 200


def test_usage_per_team_and_model_matches_what_was_sent(host):
    usage = json.loads(host.check_output("airig-gateway-usage --json"))
    got = {(u["team"], u["model"]): u["requests"] for u in usage}
    assert got[("ops", "airig-tiny")] == 5  # the refused ones are not counted
    loops = [json.loads(host.file(f"/tmp/airig-load-{k}.json").content_string) for k in ("drain", "nodrain")]
    assert got[("research", "qwen3-8b")] == 4
    # research's airig-tiny: the two load loops (every request, answered or not) and the
    # requests of the tests above (1 + 6 + 1, in this order of the module).
    assert got[("research", "airig-tiny")] == sum(loop["sent"] for loop in loops) + 8


def test_a_box_rolled_out_and_back_under_load_loses_nothing_with_the_drain(host):
    run = json.loads(host.file("/tmp/airig-load-drain.json").content_string)
    assert run["sent"] == 400 and run["ok"] == 400, run["failed"][:5]
    assert run["boxes"] == ["box-a", "box-b"]  # box-a served before and after its roll


def test_the_control_without_the_drain_loses_requests(host):
    run = json.loads(host.file("/tmp/airig-load-nodrain.json").content_string)
    assert run["sent"] == 400 and run["ok"] < 400, "killing a box mid-answer lost nothing?"
    assert all(f["error"] for f in run["failed"])
