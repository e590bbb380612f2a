"""Ollama from a release archive (the TEST DOUBLE stand-in served by the local mirror), with the
planner's environment, a hardened unit and the test model imported from the data directory."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))

from engine_checks import (  # noqa: E402
    EXPOSURE_MAX,
    check_key_file,
    check_key_kept,
    check_loopback_only,
    check_users_file_survives,
    exposure,
    http,
    key,
)

PROXY = "https://127.0.0.1:11443"

UNIT = "airig-ollama.service"


def test_release_unpacked_with_upstream_layout(host):
    assert (
        host.file("/opt/airig/ollama/current").linked_to
        == "/opt/airig/ollama/v0.99.0-airig-standin"
    )
    assert host.file("/opt/airig/ollama/current/bin/ollama").mode == 0o755
    assert host.file("/opt/airig/ollama/current/lib/ollama").is_directory
    assert not host.file("/opt/airig/ollama/v0.99.0-airig-standin.partial").exists


def test_user_and_unit(host):
    assert host.user("airig-ollama").exists and "airig" in host.user("airig-ollama").groups
    svc = host.service(UNIT)
    assert svc.is_running and svc.is_enabled
    assert host.check_output(f"systemctl show -p User --value {UNIT}") == "airig-ollama"


def test_environment_from_the_planner(host):
    env = dict(
        line.split("=", 1)
        for line in host.file("/etc/airig/ollama/ollama.env").content_string.splitlines()
        if line and not line.startswith("#")
    )
    assert env["OLLAMA_HOST"] == "127.0.0.1:11434"
    assert env["OLLAMA_MODELS"] == "/srv/airig/models/ollama"
    # context 4096 x concurrency 2, one model
    assert env["OLLAMA_NUM_PARALLEL"] == "2" and env["OLLAMA_MAX_LOADED_MODELS"] == "1"
    assert env["OLLAMA_CONTEXT_LENGTH"] == "4096"
    assert env["OLLAMA_FLASH_ATTENTION"] == "1" and env["OLLAMA_KV_CACHE_TYPE"] == "f16"
    assert env["OLLAMA_KEEP_ALIVE"] == "30m" and env["OLLAMA_NOPRUNE"] == "1"
    # The running server got exactly that environment (the stand-in logs it at start).
    log = host.check_output(f"journalctl --no-pager -u {UNIT} -o cat")
    line = [x for x in log.splitlines() if "airig ollama stand-in serving with " in x][-1]
    started = json.loads(line.split("serving with ", 1)[1])
    assert started == env


def test_version_endpoint(host):
    status, body = http(host, "http://127.0.0.1:11434/api/version")
    assert status == 200 and json.loads(body)["version"] == "0.99.0-airig-standin"


def test_model_imported_from_the_data_directory(host):
    status, body = http(host, "http://127.0.0.1:11434/api/tags")
    models = {m["name"]: m for m in json.loads(body)["models"]}
    assert models["airig-tiny:fp16"]["from"] == "/srv/airig/models/airig-tiny.gguf"
    modelfile = host.file("/etc/airig/ollama/airig-tiny.Modelfile").content_string
    assert "FROM /srv/airig/models/airig-tiny.gguf" in modelfile
    assert "PARAMETER num_ctx 4096" in modelfile


def test_models_dir_owned_by_ollama(host):
    d = host.file("/srv/airig/models/ollama")
    assert d.user == "airig-ollama" and d.group == "airig"


def test_users_model_file_survives_the_re_run(host):
    check_users_file_survives(host)


def test_bound_to_loopback(host):
    check_loopback_only(host, 11434)


def test_hardened(host):
    assert exposure(host, UNIT) <= EXPOSURE_MAX


def test_proxy_requires_the_key_on_every_route(host):
    secret = key(host, "gateway")
    for path in ("/api/version", "/api/tags", "/v1/models", "/api/create"):
        assert http(host, PROXY + path)[0] == 401, path
        assert http(host, PROXY + path, "wrong-key")[0] == 401, path
    status, body = http(host, PROXY + "/api/version", secret)
    assert status == 200 and json.loads(body)["version"] == "0.99.0-airig-standin"


def test_proxy_passes_only_the_inference_routes(host):
    """Issue 29 item 1: with the key, Ollama's model management (create, copy, push, pull,
    delete) and its other routes get 403 over the network."""
    secret = key(host, "gateway")
    for method, path in (
        ("POST", "/api/create"),
        ("POST", "/api/copy"),
        ("POST", "/api/push"),
        ("POST", "/api/pull"),
        ("DELETE", "/api/delete"),
        ("GET", "/api/tags"),
    ):
        status, body = http(host, PROXY + path, secret, {"model": "x"}, method=method)
        assert status == 403, (method, path, status, body)
        assert "route not allowed through the proxy" in body


def test_proxy_key_and_config(host):
    # Ollama checks no key: the proxy takes the box's network key (issue 29 item 8) and sends
    # Ollama none.
    check_key_file(host, "gateway")
    check_key_kept(host, "gateway")
    assert not host.file("/srv/airig/keys/ollama.key").exists
    conf = host.file("/etc/nginx/conf.d/airig-engines.conf")
    assert conf.user == "root" and conf.mode == 0o600
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    assert host.run("nginx -t").rc == 0
