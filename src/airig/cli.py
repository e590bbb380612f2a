"""The airig command line: thin functions that parse options, call the library, render results.

Exit codes: 0 success; 1 a plan in which nothing fits (plan --fail-if-none) or a runtime error;
2 bad input (unknown model/format/profile, malformed profile or model file, bad option value).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from airig import __version__, profiles
from airig.errors import AirigError, InputError

if TYPE_CHECKING:
    from airig.planner import PlanRequest, PlanRow

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    name="airig",
    help="Provision and verify Personal AI Computers, and plan which models fit them.",
    epilog=(
        "Examples: airig plan -p home; airig plan --hf-config ~/models/DeepSeek-V3 -p team; "
        "airig doctor -p business; airig provision -p home --check --diff; airig verify; "
        "airig models --json"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=HELP_OPTIONS,
)
profiles_app = typer.Typer(
    help="List and show build profiles.", no_args_is_help=False, context_settings=HELP_OPTIONS
)
app.add_typer(profiles_app, name="profiles")

# No markup parsing of what is printed: profile values, file names and task messages are user
# text ("[/x]" in one crashed every command). Styles are given explicitly (Text, style=).
out = Console(markup=False)
err = Console(stderr=True, markup=False)

ProfilesDir = Annotated[
    list[Path] | None,
    typer.Option(
        "--profiles-dir",
        help="Extra directory of profile YAML files (repeatable).",
        show_default=False,
    ),
]


@contextmanager
def _user_errors(as_json: bool = False) -> Iterator[None]:
    """An AirigError as one sentence on stderr and its exit code; with --json also as
    {"error": ..., "exit_code": ...} on stdout, so a script reading JSON gets JSON."""
    try:
        yield
    except AirigError as exc:
        if as_json:
            typer.echo(json.dumps({"error": str(exc), "exit_code": exc.exit_code}))
        # User text (a profile value, a file name) may hold rich markup such as "[/x]": escaped.
        err.print(Text("error: ", style="bold red") + Text(str(exc)), soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


def _version(value: bool) -> None:
    if value:
        out.print(f"airig {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """airig: one command from a fresh box to a private AI computer."""


@profiles_app.callback(invoke_without_command=True)
def profiles_list(
    ctx: typer.Context,
    profiles_dir: ProfilesDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the build profiles airig knows (built-in and your own)."""
    if ctx.invoked_subcommand is not None:
        return
    with _user_errors():
        loaded = profiles.load_all(tuple(profiles_dir or ()))
    if as_json:
        listing = [{"name": p.name, "summary": p.summary, "file": str(p.source)} for p in loaded]
        typer.echo(json.dumps(listing, indent=2))
        return
    table = Table(title="Build profiles", title_justify="left")
    for col in ("name", "hardware", "engines", "driver", "file"):
        table.add_column(col, overflow="fold")  # wrap, never cut a path to "…"
    for p in loaded:
        driver = f">= {p.driver_min_branch}" if p.driver_min_branch else "-"
        table.add_row(p.name, p.summary, ", ".join(p.engines), driver, str(p.source))
    out.print(table)


