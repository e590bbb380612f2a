"""What an engine really allocated, read from the lines it prints at start-up (issue 12 item 3).

llama-server (old and new names of its buffer lines), vLLM (the v0 profiler's sentence, v1's
"Model loading took", "Available KV cache memory", "GPU KV cache size", and the
"Actual usage is ..." summary) and Ollama (its "model weights"/"kv cache"/"compute graph" lines,
and the older `msg=offload ... memory.*` line). Formats are from published logs, stored with
their sources in tests/data/engine_logs/.

Sizes are bytes. Devices are the engine's own names (CUDA0, ROCm1, CPU, CPU_Mapped, CUDA_Host);
``host`` tells which of them are host memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "KB": 1e3, "MB": 1e6, "GB": 1e9}
_SIZE = r"([0-9][0-9.]*)\s*(B|KiB|MiB|GiB|KB|MB|GB)"


def size(number: str, unit: str) -> float:
    return float(number) * UNITS[unit]


_GPU = re.compile(r"(?:(?:CUDA|ROCm|HIP|Vulkan|SYCL|MUSA|CANN|Metal|OpenCL)\d+|GPU)")


def host(device: str) -> bool:
    """Host memory, not a GPU's: CPU, CPU_Mapped, CPU_REPACK, AMX, CUDA_Host, ROCm_Host (a GPU
    is CUDA0, ROCm1, Vulkan0, ...; vLLM's figures are the GPU's)."""
    return not _GPU.fullmatch(device)


@dataclass
class EngineMemory:
    """Bytes per device for each kind of allocation, and what the KV cache can hold."""

    engine: str
    weights: dict[str, float] = field(default_factory=dict)
    kv: dict[str, float] = field(default_factory=dict)
    compute: dict[str, float] = field(default_factory=dict)
    # Tokens each sequence can keep (llama.cpp cells per stream; vLLM: the whole pool).
    kv_tokens: int | None = None
    sequences: int | None = None
    # vLLM's "Maximum concurrency for N tokens per request: X".
    max_concurrency: float | None = None
    concurrency_tokens: int | None = None

    @property
    def found(self) -> bool:
        """Whether the text held any memory report at all."""
        return bool(self.weights or self.kv or self.compute) or self.kv_tokens is not None

    def add(self, kind: str, device: str, nbytes: float) -> None:
        table: dict[str, float] = getattr(self, kind)
        table[device] = table.get(device, 0.0) + nbytes

    def total(self, kind: str, gpu_only: bool = False) -> float:
        table: dict[str, float] = getattr(self, kind)
        return sum(v for d, v in table.items() if not (gpu_only and host(d)))


# --- llama-server ------------------------------------------------------------------------------
# new: "load_tensors:        CUDA0 model buffer size = 16854.41 MiB"
#      "llama_kv_cache:        CPU KV buffer size =    32.00 MiB"
#      "llama_context:        CPU compute buffer size =   304.75 MiB"
#      "llama_context:  CPU_Host  output buffer size =     0.58 MiB"
# old: "llm_load_tensors:      CUDA0 buffer size = 16854.41 MiB"
#      "llama_kv_cache_init:      CUDA0 KV buffer size =  2560.00 MiB"
#      "llama_new_context_with_model:      CUDA0 compute buffer size =   266.00 MiB"
#      "sched_reserve:      CUDA0 compute buffer size =   354.00 MiB" (2026)
_LLAMA_BUFFER = re.compile(
    r"(?P<where>\w+):\s+(?P<device>[A-Za-z][A-Za-z0-9_]*)\s+"
    r"(?P<kind>model |KV |compute |output )?buffer size\s*=\s*" + _SIZE
)
_LLAMA_WEIGHTS = ("load_tensors", "llm_load_tensors")
# "llama_kv_cache: size = 9216.00 MiB (131072 cells,  18 layers,  2/2 seqs), K (f16): ..."
_LLAMA_CELLS = re.compile(
    r"llama_kv_cache\w*: size = .*?\(\s*(\d+) cells,\s*\d+ layers,\s*\d+/(\d+) seqs"
)
_LLAMA_UNIFIED = re.compile(r"kv_unified\s*=\s*(true|false)")


def parse_llama_server(text: str) -> EngineMemory:
    out = EngineMemory("llama_cpp")
    cells: list[tuple[int, int]] = []
    unified = False
    for line in text.splitlines():
        if m := _LLAMA_BUFFER.search(line):
            where, kind = m["where"], (m["kind"] or "").strip()
            nbytes = size(m[4], m[5])
            if kind == "KV" or where.startswith("llama_kv_cache"):
                out.add("kv", m["device"], nbytes)
            elif kind in ("compute", "output"):
                out.add("compute", m["device"], nbytes)
            elif where in _LLAMA_WEIGHTS:
                out.add("weights", m["device"], nbytes)
        elif m := _LLAMA_CELLS.search(line):
            cells.append((int(m[1]), int(m[2])))
        elif m := _LLAMA_UNIFIED.search(line):
            unified = m[1] == "true"
    if cells:
        # The first cache printed is the full-attention one (the sliding-window one follows).
        count, seqs = cells[0]
        out.kv_tokens = count // seqs if unified else count
        out.sequences = seqs
    return out


# --- vLLM ----------------------------------------------------------------------------------------
_VLLM_WEIGHTS = re.compile(r"Model loading took ([0-9.]+) ?(GiB|GB)")
_VLLM_WEIGHTS_V0 = re.compile(r"Loading model weights took ([0-9.]+) ?(GiB|GB)")
_VLLM_AVAILABLE = re.compile(r"Available KV cache memory: (-?[0-9.]+) ?GiB")
_VLLM_TOKENS = re.compile(r"GPU KV cache size: ([0-9,]+) tokens")
_VLLM_CONCURRENCY = re.compile(r"Maximum concurrency for ([0-9,]+) tokens per request: ([0-9.]+)x")
_VLLM_ACTUAL = re.compile(
    r"Actual usage is ([0-9.]+) GiB for weight, ([0-9.]+) GiB for peak activation, "
    r"(-?[0-9.]+) GiB for non-torch memory, and ([0-9.]+) GiB for CUDAGraph memory"
)
_VLLM_V0 = re.compile(
    r"model weights take ([0-9.]+) ?GiB; non_torch_memory takes (-?[0-9.]+) ?GiB; PyTorch "
    r"activation peak memory takes ([0-9.]+) ?GiB; the rest of the memory reserved for KV "
    r"Cache is (-?[0-9.]+) ?GiB"
)
GIB = UNITS["GiB"]


def parse_vllm(text: str) -> EngineMemory:
    """Per worker (vLLM prints the same figures on every tensor-parallel rank: the first is
    kept, as device "GPU")."""
    out = EngineMemory("vllm")
    dev = "GPU"
    for line in text.splitlines():
        if (m := _VLLM_WEIGHTS.search(line) or _VLLM_WEIGHTS_V0.search(line)) and not out.weights:
            out.add("weights", dev, float(m[1]) * GIB)  # v0 printed GiB as "GB"
        elif (m := _VLLM_ACTUAL.search(line)) and not out.compute:
            out.weights = {dev: float(m[1]) * GIB}
            out.add("compute", dev, (float(m[2]) + float(m[3]) + float(m[4])) * GIB)
        elif (m := _VLLM_V0.search(line)) and not out.kv:
            out.weights = {dev: float(m[1]) * GIB}
            out.add("compute", dev, (float(m[2]) + float(m[3])) * GIB)
            out.add("kv", dev, float(m[4]) * GIB)
        elif (m := _VLLM_AVAILABLE.search(line)) and not out.kv:
            out.add("kv", dev, float(m[1]) * GIB)
        elif (m := _VLLM_TOKENS.search(line)) and out.kv_tokens is None:
            out.kv_tokens = int(m[1].replace(",", ""))
        elif (m := _VLLM_CONCURRENCY.search(line)) and out.max_concurrency is None:
            out.concurrency_tokens = int(m[1].replace(",", ""))
            out.max_concurrency = float(m[2])
    return out


# --- Ollama --------------------------------------------------------------------------------------
# msg="model weights" device=CUDA0 size="11.5 GiB"  (or buffer=CUDA0)
# msg="kv cache" device=CUDA0 size="936.0 MiB";  msg="compute graph" device=CUDA0 size="98.0 MiB"
_OLLAMA_NEW = re.compile(
    r'msg="(model weights|kv cache|compute graph)" (?:device|buffer|backend)=(\S+)'
    r'(?: buffer_type=\S+)? size="' + _SIZE + '"'
)
# msg=offload ... memory.required.kv="992.0 MiB" ... memory.weights.total="6.8 GiB" ...
_OLLAMA_OLD = re.compile(r"msg=offload .*memory\.required\.kv=\"" + _SIZE)
_OLLAMA_OLD_WEIGHTS = re.compile(r"memory\.weights\.total=\"" + _SIZE)
_OLLAMA_OLD_GRAPH = re.compile(r"memory\.graph\.full=\"" + _SIZE)
_OLLAMA_KINDS = {"model weights": "weights", "kv cache": "kv", "compute graph": "compute"}


def parse_ollama(text: str) -> EngineMemory:
    """Ollama runs llama.cpp for some models: its buffer lines count too (llama.cpp's parser)."""
    out = EngineMemory("ollama")
    for line in text.splitlines():
        if m := _OLLAMA_NEW.search(line):
            out.add(_OLLAMA_KINDS[m[1]], m[2], size(m[3], m[4]))
        elif m := _OLLAMA_OLD.search(line):
            out.add("kv", "GPU", size(m[1], m[2]))
            if w := _OLLAMA_OLD_WEIGHTS.search(line):
                out.add("weights", "GPU", size(w[1], w[2]))
            if g := _OLLAMA_OLD_GRAPH.search(line):
                out.add("compute", "GPU", size(g[1], g[2]))
    if not out.found:
        llama = parse_llama_server(text)
        llama.engine = "ollama"
        return llama
    return out


PARSERS = {"llama_cpp": parse_llama_server, "vllm": parse_vllm, "ollama": parse_ollama}
