"""Issue 12 item 3: the parsers read what engines printed in published logs
(tests/data/engine_logs/, each with its source)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airig import engine_logs

LOGS = Path(__file__).resolve().parent / "data" / "engine_logs"
MIB, GIB = 2**20, 2**30


def read(name: str) -> str:
    return (LOGS / name).read_text()


def test_llama_server_old_buffer_lines() -> None:
    got = engine_logs.parse_llama_server(read("llama_server_2x3090_old.log"))
    assert got.weights == {
        "CUDA_Host": pytest.approx(510.47 * MIB),
        "CUDA0": pytest.approx(16854.41 * MIB),
        "CUDA1": pytest.approx(16892.66 * MIB),
    }
    assert got.total("weights", gpu_only=True) == pytest.approx((16854.41 + 16892.66) * MIB)


def test_llama_server_new_buffer_lines() -> None:
    got = engine_logs.parse_llama_server(read("llama_server_8gpu_new.log"))
    assert got.weights["CUDA7"] == pytest.approx(19728.83 * MIB) and len(got.weights) == 6
    assert got.kv["CUDA3"] == pytest.approx(5096.0 * MIB) and len(got.kv) == 4


def test_llama_server_kv_cells_per_sequence() -> None:
    """Not unified: each of the 2 sequences has its 131072 cells; the SWA cache follows."""
    got = engine_logs.parse_llama_server(read("llama_server_rocm_iswa.log"))
    assert (got.kv_tokens, got.sequences) == (131072, 2)
    assert got.kv == {"ROCm0": pytest.approx((9216.0 + 90.0) * MIB)}
    assert got.compute == {"ROCm_Host": pytest.approx(1.53 * MIB)}
    assert not engine_logs.host("ROCm0") and engine_logs.host("ROCm_Host")
    # llama.cpp's CPU extra buffer types are host memory too (AMX: seen in the llama_cpp scenario).
    assert all(map(engine_logs.host, ["AMX", "CPU_REPACK", "CPU_Mapped", "CUDA_Host"]))


def test_vllm_v0_profiler_sentence() -> None:
    got = engine_logs.parse_vllm(read("vllm_v0_worker.log"))
    assert got.weights == {"GPU": pytest.approx(21.21 * GIB)}
    assert got.compute == {"GPU": pytest.approx((0.20 + 0.37) * GIB)}
    assert got.kv == {"GPU": pytest.approx(1.57 * GIB)}


def test_vllm_v1_summary_and_kv_lines() -> None:
    summary = engine_logs.parse_vllm(read("vllm_v1_summary.log"))
    assert summary.weights == {"GPU": pytest.approx(8.58 * GIB)}
    assert summary.compute == {"GPU": pytest.approx((9.96 + 0.07 + 0.65) * GIB)}
    kv = engine_logs.parse_vllm(read("vllm_v1_kv.log"))
    assert kv.kv == {"GPU": pytest.approx(6.87 * GIB)}
    tokens = engine_logs.parse_vllm(read("vllm_v1_tokens.log"))
    assert tokens.kv_tokens == 1_823_372
    assert (tokens.concurrency_tokens, tokens.max_concurrency) == (1_048_576, 1.74)


def test_ollama_memory_lines_new_and_old() -> None:
    new = engine_logs.parse_ollama(read("ollama_new.log"))
    assert new.kv == {"CUDA0": pytest.approx(936.0 * MIB)}
    assert new.compute == {"CUDA0": pytest.approx(98.0 * MIB), "CPU": pytest.approx(8.0 * MIB)}
    weights = engine_logs.parse_ollama(read("ollama_new_weights.log"))
    assert weights.total("weights", gpu_only=True) == pytest.approx((11.5 + 11.9) * GIB)
    old = engine_logs.parse_ollama(read("ollama_old.log"))
    assert old.kv == {"GPU": pytest.approx(992.0 * MIB)}
    assert old.weights == {"GPU": pytest.approx(6.8 * GIB)}


def test_ollama_running_llama_server_falls_back_to_its_lines() -> None:
    got = engine_logs.parse_ollama(read("llama_server_rocm_iswa.log"))
    assert got.engine == "ollama" and got.kv_tokens == 131072


def test_nothing_recognised_is_said() -> None:
    assert not engine_logs.parse_llama_server("hello\nworld").found