@profiles_app.command("show")
def profiles_show(
    name: Annotated[str, typer.Argument(help="Profile name or path to a profile file.")],
    profiles_dir: ProfilesDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print one profile, validated."""
    import yaml

    with _user_errors():
        profile = profiles.load(name, tuple(profiles_dir or ()))
    if as_json:
        typer.echo(json.dumps(profile.raw, indent=2))
        return
    # The profile's own text, never wrapped to the terminal: `show home > my.yml` is valid YAML.
    typer.echo(f"# {profile.source}")
    if profile.source is not None:
        typer.echo(profile.source.read_text(encoding="utf-8"), nl=False)
    else:
        typer.echo(yaml.safe_dump(profile.raw, sort_keys=False), nl=False)


@profiles_app.command("new")
def profiles_new(
    name: Annotated[str, typer.Argument(help="The new profile's name (a-z, 0-9, - and _).")],
    from_profile: Annotated[
        str, typer.Option("--from", help="The profile to copy (name or file).")
    ] = "home",
    profiles_dir: ProfilesDir = None,
) -> None:
    """Write a copy of a profile as NAME in your profiles directory, to edit (an example:
    airig profiles new lab --from home)."""
    import re

    with _user_errors():
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", name):
            raise InputError(
                f"profile name {name!r}: use lower-case letters, digits, '-' and '_' "
                "(starting with a letter or digit)"
            )
        dirs = tuple(profiles_dir or ())
        source = profiles.load(from_profile, dirs)
        target_dir = dirs[0] if dirs else profiles.USER_DIR.expanduser()
        target = target_dir / f"{name}.yml"
        if target.exists():
            raise InputError(f"{target} exists: remove it first or pick another name")
        if source.source is None:
            raise InputError(f"profile {from_profile} has no file to copy")
        lines = source.source.read_text(encoding="utf-8").splitlines(keepends=True)
        pattern = re.compile(rf"^name:\s*{re.escape(source.name)}\s*$")
        copied = [f"name: {name}\n" if pattern.match(line) else line for line in lines]
        if copied == lines:
            raise InputError(f"{source.source}: no top-level 'name: {source.name}' line to change")
        target_dir.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(copied), encoding="utf-8")
        profiles.load(str(target), dirs)  # the copy validates as a profile
    out.print(f"wrote {target} (a copy of {source.name}); edit it, then: airig plan -p {name}")


@app.command("models")
def models_list(
    models_file: Annotated[Path | None, typer.Option("--models", help="Extra model file.")] = None,
    quants: Annotated[bool, typer.Option("--quants", help="List quantization formats.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the model catalog (or the quantization formats). Example: airig models --quants"""
    from dataclasses import asdict

    from airig.planner.catalog import Catalog

    with _user_errors():
        catalog = Catalog.default()
        if models_file:
            catalog = catalog.with_model_file(models_file)
    if as_json:
        items = catalog.quants if quants else catalog.models
        typer.echo(json.dumps([asdict(i) for i in items], indent=2))
        return
    console = _plan_console()
    if quants:
        table = Table(title="Quantization formats", title_justify="left")
        table.add_column("format", no_wrap=True)
        for col in ("bits/weight", "applies to", "engines", "source"):
            table.add_column(col)
        for q in catalog.quants:
            table.add_row(q.name, f"{q.bpw:g}", q.scope, ", ".join(q.engines), q.source)
        console.print(table)
        return
    table = Table(title="Model catalog", title_justify="left")
    # A name is never cut or broken: the other columns give way.
    longest = max((len(m.name) for m in catalog.models), default=5)
    table.add_column("model", no_wrap=True, min_width=longest)
    for col in ("params (B)", "layers", "heads/kv", "head dim", "max context"):
        table.add_column(col)
    for m in catalog.models:
        active = f" ({m.active_params_b:.4g} active)" if m.active_params_b else ""
        table.add_row(
            m.name,
            f"{m.params_b:.4g}{active}",
            str(m.layers),
            f"{m.heads}/{m.kv_heads}",
            str(m.head_dim),
            f"{m.max_context:,}",
        )
    console.print(table)


@app.command("plan")
def plan_cmd(
    profile: Annotated[
        list[str] | None,
        typer.Option(
            "--profile",
            "-p",
            help="Profile name or file (repeatable; 'all' for every profile). "
            "Default: home, business, team.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Model from the catalog (repeatable). Default: the whole catalog.",
            show_default=False,
        ),
    ] = None,
    quant: Annotated[
        list[str] | None,
        typer.Option(
            "--quant",
            "-q",
            help="Format (repeatable; 'all'). Default: Q4_K_M, Q8_0, FP16 "
            "(rule of thumb: Q4, Q8, FP16).",
            show_default=False,
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            help="architecture (weights + KV cache + overhead) or "
            "rule-of-thumb (params x bytes x 1.2)."
        ),
    ] = "architecture",
    context: Annotated[
        int, typer.Option(help="Tokens per sequence for the fit test and for max concurrency.")
    ] = 8192,
    concurrency: Annotated[
        int, typer.Option(help="Concurrent sequences (users) for the fit test and for max context.")
    ] = 1,
    kv_dtype: Annotated[
        str,
        typer.Option(
            "--kv-dtype", "--kv-cache-dtype", help="KV cache type: fp16, bf16, fp8, q8_0, q4_0."
        ),
    ] = "fp16",
    engine: Annotated[
        str | None,
        typer.Option(help="Force an engine: llama_cpp, vllm, ollama. Default: the format's own."),
    ] = None,
    gpu_memory_utilization: Annotated[float, typer.Option(help="vLLM's share of each GPU.")] = 0.9,
    params: Annotated[
        float | None,
        typer.Option(
            help="Plan an unknown model by size in billions (shape borrowed from the nearest "
            "catalog model).",
            show_default=False,
        ),
    ] = None,
    models_file: Annotated[
        Path | None,
        typer.Option("--models", help="YAML file with extra models (same format as the catalog)."),
    ] = None,
    profiles_dir: ProfilesDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Also write a PNG figure here.")] = None,
    fits_only: Annotated[
        bool, typer.Option("--fits-only", help="Show only rows that fit.")
    ] = False,
    wide: Annotated[
        bool,
        typer.Option(
            "--wide",
            help="Every column (weights, KV, overhead, capacity, free, why not); the default "
            "table fits 80 columns.",
        ),
    ] = False,
    calibration: Annotated[
        Path | None,
        typer.Option(
            help="A box's calibration.json (airig check): show its measured totals beside. "
            "On a provisioned box its own is shown for its profile unasked.",
            show_default=False,
        ),
    ] = None,
    no_calibration: Annotated[
        bool,
        typer.Option("--no-calibration", help="The plan alone, without this box's measurements."),
    ] = False,
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            "-i",
            help="A fleet's Ansible inventory: which models its boxes (group 'boxes') serve, "
            "for how many users in total, and how many the gateway reaches.",
            show_default=False,
        ),
    ] = None,
    gpu: Annotated[
        str | None,
        typer.Option(
            help='Plan for cards of this kind without a profile, e.g. "RTX 4090" (with --gpus).',
            show_default=False,
        ),
    ] = None,
    gpus_count: Annotated[int, typer.Option("--gpus", help="How many --gpu cards.")] = 1,
    ram_gb: Annotated[
        float | None,
        typer.Option(
            "--ram-gb",
            help="With --gpu: the host's memory in GB (for experts in RAM).",
            show_default=False,
        ),
    ] = None,
    hf_config: Annotated[
        Path | None,
        typer.Option(
            "--hf-config",
            help="Plan a model from its own Hugging Face config.json (or a directory holding "
            "one); its quantization_config is the format 'checkpoint'.",
            show_default=False,
        ),
    ] = None,
    gguf_file: Annotated[
        Path | None,
        typer.Option(
            "--gguf",
            help="Plan a GGUF file from its own header and tensor table (format 'gguf').",
            show_default=False,
        ),
    ] = None,
    max_num_batched_tokens: Annotated[
        int | None,
        typer.Option(
            help="vLLM --max-num-batched-tokens (airig's roles: 2048).", show_default=False
        ),
    ] = None,
    max_num_seqs: Annotated[
        int | None,
        typer.Option(
            help="vLLM --max-num-seqs (airig's roles: --concurrency).", show_default=False
        ),
    ] = None,
    enforce_eager: Annotated[
        bool, typer.Option("--enforce-eager", help="vLLM --enforce-eager: no CUDA graphs.")
    ] = False,
    tensor_parallel_size: Annotated[
        int | None,
        typer.Option(
            "--tensor-parallel-size",
            "-tp",
            help="vLLM tensor parallel size (default: every GPU).",
            show_default=False,
        ),
    ] = None,
    pipeline_parallel_size: Annotated[
        int, typer.Option("--pipeline-parallel-size", "-pp", help="vLLM pipeline stages.")
    ] = 1,
    data_parallel_size: Annotated[
        int, typer.Option("--data-parallel-size", "-dp", help="vLLM data parallel replicas.")
    ] = 1,
    enable_expert_parallel: Annotated[
        bool,
        typer.Option(
            "--enable-expert-parallel", help="vLLM: spread experts over tensor x data parallel."
        ),
    ] = False,
    vllm_version: Annotated[
        str | None,
        typer.Option(help="The vLLM release whose memory profile to assume (default: the role's)."),
    ] = None,
    n_cpu_moe: Annotated[
        int | None,
        typer.Option(
            help="llama.cpp --n-cpu-moe: experts of the first N layers in system RAM (default: "
            "none, or as few as fit when VRAM is short).",
            show_default=False,
        ),
    ] = None,
    ubatch_size: Annotated[
        int | None,
        typer.Option(help="llama.cpp --ubatch-size (default 512).", show_default=False),
    ] = None,
    across_boxes: Annotated[
        int,
        typer.Option(
            "--across-boxes",
            help="Split each model with vLLM over up to N identical boxes of the profile "
            "(tensor parallel in a box, pipeline parallel across boxes): how many it needs.",
            show_default=False,
        ),
    ] = 0,
) -> None:
    """Which models fit which build, at which quantization, with how much context for how
    many users. GB = 10^9 bytes. With -i INVENTORY: what a fleet serves."""
    from airig.planner import PlanRequest, plan
    from airig.planner.catalog import Catalog
    from airig.planner.fit import DEFAULT_QUANTS

    if plot is not None and (inventory is not None or across_boxes):
        with _user_errors():
            raise InputError(
                "--plot draws the plan of boxes (profiles or --gpu); it does not apply with "
                "-i/--inventory or --across-boxes"
            )
    if inventory is not None:
        _plan_fleet(inventory, as_json)
        return
    notes: list[str] = []
    with _user_errors(as_json):
        catalog = Catalog.default()
        if models_file:
            catalog = catalog.with_model_file(models_file)
        chosen = [catalog.model(name) for name in model or ()]
        if params is not None:
            custom = catalog.model_by_size(params)
            catalog = catalog.with_models([custom])
            chosen.append(custom)
        own_quants: list[str] = []
        for described in _described_models(hf_config, gguf_file):
            catalog = catalog.with_models([described.model], described.quants)
            chosen.append(described.model)
            own_quants += [q.name for q in described.quants]
            notes.extend(f"{described.model.name}: {n}" for n in described.notes)
        if own_quants and not quant:
            quant = own_quants
        dirs = tuple(profiles_dir or ())
        names = list(profile or profiles.REFERENCE_BUILDS)
        if any(n == "all" for n in names):
            names = list(profiles.discover(dirs))
        if gpu is not None:
            from airig import gpus

            if profile:
                raise InputError("-p/--profile and --gpu: give one of them, not both")
            planned: tuple[profiles.Profile, ...] = (gpus.profile(gpu, gpus_count, ram_gb),)
        else:
            planned = tuple(profiles.load(n, dirs) for n in names)
        request = PlanRequest(
            models=tuple(chosen or catalog.models),
            quants=tuple(quant) if quant else DEFAULT_QUANTS.get(method, ("Q4_K_M",)),
            profiles=planned,
            method=method,
            context=context,
            concurrency=concurrency,
            kv_dtype=kv_dtype,
            engine=engine,
            gpu_memory_utilization=gpu_memory_utilization,
            max_num_batched_tokens=max_num_batched_tokens,
            max_num_seqs=max_num_seqs,
            enforce_eager=enforce_eager,
            tensor_parallel=tensor_parallel_size,
            pipeline_parallel=pipeline_parallel_size,
            data_parallel=data_parallel_size,
            expert_parallel=enable_expert_parallel,
            vllm_version=vllm_version,
            n_cpu_moe=n_cpu_moe,
            ubatch=ubatch_size,
        )
        if across_boxes:
            _plan_across_boxes(request, catalog, across_boxes, as_json)
            return
        if plot:
            _check_plot_path(plot)
        rows = plan(request, catalog)
        measured = _measured(calibration, no_calibration)
        if plot:
            from airig.planner.plot import render

            try:
                render(rows, catalog.models, plot)
            except OSError as exc:
                raise InputError(f"--plot: cannot write {plot}: {exc.strerror}") from exc
    shown = [r for r in rows if r.fits] if fits_only else rows
    if notes:
        shown = [replace(r, notes=(*notes, *r.notes)) for r in shown]
    if as_json:
        typer.echo(json.dumps([_row_dict(r, measured) for r in shown], indent=2))
        return
    for note in notes:
        out.print(note, highlight=False, soft_wrap=True)
    _render_plan(shown, request, wide, measured)
    if plot:
        out.print(f"figure written to {plot}")


