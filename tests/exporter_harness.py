"""Run roles/observe/files/airig_gpu_exporter.py as the observe role installs it (beside a copy
of plugins/module_utils/nvml.py named airig_nvml.py), against the NVML test double, and scrape
it over HTTP as Prometheus does. Shared by tests/test_gpu_exporter.py and bench/exporter_scrape.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXPORTER = REPO / "roles" / "observe" / "files" / "airig_gpu_exporter.py"


def install(where: Path, cgroups: dict[int, str]) -> Path:
    """The exporter and its NVML reader in ``where``; a fixture /proc tree (``where``/proc,
    a kernel's files cannot be made here) giving each pid its cgroup line."""
    where.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXPORTER, where / EXPORTER.name)
    shutil.copy(REPO / "plugins" / "module_utils" / "nvml.py", where / "airig_nvml.py")
    for pid, cgroup in cgroups.items():
        (where / "proc" / str(pid)).mkdir(parents=True, exist_ok=True)
        (where / "proc" / str(pid) / "cgroup").write_text(cgroup + "\n")
    return where


def start(where: Path, lib_dir: Path, config: Path, expected: int) -> tuple[subprocess.Popen, str]:
    """Start the installed exporter with the double playing ``config``; wait until it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {**os.environ, "LD_LIBRARY_PATH": str(lib_dir), "FAKE_NVML_CONFIG": str(config)}
    argv = [sys.executable, str(where / EXPORTER.name), "--port", str(port)]
    argv += [
        "--expected-gpus",
        str(expected),
        "--kernel-log",
        "none",
        "--proc",
        str(where / "proc"),
    ]
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 20
    while True:
        try:
            scrape(url)
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(proc.stderr.read() if proc.stderr else "") from None
            time.sleep(0.1)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())
