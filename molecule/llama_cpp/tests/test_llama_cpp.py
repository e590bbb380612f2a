"""A real llama-server built from source in the box, serving the tiny scripted test model."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))

from engine_checks import (  # noqa: E402
    EXPOSURE_MAX,
    check_key_file,
    check_key_kept,
    check_key_not_logged,
    check_loopback_only,
    check_users_file_survives,
    exposure,
    http,
    key,
)

UNIT = "airig-llama-server@airig-tiny.service"
URL = "http://127.0.0.1:8080"
PROXY = "https://127.0.0.1:8443"
REPLY = "Hello from airig"  # what tests/mirror/tiny_gguf.py scripts the model to say
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Current time",
            "parameters": {"type": "object", "properties": {}},
        },
    }
]


def test_built_from_source_for_cpu(host):
    assert (
        host.file("/opt/airig/llama.cpp/current").linked_to
        == "/opt/airig/llama.cpp/0.3.36-0c1e570-cpu"
    )
    out = host.run("/opt/airig/llama.cpp/current/bin/llama-server --version")
    assert out.rc == 0 and "version" in (out.stdout + out.stderr)


def test_service_user_and_unit(host):
    assert host.user("airig-llama").exists and "airig" in host.user("airig-llama").groups
    assert host.user("airig-llama").shell == "/usr/sbin/nologin"
    svc = host.service(UNIT)
    assert svc.is_running and svc.is_enabled
    assert host.check_output(f"systemctl show -p User --value {UNIT}") == "airig-llama"


def test_flags_come_from_the_planner_as_the_process_receives_them(host):
    """Issue 10 item 6: read /proc/PID/cmdline of the running llama-server (not the template)."""
    pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
    argv = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/cmdline").splitlines()
    assert argv[0] == "/opt/airig/llama.cpp/current/bin/llama-server"
    joined = " ".join(argv)
    # context 4096 x concurrency 2 in the test profile -> --ctx-size 8192 --parallel 2
    assert "--ctx-size 8192 --parallel 2" in joined and "--n-gpu-layers 0" in joined
    assert "--jinja" in argv and "--host 127.0.0.1 --port 8080" in joined
    assert argv[argv.index("--model") + 1] == "/srv/airig/models/airig-tiny.gguf"
    assert argv[argv.index("--chat-template-kwargs") + 1] == '{"enable_thinking": false}'
    assert argv[argv.index("--api-key-file") + 1] == "/srv/airig/keys/llama_cpp.key"


def test_health(host):
    assert http(host, URL + "/health")[0] == 200


def test_chat_completion_with_tools_and_key(host):
    status, body = http(
        host,
        URL + "/v1/chat/completions",
        key(host, "llama_cpp"),
        {
            "model": "airig-tiny",
            "max_tokens": 4096,
            "tools": TOOLS,
            "messages": [{"role": "user", "content": "Say hello"}],
        },
    )
    assert status == 200, body
    choice = json.loads(body)["choices"][0]
    assert choice["message"]["content"] == REPLY
    assert choice["finish_reason"] == "stop"


def test_requests_without_or_with_a_wrong_key_are_refused(host):
    req = {"model": "airig-tiny", "messages": [{"role": "user", "content": "hi"}]}
    assert http(host, URL + "/v1/chat/completions", None, req)[0] == 401
    assert http(host, URL + "/v1/chat/completions", "wrong-key", req)[0] == 401
    assert http(host, URL + "/v1/models")[0] == 401


def test_key(host):
    """Issue 10 item 2: exposed through the proxy, the key stays the engine user's."""
    check_key_file(host, "llama_cpp", owner="airig-llama")
    check_key_kept(host, "llama_cpp")
    check_key_not_logged(host, "llama_cpp", UNIT)


def test_users_model_file_survives_the_re_run(host):
    check_users_file_survives(host)
    assert host.file("/srv/airig/models/airig-tiny.gguf").exists


def test_bound_to_loopback(host):
    check_loopback_only(host, 8080)


def test_hardened(host):
    assert exposure(host, UNIT) <= EXPOSURE_MAX


def test_proxy_requires_the_key(host):
    """Issue 10 item 2: through the proxy, 401 without or with a wrong key; the answer with it."""
    req = {"model": "airig-tiny", "messages": [{"role": "user", "content": "hi"}]}
    for path in ("/v1/models", "/health", "/v1/chat/completions"):
        assert http(host, PROXY + path)[0] == 401, path
        assert http(host, PROXY + path, "wrong-key")[0] == 401, path
    status, body = http(host, PROXY + "/v1/chat/completions", key(host, "gateway"), req)
    assert status == 200 and json.loads(body)["choices"][0]["message"]["content"] == REPLY


def test_proxy_refuses_the_engine_key_agents_hold(host):
    """Issue 29 item 8: over the network the proxy takes the box's network key
    (keys/gateway.key, the fleet gateway's) and refuses the engine's own key, which every local
    agent holds; the engine, sent its own key by the proxy, still answers on loopback with it."""
    check_key_file(host, "gateway")
    engine_key, network_key = key(host, "llama_cpp"), key(host, "gateway")
    assert engine_key != network_key
    for path in ("/v1/models", "/health", "/v1/chat/completions"):
        status, body = http(host, PROXY + path, engine_key)
        assert status == 401 and "keys/gateway.key" in body, (path, status, body)
    assert http(host, URL + "/v1/models", engine_key)[0] == 200
    assert http(host, URL + "/v1/models", network_key)[0] == 401  # the engine knows only its own
    assert http(host, PROXY + "/v1/models", network_key)[0] == 200