def _described_models(hf_config: Path | None, gguf_file: Path | None) -> list[Any]:
    """Models from --hf-config / --gguf, each with its own format and what was noticed."""
    from airig.planner import described

    found = []
    if hf_config is not None:
        found.append(described.from_hf_config(hf_config))
    if gguf_file is not None:
        found.append(described.from_gguf(gguf_file))
    return found


def _plan_across_boxes(request: Any, catalog: Any, max_boxes: int, as_json: bool) -> None:
    from airig.planner import multinode

    if not 1 <= max_boxes <= 64:
        raise InputError(f"--across-boxes: bad value {max_boxes}: expected 1-64 boxes")
    results = []
    for prof in request.profiles:
        for model in request.models:
            for quant in request.quants:
                rows = multinode.plan_nodes(model, quant, prof, request, max_boxes, catalog)
                results.append(rows)
    if as_json:
        typer.echo(json.dumps([[r.to_dict() for r in rows] for rows in results], indent=2))
        return
    for rows in results:
        last = rows[-1]
        out.print(multinode.describe(rows), highlight=False)
        for r in rows[:-1]:
            out.print(f"  {r.nodes} box(es): {r.reason}", highlight=False, style="dim")
        for note in last.network:
            out.print(f"  network: {note}", highlight=False)
        if last.fits and last.nodes > 1:
            for rank in range(last.nodes):
                flags = " ".join(multinode.vllm_flags(last, rank, "HEAD_ADDRESS"))
                out.print(f"  box {rank}: vllm serve ... {flags}", highlight=False)


