"""Issue 14: the gateway role trusts no inventory value it does not have to. Box names,
addresses, keys, certificates, model and team names reach HAProxy's configuration, its map
files and paths: each is checked for that use, and a bad one stops the play before anything
changes. A good inventory renders a configuration whose routes, listeners and pinned
certificates are what the boxes serve (HAProxy's own check runs in the gateway scenario)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.test_observe_alerting import render

CERT = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"
KEY = "k" * 43
BOX: dict[str, Any] = {
    "name": "box-a",
    "address": "10.0.0.11",
    "cert": CERT,
    "engines": {"llama_cpp": {"port": 8443, "key": KEY}, "vllm": {"port": 8444, "key": KEY}},
    "models": [
        {"name": "qwen3-8b", "engine": "llama_cpp"},
        {"name": "Qwen/Qwen3-32B", "engine": "vllm"},
    ],
}


def box(**change: Any) -> dict[str, Any]:
    out = copy.deepcopy(BOX)
    out.update(change)
    return out


@pytest.mark.parametrize(
    ("boxes", "teams"),
    [
        ([box(name="box-a\n    server evil 1.2.3.4:80")], []),
        ([box(name="../etc")], []),
        ([box(address="10.0.0.11 backup")], []),
        ([box(cert="not a certificate")], []),
        ([box(engines={"llama_cpp": {"port": 8443, "key": 'k" hdr X-Evil "1'}})], []),
        ([box(engines={"llama_cpp": {"port": 8443, "key": "short"}})], []),
        ([box(engines={"sglang": {"port": 8443, "key": KEY}})], []),
        ([box(engines={"llama_cpp": {"port": 70000, "key": KEY}})], []),
        ([box(models=[{"name": "m odel", "engine": "llama_cpp"}])], []),
        ([box(models=[{"name": "qwen3-8b", "engine": "ollama"}])], []),
        ([BOX, BOX], []),
        ([BOX], [{"name": "Research Team"}]),
        ([BOX], [{"name": "ops", "requests_per_minute": 0}]),
        ([BOX], [{"name": "ops", "revoked": "yes"}]),
        ([BOX], [{"name": "ops"}, {"name": "ops"}]),
    ],
)
def test_a_bad_inventory_value_stops_the_play(tmp_path: Path, boxes: list, teams: list) -> None:
    run = render("gateway_render.yml", tmp_path, gateway_boxes=boxes, gateway_teams=teams)
    assert run.returncode != 0 and "gateway: " in run.stdout, run.stdout[-2000:]
    assert not (tmp_path / "haproxy.cfg").exists()


def test_a_good_inventory_renders_routes_listeners_and_pinned_certificates(tmp_path: Path) -> None:
    other = box(
        name="box-b",
        address="box-b.lan",
        engines={"llama_cpp": {"port": 8443, "key": KEY}},
        models=[{"name": "qwen3-8b", "engine": "llama_cpp"}],
    )
    teams = [{"name": "research"}, {"name": "interns", "revoked": True}]
    run = render("gateway_render.yml", tmp_path, gateway_boxes=[BOX, other], gateway_teams=teams)
    assert run.returncode == 0, run.stdout[-3000:]
    cfg = (tmp_path / "haproxy.cfg").read_text()
    # Models in name order: Qwen/Qwen3-32B (box-a's vLLM), then qwen3-8b (box-a and box-b).
    assert "# Qwen/Qwen3-32B\nbackend model_0\n" in cfg and "# qwen3-8b\nbackend model_1\n" in cfg
    model_1 = cfg.split("backend model_1\n")[1].split("\n\n")[0]
    assert "server box-a_llama_cpp unix@/run/haproxy/airig-box-a_llama_cpp.sock check" in model_1
    assert "server box-b_llama_cpp unix@/run/haproxy/airig-box-b_llama_cpp.sock check" in model_1
    assert "box-a_vllm" not in model_1
    # Each box engine: its own listener that adds its key and checks the box's certificate.
    assert (
        "server box-b_llama_cpp box-b.lan:8443 ssl verify required ca-file "
        "/etc/haproxy/airig/boxes/box-b.crt sni str(box-b) verifyhost box-b"
    ) in cfg
    assert cfg.count(f'http-request set-header Authorization "Bearer {KEY}"') == 3
    # The listeners that add a box's key are UNIX sockets only HAProxy's user opens: no TCP
    # port on the gateway lends a box key to a local user.
    assert cfg.count(" mode 600 user haproxy group haproxy\n") == 3
    assert not [b for b in cfg.splitlines() if b.strip().startswith("bind 127.0.0.1")]
    assert "ssl verify none" not in cfg


def test_certificate_paths_must_be_absolute_clean_and_paired(tmp_path: Path) -> None:
    for extra in (
        {"gateway_tls_cert": "../etc/shadow", "gateway_tls_key": "/etc/airig/gw.key"},
        {"gateway_tls_cert": "/etc/airig/../shadow", "gateway_tls_key": "/etc/airig/gw.key"},
        {"gateway_tls_cert": "/etc/airig/gw.crt"},
    ):
        run = render("gateway_render.yml", tmp_path, gateway_boxes=[BOX], **extra)
        assert run.returncode != 0 and "gateway_tls_cert and gateway_tls_key" in run.stdout, extra


@pytest.mark.parametrize(
    "extra",
    [
        {"gateway_prices": {"m odel": {"input": 1, "output": 2}}},
        {"gateway_prices": {"qwen3-8b": {"input": -1, "output": 2}}},
        {"gateway_prices": {"qwen3-8b": {"input": "1; rm -rf /", "output": 2}}},
        {"gateway_prices": {"qwen3-8b": {"input": 1}}},
        {"gateway_prices": {"qwen3-8b": {"input": True, "output": 2}}},
        {"gateway_prices": {"qwen3-8b": {"input": 1, "output": 2, "extra": 3}}},
        {"gateway_currency": "EUR\n"},
        {"gateway_currency": "euro"},
        {"gateway_count_tokens": "yes"},
    ],
)
def test_a_bad_price_or_currency_stops_the_play(tmp_path: Path, extra: dict) -> None:
    run = render("gateway_render.yml", tmp_path, gateway_boxes=[BOX], **extra)
    assert run.returncode != 0 and "gateway" in run.stdout, run.stdout[-2000:]
    assert not (tmp_path / "haproxy.cfg").exists()


def test_usage_goes_to_the_meter_and_no_peers_port_is_opened(tmp_path: Path) -> None:
    prices = {"qwen3-8b": {"input": 0.05, "output": 0.2}}
    off = render("gateway_render.yml", tmp_path, gateway_boxes=[BOX], gateway_count_tokens=False)
    assert off.returncode == 0, off.stdout[-3000:]
    cfg = (tmp_path / "haproxy.cfg").read_text()
    assert "airig_usage" not in cfg  # requests only (the body check loads regardless)
    assert "    lua-load-per-thread /etc/haproxy/airig/airig_request.lua\n" in cfg
    assert "    log unix@/run/airig-gateway-meter.sock format raw local1 info\n" in cfg
    run = render("gateway_render.yml", tmp_path, gateway_boxes=[BOX], gateway_prices=prices)
    assert run.returncode == 0, run.stdout[-3000:]
    cfg = (tmp_path / "haproxy.cfg").read_text()
    # tokens are counted by default, with one Lua state per HAProxy thread (a shared lua-load
    # state corrupted its stack under load in Debian's 2.6.12)
    assert "    lua-load-per-thread /etc/haproxy/airig/airig_usage.lua\n" in cfg
    assert "lua-load " not in cfg
    assert "    filter lua.airig_usage\n" in cfg
    assert "    log unix@/run/airig-gateway-meter.sock format raw local1 info\n" in cfg
    # the line's tail airig-gateway-meter parses
    assert (
        "team=%[var(txn.team)] model=%[var(txn.logmodel)] prompt_tokens=%[var(txn.prompt_tokens)]"
        in cfg
    )
    assert "localpeer" not in cfg and "\npeers " not in cfg