def test_proxy_passes_only_the_inference_routes(host):
    """Issue 29 item 1: with the key, llama-server's slots, props and adapters (which change
    what every client is served) and any other route get 403 over the network; on the box's
    loopback the engine's own routes stay the admin's."""
    secret = key(host, "gateway")
    for method, path in (
        ("POST", "/slots/0?action=erase"),
        ("GET", "/slots"),
        ("POST", "/props"),
        ("GET", "/props"),
        ("POST", "/lora-adapters"),
        ("POST", "/completion"),
        ("POST", "/v1/chat/completions/../../slots/0?action=erase"),
        ("GET", "/v1/chat/completions"),
    ):
        status, body = http(host, PROXY + path, secret, {"id_slot": 0}, method=method)
        assert status == 403, (method, path, status, body)
        assert "route not allowed through the proxy" in body
    assert http(host, PROXY + "/health", secret)[0] == 200
    assert http(host, PROXY + "/v1/models?x=1", secret)[0] == 200
    assert http(host, URL + "/props", key(host, "llama_cpp"))[0] == 200  # loopback: the engine


def test_proxy_keeps_the_admins_own_default_site(host):
    """Issue 10 item 9: only Debian's sites-enabled/default link is removed; the admin's own file
    there (written by side_effect before the re-run) stays."""
    site = host.file("/etc/nginx/sites-enabled/default")
    assert not site.is_symlink and site.content_string == "# the admin's own default site\n"
    assert host.run("nginx -t").rc == 0


def test_proxy_tls(host):
    """Issue 10 item 14: the self-signed certificate names the box (subjectAltName, which clients
    check; CN alone is ignored) and nginx speaks TLS 1.2/1.3 only."""
    san = host.check_output(
        "openssl x509 -in /etc/airig/proxy/self-signed.crt -noout -ext subjectAltName"
    )
    assert "DNS:localhost" in san and "IP Address:127.0.0.1" in san
    conf = host.file("/etc/nginx/conf.d/airig-engines.conf").content_string
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf
    assert host.run("curl -sk --tlsv1.1 --tls-max 1.1 https://127.0.0.1:8443/").rc != 0


def test_its_memory_report_is_what_airig_check_reads(host):
    """Issue 12 item 3: the pinned llama-server's own start-up lines, from its current run in
    journald, read by airig's parser: host buffers on a CPU box, 4096 cells for each of the
    profile's 2 sequences."""
    from airig import engine_logs

    invocation = host.check_output(f"systemctl show -p InvocationID --value -- {UNIT}")
    lines = host.check_output(
        f"journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID={invocation.strip()}"
    )
    got = engine_logs.parse_llama_server(lines)
    assert got.weights and all(engine_logs.host(d) for d in got.weights), got
    assert got.total("kv") > 0 and got.total("compute") > 0, got
    assert (got.kv_tokens, got.sequences) == (4096, 2), got


def test_the_plan_matches_the_tiny_models_buffers(host):
    """Issue 12 item 3, end to end: the test model is the catalog's airig-tiny, so the planner's
    figures for it meet llama-server's own: KV cache to the MiB line's precision (2 layers x 2
    x 4 heads x 16 x 2 bytes x 4096 tokens x 2 sequences = 4 MiB), weights within 1% (the F32
    norms and per-tensor alignment are what the plan does not count)."""
    from airig import check, engine_logs
    from airig.planner import memory
    from airig.planner.catalog import Catalog

    invocation = host.check_output(f"systemctl show -p InvocationID --value -- {UNIT}").strip()
    got = engine_logs.parse_llama_server(
        host.check_output(f"journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID={invocation}")
    )
    catalog = Catalog.default()
    model, quant = catalog.model("airig-tiny"), catalog.quant("FP16")
    kv = memory.kv_cache_bytes(model, "fp16", 4096, 2, engine="llama_cpp")
    assert kv == 4 * memory.MIB
    assert abs(got.total("kv") - kv) < 0.01 * memory.MIB, got
    weights = memory.engine_weights_bytes("llama_cpp", model, quant)
    # On a CPU with AMX llama.cpp also keeps a repacked copy of the output matrix: airig check
    # counts that as overhead (check.REPACKED), the mapped file as the weights.
    mapped = got.total("weights") - sum(got.weights.get(d, 0.0) for d in check.REPACKED)
    assert abs(mapped / weights - 1) < 0.01, (got, weights)


def test_prompts_stay_out_of_the_journal_at_its_verbosity(host):
    """llama_cpp_log_verbosity 4 (for the memory report above) must not log what users ask."""
    marker = "airig-private-marker-7f3a"
    req = {
        "model": "airig-tiny",
        "messages": [{"role": "user", "content": marker}],
        "max_tokens": 4,
    }
    status, _ = http(host, URL + "/v1/chat/completions", key(host, "llama_cpp"), req)
    assert status == 200
    log = host.check_output(f"journalctl --no-pager -o cat -u {UNIT}")
    assert "processing task" in log  # the verbosity is in force
    assert marker not in log
