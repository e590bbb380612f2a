"""Issue 10's input findings, each named in its test's docstring: profile values that reach
root's commands, units, env files and paths are checked for that use, and the engines' start
helper passes exactly what it was given (or refuses to start)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airig import profiles
from airig.errors import ProfileError
from tests.conftest import REPO

FILES = REPO / "roles" / "engine_common" / "files"


def home_with(**model: Any) -> dict[str, Any]:
    data = copy.deepcopy(profiles.load("home").raw)
    data["models"][0].update(model)
    return data


def vllm_profile(source: str) -> dict[str, Any]:
    data = copy.deepcopy(profiles.load("home").raw)
    data["engines"] = ["vllm"]
    data["models"] = [{"name": "qwen3-8b", "quant": "BF16", "engine": "vllm", "source": source}]
    return data


@pytest.mark.parametrize(
    "source",
    [
        "file:///etc/shadow",
        "-K/etc/shadow",
        "ftp://mirror.example/model.gguf",
        "https://",
        "https://host/a b.gguf",
        "https://host/model.gguf\nLD_PRELOAD=/tmp/x.so",
        "gopher://host/x",
        "//host/model.gguf",
    ],
)
def test_gguf_source_must_be_an_http_url(source: str) -> None:
    """Issue 10 item 4: a GGUF engine's source is an http(s) URL with a host and nothing else
    (file:// made root copy /etc/shadow into models/, -K<file> made curl read a config)."""
    with pytest.raises(ProfileError, match=r"models\[0\]\.source: bad value .*http:// or https://"):
        profiles.from_data(home_with(source=source))


def test_gguf_source_accepts_a_real_url() -> None:
    """Issue 10 item 4: the built-in Hugging Face URLs and a mirror on 127.0.0.1 pass."""
    for source in (
        "https://huggingface.co/unsloth/Qwen3-8B-GGUF/resolve/main/Qwen3-8B-Q4_K_M.gguf",
        "http://127.0.0.1:8765/models/tiny-scripted.gguf",
    ):
        profiles.from_data(home_with(source=source))


@pytest.mark.parametrize(
    "source",
    [
        "Qwen/Qwen3-8B\nLD_PRELOAD=/tmp/evil.so",
        "Qwen/Qwen3-8B\n",
        "../../etc",
        "/srv/airig/models/../../../etc",
        "/srv/airig/models//x",
        "Qwen/../x",
        "-rf",
        "a/b/c",
        "Qwen/Qwen3 8B",
    ],
)
def test_vllm_source_must_be_a_repo_id_or_a_clean_path(source: str) -> None:
    """Issue 10 item 4: a vLLM source with a newline injected lines (PATH, LD_PRELOAD) into
    vllm.env; '..' escaped the models directory. Only org/name or a normalised absolute path."""
    with pytest.raises(ProfileError, match=r"models\[0\]\.source"):
        profiles.from_data(vllm_profile(source))


def test_vllm_source_accepts_repo_ids_and_paths() -> None:
    """Issue 10 item 4: what users really write still passes."""
    for source in ("Qwen/Qwen3-8B", "openai/gpt-oss-120b", "/srv/airig/models/my-qwen"):
        profiles.from_data(vllm_profile(source))


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "-rf.gguf", "a/b.gguf", "x.gguf\n"])
def test_model_file_is_a_plain_name(name: str) -> None:
    """Issue 10 item 4: `file: ".."` passed and root then chmodded /srv/airig 0644."""
    with pytest.raises(ProfileError, match=r"models\[0\]\.file"):
        profiles.from_data(home_with(file=name))


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("gpus", "compute_capability"), "12.0\n"),
        (("name",), "home\n"),
        (("models", 0, "sha256"), "0" * 64 + "\n"),
    ],
)
def test_schema_patterns_refuse_a_trailing_newline(where: tuple[Any, ...], value: str) -> None:
    """Issue 10 item 4: Python's re.search lets `$` match before a trailing newline, so every
    schema pattern accepted "12.0\\n"; patterns now end at the end of the text."""
    data = copy.deepcopy(profiles.load("home").raw)
    node: Any = data
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = value
    with pytest.raises(ProfileError, match="expected text matching"):
        profiles.validate_data(data, "(test)")


# ---- the engines' start helper (roles/engine_common/files/airig-engine-exec) -------------


