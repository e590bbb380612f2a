"""Engine settings from the planner (airig.planner.engines and the engine_plan filter): the
flags the roles write, and the refusal when a profile's engines cannot share the GPUs."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from airig import profiles
from airig.planner.engines import EnginePlanError, engine_plan
from plugins.filter.plan import engine_plan as engine_plan_filter
from tests.conftest import overcommitted


def data(name: str) -> dict[str, Any]:
    return copy.deepcopy(profiles.load(name).raw)


def test_home_llama_cpp_flags() -> None:
    plan = engine_plan(profiles.load("home"))
    (inst,) = plan["engines"]["llama_cpp"]["instances"]
    assert inst["name"] == "qwen3-32b"
    assert inst["file"] == "qwen3-32b-Q4_K_M.gguf"
    assert inst["ctx_size"] == 32768 * 2 and inst["parallel"] == 2
    assert inst["n_gpu_layers"] == 999 and inst["tensor_split"] == "1,1"
    assert inst["flash_attn"] == "on" and inst["port"] == 8080
    assert plan["engines"]["ollama"]["enabled"] and not plan["engines"]["vllm"]["enabled"]
    assert plan["per_device_planned_gb"] <= plan["device_capacity_gb"]


@pytest.mark.parametrize(
    ("name", "tp", "ctx", "seqs"), [("business", 8, 32768, 8), ("team", 4, 131072, 8)]
)
def test_vllm_flags_from_profile(name: str, tp: int, ctx: int, seqs: int) -> None:
    vllm = engine_plan(profiles.load(name))["engines"]["vllm"]
    assert vllm["tensor_parallel_size"] == tp
    assert vllm["max_model_len"] == ctx and vllm["max_num_seqs"] == seqs
    assert vllm["gpu_memory_utilization"] == 0.9  # nothing else on the GPUs
    assert vllm["source"]


def test_cpu_profile_builds_for_cpu() -> None:
    plan = engine_plan(profiles.load("cpu"))
    (inst,) = plan["engines"]["llama_cpp"]["instances"]
    assert plan["device"] == "CPU"
    assert inst["n_gpu_layers"] == 0 and inst["tensor_split"] == ""
    assert inst["flash_attn"] == "auto"


def test_vllm_takes_what_llama_cpp_leaves() -> None:
    d = data("business")
    d["models"].append(
        {
            "name": "qwen3-32b",
            "quant": "Q4_K_M",
            "engine": "llama_cpp",
            "context": 8192,
            "concurrency": 1,
        }
    )
    plan = engine_plan(profiles.from_data(d))
    cap = plan["device_capacity_gb"]
    llama = plan["engines"]["llama_cpp"]["per_device_gb"]
    util = plan["engines"]["vllm"]["gpu_memory_utilization"]
    assert 0.05 <= util < 0.9
    assert util == int((cap - llama) / cap * 100) / 100
    assert plan["per_device_planned_gb"] <= cap


def test_engines_that_do_not_fit_together_are_refused_with_the_engine_to_shrink() -> None:
    d = overcommitted()
    with pytest.raises(EnginePlanError) as err:
        engine_plan(profiles.from_data(d))
    text = str(err.value)
    assert "models[0] llama-3.1-70b FP8 on vllm" in text
    assert "llama_cpp" in text and "shrink/disable" in text


def test_llama_cpp_and_ollama_over_the_gpus_name_the_biggest() -> None:
    d = data("home")
    d["models"] = [
        {
            "name": "qwen3-32b",
            "quant": "Q4_K_M",
            "engine": "llama_cpp",
            "context": 32768,
            "concurrency": 2,
        },
        {"name": "qwen3-32b", "quant": "Q8_0", "engine": "ollama", "context": 32768},
    ]
    with pytest.raises(EnginePlanError, match=r"Shrink ollama's models .* or disable it"):
        engine_plan(profiles.from_data(d))


def test_one_model_too_big_names_its_entry() -> None:
    d = data("home")
    d["models"] = [{"name": "llama-3.1-405b", "quant": "Q4_K_M", "engine": "llama_cpp"}]
    with pytest.raises(EnginePlanError, match=r"models\[0\] llama-3.1-405b Q4_K_M on llama_cpp"):
        engine_plan(profiles.from_data(d))


def test_two_vllm_models_are_refused() -> None:
    d = data("team")
    d["models"].append({"name": "qwen3-8b", "quant": "FP8", "engine": "vllm"})
    with pytest.raises(EnginePlanError, match="one vLLM server per box"):
        engine_plan(profiles.from_data(d))


def test_filter_takes_names_and_data_and_raises_ansible_errors() -> None:
    assert engine_plan_filter("team") == engine_plan_filter(data("team"))
    d = data("team")
    d["models"][0]["context"] = 131072
    d["models"][0]["concurrency"] = 64
    with pytest.raises(AnsibleFilterError, match="does not fit in vLLM's share"):
        engine_plan_filter(d)


def test_model_source_fields_are_validated() -> None:
    d = data("cpu")
    d["models"][0]["sha256"] = "ABC"
    with pytest.raises(profiles.ProfileError, match=r"models\[0\]\.sha256"):
        profiles.from_data(d)


def test_endpoints_for_agents() -> None:
    (ep,) = engine_plan(profiles.load("home"))["endpoints"]
    assert ep == {
        "engine": "llama_cpp",
        "model": "qwen3-32b",
        "context": 32768,
        "base_url": "http://127.0.0.1:8080/v1",
        "key": "llama_cpp",
    }
    (ep,) = engine_plan(profiles.load("team"))["endpoints"]
    assert ep["engine"] == "vllm" and ep["context"] == 131072 and ep["key"] == "vllm"