@app.command("verify")
def verify_cmd(
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            "-p",
            help="Profile name or file, or 'auto' to find the one this machine matches.",
        ),
    ] = "auto",
    profiles_dir: ProfilesDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    memory_tolerance_pct: Annotated[
        float | None,
        typer.Option(
            help="How far a GPU's memory may sit from the profile's, in percent. Default 5.",
            show_default=False,
        ),
    ] = None,
    advisory: Annotated[
        list[str] | None,
        typer.Option(
            help="A check that only warns (repeatable). Default: pcie_generation, "
            "persistence_mode.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Verify this machine's GPUs against a build profile through NVML.

    Exit codes: 0 match; 1 mismatch; 2 no usable NVML or driver (or bad input); 3 reboot
    required (driver/library version mismatch after a driver upgrade)."""
    from airig import verify

    with _user_errors():
        report = verify.run(
            profile,
            tuple(profiles_dir or ()),
            memory_tolerance_pct,
            tuple(advisory) if advisory is not None else None,
        )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        raise typer.Exit(report.exit_code)
    facts = report.facts or {}
    if facts.get("driver_version"):
        out.print(
            f"driver {facts['driver_version']}, CUDA {facts.get('cuda_driver_version')}, "
            f"{facts['gpu_count']} GPU(s)",
            highlight=False,
        )
    if report.checks:
        table = Table(title=f"checks against profile {report.profile}", title_justify="left")
        for col in ("check", "gpu", "expected", "found", "verdict", "what to do"):
            table.add_column(col, overflow="fold")
        colors = {"pass": "green", "fail": "red", "warn": "yellow", "skip": "dim"}
        for c in report.checks:
            gpu = "" if c["gpu"] is None else str(c["gpu"])
            verdict = Text(c["verdict"], style=colors[c["verdict"]])
            table.add_row(
                c["check"], gpu, str(c["expected"]), str(c["found"]), verdict, c["message"]
            )
        out.print(table)
    stream = out if report.exit_code == 0 else err
    stream.print(report.message, highlight=False)
    raise typer.Exit(report.exit_code)


@app.command("doctor")
def doctor_cmd(
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            help="Profile whose engines to check (name or file).",
            show_default=False,
        ),
    ] = None,
    distro: Annotated[
        str | None,
        typer.Option(
            help="Another box's distribution, e.g. ubuntu-24.04. Default: this one's.",
            show_default=False,
        ),
    ] = None,
    kernel: Annotated[
        str | None,
        typer.Option(
            help="Its kernel release (uname -r). Default: this one's.", show_default=False
        ),
    ] = None,
    hwe: Annotated[
        bool | None,
        typer.Option(
            "--hwe/--ga",
            help="Ubuntu: the HWE kernel or the GA one. Default: read dpkg.",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            help="Driver source: auto (the distribution's packages where they carry the branch, "
            "else NVIDIA's CUDA repository), distro or cuda_repo."
        ),
    ] = "auto",
    branch: Annotated[
        str | None,
        typer.Option(
            help="Driver branch. Default: the role's (or the profile's minimum).",
            show_default=False,
        ),
    ] = None,
    open_modules: Annotated[
        bool, typer.Option("--open/--proprietary", help="Open or proprietary kernel modules.")
    ] = True,
    profiles_dir: ProfilesDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the driver matrix a box would get: distribution, kernel flavour, source, branch,
    packages, engines and the CUDA they need, and why. Changes nothing.

    Exit codes: 0 the combination works; 1 an engine needs more than it gets; 2 refused (the
    message says what to set)."""
    from airig import doctor

    with _user_errors():
        report = doctor.run(
            distro, kernel, source, branch, open_modules, profile, tuple(profiles_dir or ()), hwe
        )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        raise typer.Exit(report.exit_code)
    table = Table(box=box.SIMPLE, show_header=False, pad_edge=False)
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("why", overflow="fold")
    colors = {"ok": "", "warn": "yellow", "fail": "red", "refused": "bold red"}
    for f in report.findings:
        style = colors[f.verdict]
        table.add_row(f.what, Text(f.verdict, style=style), Text(f.value, style=style), f.why)
    out.print(table)
    # The verdict in words, not only in colour (issue 30 item 1).
    words = {
        0: "works",
        1: "an engine needs more than this driver gives (fail above)",
        2: "refused (see refused above: it says what to set)",
    }
    out.print(f"verdict: {words[report.exit_code]} (exit {report.exit_code})", highlight=False)
    raise typer.Exit(report.exit_code)


@app.command("burn")
def burn_cmd(
    seconds: Annotated[float, typer.Option(help="How long each GPU runs under load.")] = 300.0,
    interval: Annotated[float, typer.Option(help="Seconds between NVML samples.")] = 1.0,
    load: Annotated[
        str,
        typer.Option(
            help="torch: a matrix product per GPU (the vLLM venv's Python, or --python); cpu: the "
            "same on the CPU (tries the orchestration without a GPU load); none: sample only; "
            "auto: torch when found, else none."
        ),
    ] = "auto",
    python: Annotated[
        Path | None,
        typer.Option(help="A Python with torch for the GPU load.", show_default=False),
    ] = None,
    max_temp: Annotated[
        float, typer.Option(help="A GPU that reaches this temperature (C) fails.")
    ] = 90.0,
    p2p: Annotated[
        bool,
        typer.Option(
            help="After the load, all-reduce between every pair of GPUs (NCCL, values checked; "
            "retried without peer-to-peer when it fails)."
        ),
    ] = True,
    p2p_seconds: Annotated[float, typer.Option(help="Seconds of all-reduce per pair.")] = 5.0,
    size: Annotated[
        int,
        typer.Option(
            help="Matrix side of the load; the all-reduce moves size x size float32 values."
        ),
    ] = 8192,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where burn.json and burn.png go. Default: /srv/airig/state/burn/TIME on a "
            "provisioned box, else ./airig-burn-TIME.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Burn the box in: every GPU under a sustained load while NVML is sampled (temperatures,
    power, clocks and why they drop, ECC, XID errors, lost GPUs), then an all-reduce between
    every pair of GPUs; pass or fail per GPU and per pair with what to do. Exit 0 pass, 1 fail,
    2 cannot run."""
    from airig import burn
    from airig.verify import nvml_utils

    with _user_errors(as_json):
        if load not in ("auto", "torch", "cpu", "none"):
            raise InputError(f"--load: unknown load '{load}'; allowed: auto, torch, cpu, none")
        try:
            import pynvml
        except ImportError:
            raise InputError("airig burn needs nvidia-ml-py (pynvml)") from None
        if p2p_seconds <= 0 or size < 16:
            raise InputError("--p2p-seconds must be > 0 and --size at least 16")
        config = burn.BurnConfig(
            seconds=seconds, interval=interval, load=load, python=python, max_temp_c=max_temp,
            p2p=p2p, p2p_seconds=p2p_seconds, size=size,
        )  # fmt: skip
        report = _burn_with_progress(config, nvml_utils(), pynvml, as_json)
        json_path, png = burn.write_report(report, out_dir or burn.default_out_dir())
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        raise typer.Exit(report.exit_code)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for col in ("GPU", "name", "max C", "max W", "min MHz", "verdict"):
        table.add_column(col, overflow="fold")

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    for g in report.gpus:
        verdict = Text("pass", style="green") if g.passed else Text("FAIL", style="red")
        table.add_row(
            str(g.index), g.name, num(g.max_temp_c), num(g.max_power_w), num(g.min_sm_clock_mhz),
            verdict,
        )  # fmt: skip
    out.print(f"airig burn: {len(report.samples)} samples, load {report.load}")
    out.print(table)
    if report.pairs:
        passed = sum(p.passed for p in report.pairs)
        nccl = f", NCCL {report.nccl}" if report.nccl else ""
        out.print(f"all-reduce between GPU pairs: {passed} of {len(report.pairs)} passed{nccl}")
    for who, failures, warnings in (
        *((f"GPU {g.index}", g.failures, g.warnings) for g in report.gpus),
        *((f"GPUs {p.gpus[0]}-{p.gpus[1]}", p.failures, p.warnings) for p in report.pairs),
        ("box", report.failures, []),
    ):
        for line in failures:
            out.print(Text(f"{who}: ", style="red") + Text(line))
        for line in warnings:
            out.print(Text(f"{who}: ", style="yellow") + Text(line))
    out.print(f"report: {json_path}, plot: {png}")
    raise typer.Exit(report.exit_code)


def _burn_with_progress(config: Any, utils: Any, nvml: Any, quiet: bool) -> Any:
    """Run the burn-in with a progress line (elapsed and hottest GPU) on a terminal."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from airig import burn

    if quiet or not err.is_terminal:
        return burn.run(config, utils, nvml)
    bar = Progress(
        TextColumn("burn-in"), BarColumn(), TimeElapsedColumn(), TextColumn("{task.description}"),
        console=err, transient=True,
    )  # fmt: skip
    with bar:
        task = bar.add_task("", total=config.seconds)

        def show(t: float, sample: dict[str, Any]) -> None:
            if "phase" in sample:
                bar.update(task, completed=config.seconds, description=sample["phase"])
                return
            temps = [g.get("temperature_c") or 0 for g in sample["gpus"] if not g.get("lost")]
            hottest = f"hottest {max(temps):.0f} C" if temps else "no GPU answers"
            bar.update(task, completed=min(t, config.seconds), description=hottest)

        return burn.run(config, utils, nvml, show)


@app.command("check")
def check_cmd(
    summary: Annotated[
        Path,
        typer.Option(help="The box's summary (written by airig provision)."),
    ] = Path("/srv/airig/state/summary.json"),
    log: Annotated[
        list[str] | None,
        typer.Option(
            "--log",
            help="UNIT=FILE: read a unit's start-up lines from FILE, not journald (repeatable).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    plot: Annotated[
        Path | None,
        typer.Option(help="Also write plan against actual bars here (.png/.svg/.pdf)."),
    ] = None,
) -> None:
    """Plan against actual: what each engine was planned to take beside what it reported at
    start-up (weights, KV cache, compute buffers), and whether the context x users the profile
    promised was allocated. Run it on the box.

    Exit codes: 0 every promise holds; 1 an engine allocated less than the profile promised, or
    reported nothing; 2 bad input."""
    from airig import check

    with _user_errors():
        data = _read_json(summary, "--summary")
        if not isinstance(data, dict):
            raise InputError(f"--summary: {summary} is not airig's summary (a JSON object)")
        files = {}
        for item in log or []:
            unit, sep, name = item.partition("=")
            if not sep or not unit or not name:
                raise InputError(f"--log: bad value '{item}': expected UNIT=FILE")
            files[unit] = _read_text(Path(name), "--log")
        served = data.get("served")
        units = [e.get("unit", "") for e in served] if isinstance(served, list) else []
        logs = {u: files[u] if u in files else check.journal(u) for u in units}
        if plot:
            _check_plot_path(plot)
        results = check.check(data, logs)
        if plot:
            from airig.planner.plot import render_check

            try:
                render_check(results, plot)
            except OSError as exc:
                raise InputError(f"--plot: cannot write {plot}: {exc.strerror}") from exc
    code = 1 if check.failed(results) else 0
    if as_json:
        typer.echo(
            json.dumps({"results": results, "calibration": check.calibration(results)}, indent=2)
        )
        raise typer.Exit(code)
    for line in check.table(results):
        out.print(line)  # wrapped to the terminal (the table rows fit 80 columns)
    raise typer.Exit(code)


def _nvml_by_unit() -> dict[str, float] | None:
    """GPU memory per service from NVML, or None where there is no NVML (a CPU box)."""
    from airig import check, verify

    facts, error, _ = verify._probe()
    if error or not facts or not facts.get("gpus"):
        return None
    return check.nvml_by_unit(facts)


def _read_json(path: Path, option: str) -> object:
    try:
        return json.loads(_read_text(path, option))
    except json.JSONDecodeError as exc:
        raise InputError(f"{option}: {path} is not JSON ({exc.msg}, line {exc.lineno})") from None


def _read_text(path: Path, option: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{option}: cannot read {path}: {exc.strerror}") from None
    if data[:2] == b"\x1f\x8b":
        raise InputError(f"{option}: {path} is gzipped: give the file unpacked (gunzip -k {path})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{option}: {path} is not a UTF-8 text file "
            f"(byte {exc.start} is 0x{data[exc.start]:02x})"
        ) from None
    if "\x00" in text:
        raise InputError(f"{option}: {path} is a binary file (it holds NUL bytes), not text")
    return text


PLOT_FORMATS = (".png", ".svg", ".pdf")


def _check_plot_path(path: Path) -> None:
    """--plot names a file to write, of a format the figure can take, in a directory that is."""
    if path.is_dir():
        raise InputError(f"--plot: {path} is a directory; name a file, e.g. {path}/plan.png")
    if path.suffix.lower() not in PLOT_FORMATS:
        raise InputError(
            f"--plot: bad value {str(path)!r}: expected a file name ending in "
            f"{', '.join(PLOT_FORMATS)}"
        )


def _plan_console() -> Console:
    """The terminal as it is; a pipe or file gets rows as wide as they need (never cut)."""
    return out if out.is_terminal else Console(markup=False, width=1000)


@dataclass(frozen=True)
class _Measured:
    """Drift a box measured (calibration.json), for the rows of ``profile`` (None: every row)."""

    data: dict[str, object]
    profile: str | None
    source: str

    def total_gb(self, row: PlanRow) -> float | None:
        from airig.check import calibrated_total_gb

        if self.profile is not None and row.profile != self.profile:
            return None
        return calibrated_total_gb(row, self.data)


def _measured(path: Path | None, off: bool) -> _Measured | None:
    """--calibration FILE for every row; else, on a provisioned box, its own calibration.json
    for its own profile (shown as such); --no-calibration: neither."""
    from airig import check

    if path is not None:
        data = _read_json(path, "--calibration")
        if not isinstance(data, dict):
            raise InputError(f"--calibration: {path} is not a calibration.json")
        return _Measured(data, None, str(path))
    box = None if off else check.box_calibration()
    if box is None:
        return None
    profile, data = box
    return _Measured(data, profile, f"this box's {check.STATE_DIR / 'calibration.json'}")


def _row_dict(row: PlanRow, measured: _Measured | None) -> dict[str, object]:
    data = row.to_dict()
    if measured is not None:
        data["calibrated_total_gb"] = measured.total_gb(row)
    return data


def _plan_columns(
    request: PlanRequest, wide: bool, arch: bool, measured: _Measured | None = None
) -> list[tuple[str, bool, Callable[[PlanRow], str | Text]]]:
    """The plan table's columns as (header, left-justified, cell): the default set fits 80
    columns in whole GB, --wide adds weights, KV cache, overhead, capacity, free and why not
    with one decimal."""

    def gb(value: float) -> str:
        return f"{value:.1f}" if wide else f"{value:.0f}"

    def fit(r: PlanRow) -> Text:
        return Text("yes", style="green") if r.fits else Text("no", style="red")

    # (header, left, cell, shown in the default table, only with the architecture method)
    every: list[tuple[str, bool, Callable[[PlanRow], str | Text], bool, bool]] = [
        ("model", True, lambda r: r.model, True, False),
        ("format", True, lambda r: r.quant, True, False),
        ("engine", True, lambda r: str(r.engine), True, True),
        ("weights", False, lambda r: gb(r.weights_gb), False, False),
        ("KV", False, lambda r: gb(r.kv_cache_gb), False, True),
        ("overhead", False, lambda r: gb(r.overhead_gb), False, True),
        ("total" if wide else "needs GB", False, lambda r: gb(r.total_gb), True, False),
        ("capacity", False, lambda r: gb(r.capacity_gb), False, False),
        ("fits", True, fit, True, False),
        ("free", False, lambda r: gb(r.headroom_gb), False, False),
        (f"ctx @{request.concurrency}", False,
         lambda r: f"{r.max_context_tokens:,}" if r.max_context_tokens else "-", True, True),
        (f"users @{request.context}", False,
         lambda r: str(r.max_concurrency) if r.max_concurrency else "-", True, True),
        ("why not", True, lambda r: r.reason, False, True),
    ]  # fmt: skip
    if measured is not None:

        def calibrated(r: PlanRow) -> str:
            got = measured.total_gb(r)
            return "-" if got is None else gb(got)

        at = next(i for i, col in enumerate(every) if col[0] in ("total", "needs GB")) + 1
        every.insert(at, ("measured", False, calibrated, True, True))
    return [
        (header, left, cell)
        for header, left, cell, default, arch_only in every
        if (wide or default) and (arch or not arch_only)
    ]


def _plan_fleet(inventory: Path, as_json: bool) -> None:
    """`airig plan -i INVENTORY`: per model, its boxes, users in total, context per user."""
    from airig import fleet

    with _user_errors():
        boxes = fleet.inventory_boxes(inventory)
        rows = fleet.fleet_plan(boxes)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    table = Table(
        title=f"fleet {inventory}: {len(boxes)} boxes", title_justify="left",
        box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, show_edge=False,
    )  # fmt: skip
    for header, left in (("model", True), ("format", True), ("engine", True), ("boxes", True),
                         ("users", False), ("ctx/user", False), ("gateway", False)):  # fmt: skip
        table.add_column(header, justify="left" if left else "right", overflow="fold")
    for r in rows:
        table.add_row(
            r.model, r.quant, r.engine, ", ".join(r.boxes), str(r.users), str(r.context),
            f"{len(r.routed)} of {len(r.boxes)}",
        )  # fmt: skip
    _plan_console().print(table)
    out.print(
        "users: concurrent sequences, summed over the boxes; gateway: boxes whose proxy exposes "
        "the engine (playbooks/fleet.yml routes to those)"
    )


def _render_plan(
    rows: list[PlanRow],
    request: PlanRequest,
    wide: bool = False,
    measured: _Measured | None = None,
) -> None:
    """One table per profile. Default: the columns a person decides with, fitting 80 columns;
    --wide: every column. Cells wrap rather than being cut to "…"."""
    console = _plan_console()
    by_profile: dict[str, list[PlanRow]] = {}
    for row in rows:
        by_profile.setdefault(row.profile, []).append(row)
    arch = request.method == "architecture"
    for prof in request.profiles:
        prof_rows = by_profile.get(prof.name, [])
        if not prof_rows:
            continue
        title = f"{prof.name}: {prof.summary}"
        if not wide:
            title += f", capacity {prof_rows[0].capacity_gb:.0f} GB"
        table = Table(
            title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
            collapse_padding=True, show_edge=False,
        )  # fmt: skip
        columns = _plan_columns(request, wide, arch, measured)
        longest = max((len(r.model) for r in prof_rows), default=5)
        for header, left, _ in columns:
            # A model's name is never broken mid-word (issue 30 item 7): the others give way.
            whole = {"no_wrap": True, "min_width": longest} if header == "model" else {}
            table.add_column(header, justify="left" if left else "right", overflow="fold", **whole)  # type: ignore[arg-type]
        for r in prof_rows:
            table.add_row(*(cell(r) for _, _, cell in columns))
        console.print(table)
        seen: set[str] = set()
        for r in prof_rows:
            for note in r.notes:
                line = f"{r.model} {r.quant}: {note}" if not note.startswith(r.model) else ""
                if line and line not in seen:
                    seen.add(line)
                    console.print(line, style="dim", highlight=False)
    if arch:
        console.print(
            f"GB = 10^9 bytes. Fit test: {request.context} tokens x "
            f"{request.concurrency} user(s), KV cache {request.kv_dtype}; capacity is "
            "what NVML reports (a card sold as N GB carries N GiB; an RTX 5090 shows 34.2 GB)."
            + ("" if wide else " --wide: weights, KV cache, overhead and why not.")
            + (
                " measured: the plan with this box's weights and KV cache as its engines "
                f"reported them ({measured.source}, from airig check)."
                if measured is not None
                else ""
            ),
            style="dim",
        )
    else:
        console.print(
            "Rule of thumb (seed guide): params x {Q4 0.5, Q8 1, FP16 2} bytes x 1.2; "
            "capacity = GPUs x nominal GB. GB = 10^9 bytes.",
            style="dim",
        )


def main() -> None:
    app()


@app.command("provision")
def provision_cmd(
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            "-p",
            help="Profile name or file; 'auto' finds the one this machine matches (local only). "
            "Default: the inventory's profile_name, else cpu.",
            show_default=False,
        ),
    ] = "",
    inventory: Annotated[
        Path | None, typer.Option("--inventory", "-i", help="Ansible inventory file or directory.")
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="One host over SSH: user@address.")
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Change nothing; say what would.")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Show file changes.")] = False,
    tags: Annotated[
        str | None,
        typer.Option(help="Only these parts, e.g. engines,agent (base, driver, llama_cpp, ...)."),
    ] = None,
    skip_tags: Annotated[str | None, typer.Option(help="Skip these parts.")] = None,
    limit: Annotated[str | None, typer.Option(help="Only these inventory hosts.")] = None,
    extra_var: Annotated[
        list[str] | None,
        typer.Option("--extra-var", "-e", help="KEY=VALUE for the playbook (repeatable)."),
    ] = None,
    allow_unpinned: Annotated[
        bool,
        typer.Option(
            "--allow-unpinned",
            help="Install model downloads the profile does not pin (a GGUF URL without sha256, "
            "a Hugging Face repo without revision).",
        ),
    ] = False,
    bundle_dir: Annotated[
        Path | None,
        typer.Option(
            "--bundle",
            help="Provision from an air-gap bundle (airig bundle -o DIR): checked here, copied to "
            "the box, served on its loopback; nothing else is contacted.",
        ),
    ] = None,
    bundle_keyring: Annotated[
        Path | None,
        typer.Option(
            "--bundle-keyring",
            help="--bundle: its signer's public key (gpg --export); the bundle's signature must "
            "be good before anything runs.",
        ),
    ] = None,
    accept_new_host_key: Annotated[
        bool,
        typer.Option(
            "--accept-new-host-key",
            help="--host: trust the box's SSH host key on first contact (a changed key still "
            "stops the run). Default: the key must already be in known_hosts.",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the outcome as JSON (no progress bar).")
    ] = False,
) -> None:
    """Provision a box: base, NVIDIA driver + GPU check, engines, agents (playbooks/site.yml).

    Safe to run again. The full log stays in the run directory printed at the end.
    Exit codes: 0 done; 1 a task failed; 2 bad input (nothing ran); 3 a host was unreachable;
    4 interrupted."""
    import os
    import re

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from airig import provision

    with _user_errors(as_json):
        if bundle_keyring is not None and bundle_dir is None:
            raise InputError("--bundle-keyring checks a bundle's signature: give --bundle DIR too")
        tgt = provision.target(inventory, host, accept_new_host_key)
        provision.check_tags("--tags", tags)
        provision.check_tags("--skip-tags", skip_tags)
        name = profile or ("" if inventory else "cpu")
        extra: dict[str, object] = {}
        for item in extra_var or ():
            key, sep, value = item.partition("=")
            if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise InputError(f"--extra-var: bad value {item!r}: expected KEY=VALUE")
            extra[key] = value
        if tgt.local and os.geteuid() == 0:
            extra.setdefault("airig_become", False)
        if name:
            name = provision.resolve_profile(name, tgt.local)
            loose = profiles.unpinned(profiles.load(name))
            # A bundle pins every download itself (airig bundle refused unpinned ones, or was
            # told --allow-unpinned); its own check follows.
            if loose and not allow_unpinned and bundle_dir is None:
                raise InputError(
                    "the profile's downloads are not pinned, so what their sources serve today "
                    "would be installed: " + "; ".join(loose) + ". Add sha256 / revision to the "
                    "profile, or accept them as they are with --allow-unpinned."
                )
        if allow_unpinned:
            extra["airig_allow_unpinned"] = True
        if bundle_dir is not None:
            extra["airig_bundle_dir"] = _checked_bundle(bundle_dir, name, bundle_keyring)
            if bundle_keyring is not None:
                # The bundle role checks the signature again where it copies the bundle.
                extra["airig_bundle_keyring"] = str(bundle_keyring.resolve())
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}", style="dim"),
        console=err,
        transient=False,
        disable=as_json,
    )
    what = "checking" if check else "provisioning"
    with bar:
        task = bar.add_task(f"{what} {tgt.description}", total=None, current="")

        def show(p: provision.Progress) -> None:
            bar.update(task, completed=p.done, total=p.total, current=p.task[:60])

        try:
            outcome = provision.run(
                name,
                tgt,
                check=check,
                diff=diff,
                tags=tags,
                skip_tags=skip_tags,
                limit=limit,
                extra_vars=extra,
                on_progress=show,
            )
        except KeyboardInterrupt:
            err.print(
                Text("interrupted", style="red")
                + Text(": run again; the playbook picks up where it stopped")
            )
            raise typer.Exit(provision.EXIT_INTERRUPTED) from None
        bar.update(task, total=outcome.progress.done, completed=outcome.progress.done)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "check": check,
                    "exit_code": outcome.exit_code,
                    "hosts": _host_stats(outcome),
                    "failures": outcome.progress.failures,
                    "summary": outcome.summary,
                    "run_dir": str(outcome.run_dir),
                },
                indent=2,
            )
        )
        raise typer.Exit(outcome.exit_code)
    _print_outcome(outcome, check)
    raise typer.Exit(outcome.exit_code)


