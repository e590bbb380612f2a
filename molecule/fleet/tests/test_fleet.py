"""The fleet across real boxes (issue 14): three boxes in network namespaces of their own, each
serving the real llama-server behind its proxy, one gateway in front. Checked on the gateway:
HAProxy's own config check on what fleet.yml rendered from the real boxes, team keys (401) and
limits (429) end to end; from this host: a box's engine port is closed across the network, its
proxy open; from side_effect's summaries: a driver upgrade rolled through every box under load
lost no request (each streamed answer checked) and moved the Debian packages, the control
without the drain lost some, and usage per team and model counted every request sent and, in
the roll, exactly the tokens the engines reported."""

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import testinfra
import testinfra.utils.ansible_runner

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))
from gateway_client import call, team_key

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = RUNNER.get_hosts("gateway")
BOXES = RUNNER.get_hosts("boxes")
ADDRESSES = {f"airig-fleet-box-{i}": f"10.77.0.1{i}" for i in (1, 2, 3)}
PORT = 4453


def summary(unit: str) -> dict:
    return json.loads(Path(f"/tmp/airig-fleet-{unit}.json").read_text())


def test_haproxy_accepts_the_config_rendered_from_the_real_boxes(host):
    assert host.run("haproxy -c -f /etc/haproxy/haproxy.cfg").rc == 0
    cfg = host.file("/etc/haproxy/haproxy.cfg").content_string
    for box, address in ADDRESSES.items():
        assert f"{address}:8443 ssl verify required" in cfg, box


def test_team_keys_and_limits_hold_in_front_of_real_boxes(host):
    assert call(PORT)[0] == 401
    assert call(PORT, "not-a-team-key")[0] == 401
    assert call(PORT, team_key(host, "interns"))[0] == 401
    status, body = call(PORT, team_key(host, "research"))
    assert status == 200 and json.loads(body)["choices"][0]["message"]["content"] == "Hello from airig"
    assert [call(PORT, team_key(host, "ops"))[0] for _ in range(7)].count(429) >= 2


@pytest.mark.parametrize("box", sorted(ADDRESSES))
def test_a_box_offers_its_proxy_and_not_its_engine_across_the_network(box):
    with socket.create_connection((ADDRESSES[box], 8443), timeout=5):
        pass
    with pytest.raises(OSError):
        socket.create_connection((ADDRESSES[box], 8080), timeout=5).close()


@pytest.mark.parametrize("box", BOXES)
def test_the_roll_moved_each_box_to_the_new_driver(box):
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    remote = testinfra.get_host(f"ansible://{box}?ansible_inventory={inventory}")
    assert remote.package("libnvidia-ml1").version == "535.309.01-0+deb12u1"
    assert remote.service("airig-llama-server@airig-tiny").is_running


def test_a_roll_through_every_box_under_load_loses_nothing():
    run = summary("airig-load-roll")
    assert run["failed"] == [], run["failed"][:5]
    assert run["sent"] == run["ok"] > 0
    assert run["boxes"] == sorted(ADDRESSES)  # every box answered, before and after its turn
    seconds = json.loads(Path("/tmp/airig-fleet-roll-seconds.json").read_text())
    assert sorted(seconds) == sorted(ADDRESSES)


def test_the_control_without_the_drain_loses_requests():
    run = summary("airig-load-control")
    assert run["sent"] > 0 and run["ok"] < run["sent"], "restarting a box under load lost nothing?"


@pytest.mark.parametrize("unit", ["airig-load-roll", "airig-load-control"])
def test_usage_per_team_and_model_counts_every_request_sent(unit):
    run = summary(unit)
    assert run["usage_added"] == run["sent"]


def test_usage_counts_the_tokens_the_engines_reported():
    # The roll lost nothing: every answer's tokens (llama-server's timings on its last event,
    # read by the gateway's Lua filter as the stream passed) are in the usage, and only those.
    run = summary("airig-load-roll")
    assert run["completion_tokens"] > 0
    assert (run["prompt_tokens_added"], run["completion_tokens_added"]) == (
        run["prompt_tokens"], run["completion_tokens"])