def engine_exec(tmp_path: Path, key: str | None, args: Any, *, key_mode: int = 0o600):
    key_file = tmp_path / "engine.key"
    if key is not None:
        key_file.write_text(key)
        key_file.chmod(key_mode)
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps(args))
    show = "import json, os, sys; print(json.dumps([sys.argv[1:], os.environ.get('K')]))"
    return subprocess.run(
        [sys.executable, str(FILES / "airig-engine-exec"), "--engine", "test-engine",
         "--key", str(key_file), "--key-env", "K", "--args-file", str(args_file),
         "--", sys.executable, "-c", show],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_engine_exec_passes_arguments_exactly(tmp_path: Path) -> None:
    """Issue 10 item 6: vLLM's arguments were shell-quoted into an env file and re-split by sh;
    an argument with spaces or JSON now reaches the process as it is (the unit-level proof,
    /proc/PID/cmdline under systemd, is in molecule/engine_sandbox)."""
    args = ["--override-generation-config", '{"temperature": 0.6, "top_p": 0.95}',
            "--alias", "two words", "$(id)", "'quoted'"]  # fmt: skip
    out = engine_exec(tmp_path, "k3y-0123456789\n", args)
    assert out.returncode == 0, out.stderr
    argv, env_key = json.loads(out.stdout)
    assert argv == args and env_key == "k3y-0123456789"


@pytest.mark.parametrize(("key", "why"), [(None, "cannot be read"), ("", "is empty or malformed")])
def test_engine_exec_fails_closed(tmp_path: Path, key: str | None, why: str) -> None:
    """Issue 10 item 2: no key, no start (vLLM's `$(cat key)` started it with auth off)."""
    out = engine_exec(tmp_path, key, [])
    assert out.returncode == 78 and out.stdout == ""
    assert f"test-engine refuses to start: its API key {tmp_path}/engine.key {why}" in out.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_engine_exec_fails_closed_for_an_unreadable_key(tmp_path: Path) -> None:
    """Issue 10 item 2: a root-owned 0600 key (what the proxy made) stops the engine's user."""
    tmp_path.chmod(0o755)
    key_file = tmp_path / "engine.key"
    key_file.write_text("secret-key-0123")
    key_file.chmod(0o600)
    (tmp_path / "args.json").write_text("[]")
    out = subprocess.run(
        ["runuser", "-u", "nobody", "--", "/usr/bin/python3", str(FILES / "airig-engine-exec"),
         "--engine", "vllm", "--key", str(key_file), "--args-file", str(tmp_path / "args.json"),
         "--", "/bin/true"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 78
    assert "vllm refuses to start" in out.stderr and "Permission denied" in out.stderr


def test_fetch_model_refuses_other_schemes_and_links(tmp_path: Path) -> None:
    """Issue 10 item 4: airig-fetch-model (root's curl) takes only http(s), puts `--` before the
    URL, and never writes through a planted link."""
    fetch = str(FILES / "airig-fetch-model")
    for url in ("file:///etc/hostname", "-K/etc/hostname", "https://host/a b"):
        out = subprocess.run([fetch, url, str(tmp_path / "m.gguf")], capture_output=True,
                             text=True, check=False)  # fmt: skip
        assert out.returncode == 2 and "refusing" in out.stderr, url
        assert not (tmp_path / "m.gguf").exists()
    target = tmp_path / "victim"
    target.write_text("root's file\n")
    (tmp_path / "m.gguf.part").symlink_to(target)
    out = subprocess.run([fetch, "http://127.0.0.1:9/m.gguf", str(tmp_path / "m.gguf")],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert out.returncode == 2 and "symbolic link" in out.stderr
    assert target.read_text() == "root's file\n"
    text = (FILES / "airig-fetch-model").read_text()
    assert "--proto =https,http --proto-redir =https,http" in text and '-- "$url"' in text


def test_fetch_model_never_stitches_two_sources(tmp_path: Path) -> None:
    """Issue 10 item 13: a `.part` left by a download of another source was continued, stitching
    two files together; now it is started over, and one of the same source is resumed."""
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    (served / "a.gguf").write_bytes(b"A" * 4000)
    (served / "b.gguf").write_bytes(b"B" * 3000)
    from tests.mirror.build import RangeHandler  # the test mirror's server, with byte ranges

    handler = functools.partial(RangeHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    fetch = str(FILES / "airig-fetch-model")
    dest = tmp_path / "models" / "m.gguf"
    dest.parent.mkdir()
    try:
        # An interrupted download of a.gguf, then the profile's source changes to b.gguf.
        Path(f"{dest}.part").write_bytes(b"A" * 1000)
        Path(f"{dest}.part.source").write_text(f"{base}/a.gguf\n")
        out = subprocess.run([fetch, f"{base}/b.gguf", str(dest)], capture_output=True,
                             text=True, check=False)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "came from another source; starting over" in out.stdout
        assert dest.read_bytes() == b"B" * 3000
        # The same source is resumed (curl --continue-at -), not restarted.
        dest.unlink()
        Path(f"{dest}.part").write_bytes(b"A" * 1000)
        Path(f"{dest}.part.source").write_text(f"{base}/a.gguf\n")
        out = subprocess.run([fetch, f"{base}/a.gguf", str(dest)], capture_output=True,
                             text=True, check=False)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "starting over" not in out.stdout and dest.read_bytes() == b"A" * 4000
        assert not Path(f"{dest}.part.source").exists()
    finally:
        server.shutdown()