def _checked_bundle(directory: Path, profile: str, keyring: Path | None = None) -> str:
    """The bundle's absolute path once every file matches its manifest (and, with a keyring,
    its signature is good), else an error naming each file that does not."""
    from airig import bundle

    try:
        if keyring is not None:
            bundle.check_signature(directory, keyring)
        data, problems = bundle.verify(directory)
    except bundle.BundleError as exc:
        raise InputError(f"--bundle {directory}: refused: {exc}") from None
    if problems:
        raise InputError(
            f"--bundle {directory}: refused: "
            + "; ".join(problems[:20])
            + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
        )
    made_for = data.get("profile")
    if profile and made_for != profiles.load(profile).name:
        raise InputError(
            f"--bundle {directory}: made for profile {made_for}, not {profile}; bundle this "
            f"profile with airig bundle -p {profile}"
        )
    return str(directory.resolve())


def _host_stats(outcome: Any) -> dict[str, dict[str, int]]:
    """Per host: ok, changed, failed, unreachable (ansible-runner's stats)."""
    stats = outcome.stats or {}
    keys = {"ok": "ok", "changed": "changed", "failed": "failures", "unreachable": "dark"}
    hosts = sorted(set().union(*(stats.get(k, {}) for k in keys.values())))
    return {h: {k: int(stats.get(v, {}).get(h, 0)) for k, v in keys.items()} for h in hosts}


