"""Write airig's Grafana dashboard (roles/observe/files/grafana/airig.json) from code, with
grafana-foundation-sdk, for people who run Grafana elsewhere and point it at a box's
Prometheus. The observe role installs the JSON beside the alert rules; tests/test_dashboard.py
checks that the committed file is what this code writes and that every query parses.

  python scripts/grafana_dashboard.py            # rewrite the JSON
"""

from __future__ import annotations

import json
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUT = (
    Path(__file__).resolve().parent.parent
    / "roles"
    / "observe"
    / "files"
    / "grafana"
    / "airig.json"
)
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")

# (row, title, unit, [(expr, legend)]): what a person asks of the box, in that order.
PANELS = [
    ("GPUs", "Temperature", "celsius", [("airig_gpu_temperature_celsius", "GPU {{gpu}}")]),
    ("GPUs", "Power and its limit", "watt", [
        ("airig_gpu_power_watts", "GPU {{gpu}}"),
        ("airig_gpu_power_limit_watts", "GPU {{gpu}} limit"),
    ]),
    ("GPUs", "Memory used", "bytes", [
        ("airig_gpu_memory_used_bytes", "GPU {{gpu}}"),
        ("airig_gpu_memory_total_bytes", "GPU {{gpu}} total"),
    ]),
    ("GPUs", "Utilisation", "percentunit", [("airig_gpu_utilization_ratio", "GPU {{gpu}}")]),
    ("GPUs", "SM clock", "hertz", [("airig_gpu_sm_clock_hertz", "GPU {{gpu}}")]),
    ("GPUs", "Why clocks are lowered", "short", [
        ("airig_gpu_clock_event_reason == 1", "GPU {{gpu}} {{reason}}"),
    ]),
    ("GPUs", "Memory per engine", "bytes", [
        ("sum by (unit) (airig_gpu_process_memory_bytes)", "{{unit}}"),
    ]),
    ("GPUs", "Errors", "short", [
        ("increase(airig_gpu_xid_errors_total[1h])", "XID {{xid}} at {{pci}}"),
        ('airig_gpu_ecc_errors_total{type="uncorrected"}', "GPU {{gpu}} uncorrectable ECC"),
        ("airig_gpus_expected - airig_gpus_present", "GPUs missing"),
    ]),
    ("Engines", "Tokens per second", "short", [
        ("rate(llamacpp:tokens_predicted_total[5m])", "llama.cpp {{model}} generated"),
        ("rate(llamacpp:prompt_tokens_total[5m])", "llama.cpp {{model}} prompt"),
        ("rate(vllm:generation_tokens_total[5m])", "vLLM generated"),
        ("rate(vllm:prompt_tokens_total[5m])", "vLLM prompt"),
    ]),
    ("Engines", "Requests running and waiting", "short", [
        ("llamacpp:requests_processing", "llama.cpp {{model}} running"),
        ("llamacpp:requests_deferred", "llama.cpp {{model}} waiting"),
        ("vllm:num_requests_running", "vLLM running"),
        ("vllm:num_requests_waiting", "vLLM waiting"),
    ]),
    ("Engines", "vLLM KV cache in use", "percentunit", [("vllm:kv_cache_usage_perc", "vLLM")]),
    ("Engines", "Up", "short", [("up", "{{job}} {{instance}}")]),
    ("Host", "CPU busy", "percentunit", [
        ('1 - avg(rate(node_cpu_seconds_total{mode="idle"}[5m]))', "CPU"),
    ]),
    ("Host", "Memory available", "bytes", [("node_memory_MemAvailable_bytes", "available")]),
    ("Host", "Disk free", "percentunit", [
        (
            'node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"}'
            ' / node_filesystem_size_bytes{fstype!~"tmpfs|overlay|squashfs"}',
            "{{mountpoint}}",
        ),
    ]),
]  # fmt: skip


def build() -> dict[str, object]:
    board = (
        dashboard.Dashboard("airig box")
        .uid("airig-box")
        .tags(["airig"])
        .refresh("30s")
        .time("now-6h", "now")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
        )
    )
    row = None
    for section, title, unit, queries in PANELS:
        if section != row:
            board = board.with_row(dashboard.Row(section))
            row = section
        panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).height(8).span(8)
        for ref, (expr, legend) in zip("ABCDEFGH", queries, strict=False):
            panel = panel.with_target(
                prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)
            )
        board = board.with_panel(panel)
    data: dict[str, object] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return data


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
