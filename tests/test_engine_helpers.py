"""The engine roles' helper scripts, run for real: airig-gpu-wait against the NVML TEST DOUBLE
(loaded by the real pynvml), and airig-fetch-model against a local HTTP server with ranges."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.mirror.build import RangeHandler
from tests.nvml_double import FIXTURES

FILES = REPO / "roles" / "engine_common" / "files"


def gpu_wait(lib: Path, box: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LD_LIBRARY_PATH": str(lib)}
    if box:
        env["FAKE_NVML_CONFIG"] = str(FIXTURES / f"{box}.json")
    return subprocess.run(
        [sys.executable, str(FILES / "airig-gpu-wait"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_gpu_wait_passes_when_nvml_sees_the_gpus(fake_nvml_dir: Path) -> None:
    run = gpu_wait(fake_nvml_dir, "home", "--count", "2", "--engine", "vllm", "--timeout", "5")
    assert run.returncode == 0, run.stderr
    assert "2 GPU(s) ready for vllm" in run.stdout


def test_gpu_wait_refuses_to_start_on_the_cpu(fake_nvml_dir: Path) -> None:
    run = gpu_wait(
        fake_nvml_dir, "home_gpu_missing", "--count", "2", "--engine", "vllm", "--timeout", "1"
    )
    assert run.returncode == 1
    assert "vllm needs 2 GPU(s)" in run.stderr and "NVML sees 1 GPU(s)" in run.stderr
    assert "Refusing to start on the CPU" in run.stderr


def test_gpu_wait_checks_the_model(fake_nvml_dir: Path) -> None:
    run = gpu_wait(
        fake_nvml_dir, "home", "--count", "2", "--model", "NVIDIA H100 80GB HBM3", "--timeout", "0"
    )
    assert run.returncode == 1 and "needs 2 x NVIDIA H100 80GB HBM3" in run.stderr


def test_gpu_wait_reports_a_missing_driver(tmp_path: Path) -> None:
    run = gpu_wait(tmp_path, None, "--count", "1", "--timeout", "0")
    assert run.returncode == 1 and "NVML:" in run.stderr


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


def fetch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(FILES / "airig-fetch-model"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_fetch_resumes_a_partial_download_and_checks_it(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = served
    data = os.urandom(300_000)
    (root / "m.gguf").write_bytes(data)
    dest = tmp_path / "models" / "m.gguf"
    dest.parent.mkdir()
    Path(f"{dest}.part").write_bytes(data[:100_000])  # an interrupted earlier run
    run = fetch(f"{url}/m.gguf", str(dest), hashlib.sha256(data).hexdigest())
    assert run.returncode == 0, run.stderr
    assert dest.read_bytes() == data and not Path(f"{dest}.part").exists()
    assert "sha256 verified" in run.stdout


def test_fetch_rejects_a_wrong_checksum_and_leaves_nothing(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = served
    (root / "m.gguf").write_bytes(b"not the model you wanted")
    dest = tmp_path / "m.gguf"
    run = fetch(f"{url}/m.gguf", str(dest), "0" * 64)
    assert run.returncode == 3
    assert "sha256 mismatch" in run.stderr and "Fix the profile's sha256" in run.stderr
    assert not dest.exists() and not Path(f"{dest}.part").exists()