def _print_outcome(outcome: object, check: bool) -> None:
    from airig import provision

    assert isinstance(outcome, provision.Outcome)
    table = Table(title="hosts", title_justify="left")
    for col in ("host", "ok", "changed", "failed", "unreachable"):
        table.add_column(col)
    for h, counts in _host_stats(outcome).items():
        table.add_row(h, *(str(n) for n in counts.values()))
    out.print(table)
    for f in outcome.progress.failures:
        err.print(
            Text("failed ", style="red") + Text(f"{f['host']}: {f['task']}: {f['msg']}"),
            highlight=False,
        )
    if outcome.summary:
        s = outcome.summary
        out.print(f"profile {s.get('profile')}: engines {s.get('engines')}", highlight=False)
        for ep in s.get("endpoints", []):
            key = f"/srv/airig/keys/{ep['key']}.key" if ep["key"] else "none (loopback only)"
            out.print(
                f"  {ep['engine']}: {ep['base_url']} model {ep['model']} "
                f"(context {ep['context']}), key {key}",
                highlight=False,
            )
        network = s.get("network") or {}
        if network.get("ports"):
            ports = ", ".join(f"{e} {p}" for e, p in network["ports"].items())
            out.print(
                f"  over the network (https, the proxy): {ports}, key {network['key']}",
                highlight=False,
            )
        if s.get("agents"):
            out.print(f"  agents: {', '.join(s['agents'])} (env: /etc/airig/agent.env)")
    verdict = {0: "done", 1: "FAILED", 3: "UNREACHABLE", 4: "interrupted"}[outcome.exit_code]
    out.print(
        f"{'check ' if check else ''}{verdict}; full log: {outcome.run_dir}/stdout.log "
        f"(events in {outcome.run_dir}/artifacts)",
        highlight=False,
    )


bundle_app = typer.Typer(
    context_settings=HELP_OPTIONS,
    help="Make an air-gap bundle of everything a profile downloads, or check one (docs/airgap.md).",
    no_args_is_help=False,
)
app.add_typer(bundle_app, name="bundle")


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


@bundle_app.callback(invoke_without_command=True)
def bundle_cmd(
    ctx: typer.Context,
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            "-p",
            help="Profile name or file (default: the inventory's).",
            show_default=False,
        ),
    ] = "",
    inventory: Annotated[
        Path | None,
        typer.Option("--inventory", "-i", help="Inventory whose settings (URLs, versions) apply."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Bundle directory (made or resumed).")
    ] = None,
    release: Annotated[
        str, typer.Option(help="Target Debian release of the boxes: bookworm or trixie.")
    ] = "bookworm",
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Say what would be fetched and how big; fetch nothing."),
    ] = False,
    allow_unpinned: Annotated[
        bool,
        typer.Option(
            "--allow-unpinned", help="Bundle downloads the profile does not pin by sha256."
        ),
    ] = False,
    sign: Annotated[
        str,
        typer.Option(
            "--sign",
            help="Sign the bundle with this gpg secret key (id, fingerprint or user id).",
            show_default=False,
        ),
    ] = "",
    profiles_dir: ProfilesDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Collect what provisioning PROFILE downloads (Debian packages, llama.cpp, agents, weights)
    into one checksummed directory: airig bundle -p PROFILE -o DIR; then
    airig provision --bundle DIR on a box with no network. Exit codes: 0 done; 1 a download or
    checksum failed (run again: it resumes); 2 bad input."""
    if ctx.invoked_subcommand:
        return
    from airig import bundle

    with _user_errors(as_json):
        cfg = bundle.settings(inventory, one_profile=bool(profile))
        name = profile or str(cfg.get("profile_name") or "")
        if not name:
            raise InputError(
                "bundle: name the profile (-p PROFILE) or an inventory with profile_name"
            )
        dirs = tuple(Path(d) for d in cfg.get("profile_dirs") or ()) + tuple(profiles_dir or ())
        prof = profiles.load(name, dirs)
        if output is None and not dry_run:
            raise InputError("bundle: say where with -o DIR (or --dry-run)")
        work = bundle.work_dir(output) if output else bundle.temp_work()
        err.print(f"bundle: resolving {prof.name} for Debian {release} ...", highlight=False)
        plan = bundle.make_plan(prof, cfg, release, work, allow_unpinned)
        bundle.fill_sizes(plan.items, output)
        rows = bundle.summary_rows(plan.items)
        known = [s for _, _, s in rows]
        total = None if None in known else sum(s or 0 for s in known)
        summary: dict[str, Any] = {
            "profile": prof.name,
            "release": release,
            "roles": [{"role": r, "files": c, "bytes": z} for r, c, z in rows],
            "files": len(plan.items),
            "bytes": total,
            "notes": list(plan.notes),
        }
        if not as_json:
            table = Table(title=f"bundle {prof.name} for debian {release}", title_justify="left")
            for col in ("role", "files", "size"):
                table.add_column(col, justify="right" if col != "role" else "left")
            for role, count, size in rows:
                table.add_row(role, str(count), _size(size))
            table.add_row("total", str(len(plan.items)), _size(total))
            out.print(table)
            for note in plan.notes:
                out.print(f"note: {note}", highlight=False)
        if dry_run or output is None:
            if as_json:
                typer.echo(json.dumps(summary, indent=2))
            return
        last = [0.0]

        def show(files: int, nfiles: int, done: int, size: int) -> None:
            import time

            now = time.monotonic()
            if now - last[0] > 2 or files == nfiles:
                last[0] = now
                err.print(
                    f"bundle: {files}/{nfiles} files, {_size(done)} of {_size(size)}",
                    highlight=False,
                )

        result = bundle.build(plan, output, show)
        signature = bundle.sign(output, sign).name if sign else None
        signed = f"; signed {signature}" if sign else ""
        if as_json:
            summary |= {
                "dir": str(output),
                "downloaded": result.downloaded,
                "manifest_sha256": result.manifest_sha256,
                "signature": signature,
            }
            typer.echo(json.dumps(summary, indent=2))
            return
        out.print(
            f"bundle {output}: {result.files} files, {_size(result.bytes)}, "
            f"{result.downloaded} downloaded now; manifest sha256 {result.manifest_sha256}"
            f"{signed}",
            highlight=False,
        )


@bundle_app.command("verify")
def bundle_verify_cmd(
    directory: Annotated[Path, typer.Argument(help="The bundle directory.")],
    expect: Annotated[
        str | None,
        typer.Option(help="The manifest sha256 printed when the bundle was made (checked too)."),
    ] = None,
    keyring: Annotated[
        Path | None,
        typer.Option(help="Its signer's public key (gpg --export): the signature must be good."),
    ] = None,
) -> None:
    """Re-check every file of a bundle against its manifest (and its signature, with
    --keyring). Exit codes: 0 intact; 1 a file is missing or changed (each is named) or the
    signature is not good; 2 not a bundle."""
    from airig import bundle

    with _user_errors():
        data, problems = bundle.verify(directory, expect)
        if keyring is not None:
            try:
                bundle.check_signature(directory, keyring)
            except bundle.BundleError as exc:
                problems.insert(0, str(exc))
    for p in problems:
        err.print(Text("bad ", style="red") + Text(p), highlight=False)
    t = data["target"]
    verdict = "FAILED" if problems else "ok"
    out.print(
        f"bundle {directory}: profile {data['profile']} for {t['distro']} {t['version']} "
        f"({t['release']}), {len(data['files'])} files: {verdict}",
        highlight=False,
    )
    raise typer.Exit(1 if problems else 0)


@app.command("platform")
def platform_cmd(
    org_file: Annotated[
        Path, typer.Option("--org", help="The org file: teams, GPU quotas, priorities, serving.")
    ],
    inventory: Annotated[
        Path, typer.Option("--inventory", "-i", help="Inventory of the boxes that form the pool.")
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the manifests here (default: check only)."),
    ] = None,
    kueue_manifest: Annotated[
        Path | None,
        typer.Option(
            "--kueue-manifest",
            help="The Kueue release manifest you pin as an add-on: its manager Configuration "
            "must have fair sharing and the Deployment/LeaderWorkerSet integrations on.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Plan an organisation's GPU pool on Kubernetes + Kueue (docs/scale.md): one
    ResourceFlavor per GPU model of the inventory's boxes, a ClusterQueue and LocalQueue per
    team in one Cohort, the teams' vLLM workloads. Every manifest is validated (Kubernetes
    schemas, Kueue/LeaderWorkerSet CRDs and their CEL rules) before anything is written.
    Exit codes: 0 valid (and written with -o); 2 bad input or a plan that does not hold."""
    from airig import _yaml, fleet
    from airig import platform as plat

    with _user_errors(as_json):
        try:
            import celpy  # noqa: F401
            import kubernetes_validate  # noqa: F401
        except ImportError as exc:
            raise InputError(
                f"airig platform needs {exc.name} (the 'platform' extra): in airig's source "
                "tree, pip install '.[platform]' (airig is not on a package index; make test "
                "installs it)"
            ) from None
        data = _yaml.load_or_raise(org_file, InputError, f"--org {org_file}")
        flavours = plat.flavours_from(fleet.inventory_boxes(inventory))
        org = plat.load_org(data, flavours, str(org_file))
        files = plat.manifests(org)
        if kueue_manifest is not None:
            from airig import kueue_config

            try:
                text = kueue_manifest.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(
                    f"--kueue-manifest {kueue_manifest}: cannot read it ({exc})"
                ) from None
            problems = kueue_config.check_manifest(text, str(kueue_manifest))
            if problems:
                raise InputError(
                    "Kueue's configuration would not serve these manifests:\n  "
                    + "\n  ".join(problems)
                    + f"\n  (airig platform -o DIR writes one that does: DIR/{plat.KUEUE_CONFIG})"
                )
        if output is None:
            problems = plat.validate_all(files)
            if problems:
                raise InputError("manifests do not validate:\n  " + "\n  ".join(problems))
        else:
            plat.render(org, output)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "org": org.name,
                    "flavours": [
                        {"name": f.name, "gpus": f.gpus, "node_gpus": f.node_gpus, "boxes": f.boxes}
                        for f in flavours.values()
                    ],
                    "files": {
                        name: [f"{o['kind']}/{o['metadata']['name']}" for o in objs]
                        for name, objs in files.items()
                    },
                    "written_to": str(output) if output else None,
                },
                indent=2,
            )
        )
        return
    table = Table(title=f"org {org.name}: GPU pool", title_justify="left")
    for col in ("flavour", "GPUs", "per node", "boxes"):
        table.add_column(col)
    for f in flavours.values():
        table.add_row(f.name, str(f.gpus), str(f.node_gpus), ", ".join(f.boxes))
    out.print(table)
    teams = Table(title="teams (ClusterQueue + LocalQueue each)", title_justify="left")
    for col in ("team", "quota", "weight", "borrow", "lend", "serves"):
        teams.add_column(col)
    for t in org.teams:
        teams.add_row(
            t.name,
            ", ".join(f"{n} {f}" for f, n in t.quota.items()),
            f"{t.weight:g}",
            "-" if t.borrowing_limit is None else str(t.borrowing_limit),
            "-" if t.lending_limit is None else str(t.lending_limit),
            ", ".join(
                f"{s.name} ({s.replicas} x {s.nodes} node(s) x {s.gpus} GPU)" for s in t.serve
            )
            or "-",
        )
    out.print(teams)
    count = sum(len(v) for v in files.values())
    where = f"written to {output}" if output else "valid; nothing written (-o DIR writes them)"
    out.print(f"{count} manifests in {len(files)} files: {where}", highlight=False)


if __name__ == "__main__":
    main()
