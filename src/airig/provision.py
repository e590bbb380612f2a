"""`airig provision`: run the site playbook through ansible-runner, with a progress bar driven by
runner events, a readable summary at the end and the full log kept in a per-run directory.

Exit codes: 0 provisioned (or --check found nothing wrong); 1 a task failed on some host (the
summary names it); 2 bad input (unknown profile, bad --host, no inventory file...), nothing ran;
3 a host was unreachable; 4 the run was interrupted.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airig import profiles
from airig.errors import AirigError, InputError
from airig.inventory import RUNNER_ENV

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 4
PLAYBOOK = "airig.rig.site"
# user@address: neither part may start with '-' (ssh would read it as an option, e.g. -J...).
HOST_RE = re.compile(
    r"(?:(?P<user>[A-Za-z0-9_][A-Za-z0-9._-]{0,63})@)?(?P<addr>[A-Za-z0-9\[][A-Za-z0-9.:_\[\]-]{0,252})\Z"
)
# Run directories kept under runs_root() (older ones are removed after each run).
RUNS_KEEP_DEFAULT = 20
PCI_DEVICES = Path("/sys/bus/pci/devices")
# Tags of playbooks/site.yml (`--tags`/`--skip-tags` outside this list run nothing).
SITE_TAGS = (
    "profile", "base", "driver", "engines", "llama_cpp", "vllm", "ollama", "proxy", "agent",
    "summary", "always",
)  # fmt: skip


def check_tags(option: str, value: str | None) -> None:
    """Refuse tags the site playbook does not have (they would run nothing and report done)."""
    from airig._suggest import allowed_list, did_you_mean

    for tag in (t.strip() for t in (value or "").split(",")):
        if tag and tag not in SITE_TAGS:
            raise InputError(
                f"{option}: unknown tag {tag!r}{did_you_mean(tag, SITE_TAGS)}; "
                f"allowed: {allowed_list(SITE_TAGS)}"
            )


@dataclass
class Target:
    """Where the playbook runs: an inventory file, one SSH host, or this machine."""

    inventory: Any
    description: str
    local: bool


@dataclass
class Progress:
    """What the runner's events say so far; the CLI renders it."""

    total: int = 0
    done: int = 0
    task: str = ""
    host_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        host = data.get("host", "")
        if kind == "playbook_on_task_start":
            self.done += 1
            self.total = max(self.total, self.done)
            self.task = data.get("task", "")
        elif kind in ("runner_on_ok", "runner_on_failed", "runner_on_skipped"):
            counts = self.host_counts.setdefault(host, {"ok": 0, "changed": 0, "failed": 0})
            res = data.get("res", {}) or {}
            if kind == "runner_on_failed" and not data.get("ignore_errors"):
                counts["failed"] += 1
                self.failures.append(
                    {"host": host, "task": data.get("task", ""), "msg": _failure_text(res)}
                )
            elif kind == "runner_on_ok":
                counts["ok"] += 1
                counts["changed"] += int(bool(res.get("changed")))
        elif kind == "runner_on_unreachable":
            self.unreachable.append(host)


def _failure_text(res: dict[str, Any]) -> str:
    msg = res.get("msg") or res.get("stderr") or res.get("reason") or ""
    if not msg and res.get("results"):
        msg = "; ".join(_failure_text(r) for r in res["results"] if r.get("failed"))
    return " ".join(str(msg).split())[:2000]


def target(inventory: Path | None, host: str | None, accept_new_host_key: bool = False) -> Target:
    if inventory is not None and host is not None:
        raise InputError("-i/--inventory and --host: give one of them, not both")
    if inventory is not None:
        from airig import inventory as inventories

        inventories.load(inventory, "-i/--inventory")  # exists, is data, names a host
        return Target(str(inventory.resolve()), f"inventory {inventory}", False)
    if host is not None:
        m = HOST_RE.match(host)
        if not m:
            raise InputError(f"--host: bad value {host!r}: expected user@address or address")
        hostvars: dict[str, Any] = {"ansible_host": m["addr"]}
        if m["user"]:
            hostvars["ansible_user"] = m["user"]
        if accept_new_host_key:
            # Trust a box's key on first contact only; a changed key still stops the run.
            hostvars["ansible_ssh_extra_args"] = "-o StrictHostKeyChecking=accept-new"
        return Target({"all": {"hosts": {m["addr"]: hostvars}}}, f"host {host}", False)
    local = {
        "all": {
            "hosts": {
                "localhost": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                }
            }
        }
    }
    return Target(local, "this machine (local connection)", True)


def resolve_profile(name: str, local: bool, extra_dirs: tuple[Path, ...] = ()) -> str:
    """A profile name or file, validated here before anything runs (a file's absolute path is
    what the playbook gets: it runs in the run directory); 'auto' asks NVML locally."""
    if name != "auto":
        profile = profiles.load(name, extra_dirs)
        if profile.source is not None and profile.source.parent == profiles.BUILTIN_DIR:
            return profile.name
        return str(profile.source.resolve()) if profile.source else profile.name
    if not local:
        raise InputError(
            "--profile auto: only for this machine (it reads the GPUs through NVML here); name "
            "the profile of a remote host, e.g. --profile home"
        )
    from airig import verify

    report = verify.run("auto", extra_dirs)
    nvidia = nvidia_pci_devices()
    if report.matched and report.profile:
        if nvidia and profiles.load(report.profile, extra_dirs).gpus.count == 0:
            raise InputError(
                f"--profile auto: {len(nvidia)} NVIDIA GPU(s) on the PCI bus "
                f"({', '.join(nvidia[:4])}) but no NVIDIA driver answers yet, so this box "
                f"cannot be told from a CPU box. Name its profile, e.g. --profile home "
                "(`airig profiles` lists them); the driver is installed by the run."
            )
        return report.profile
    if report.error_kind == "gpu_without_driver":
        raise InputError(
            f"--profile auto: {report.message.split(': provision')[0]}, so this box cannot be "
            "told from a CPU box. Name its profile, e.g. --profile home (`airig profiles` "
            "lists them); the driver is installed by the run."
        )
    hint = f" (closest: {report.profile})" if report.profile else ""
    raise InputError(
        f"--profile auto: no profile matches this machine{hint}: {report.message}. On a fresh "
        "box without the NVIDIA driver, name the profile: --profile home|business|team|..."
    )


def nvidia_pci_devices(root: Path | None = None) -> list[str]:
    """NVIDIA GPUs on this machine's PCI bus (airig.verify.nvidia_pci_devices)."""
    from airig.verify import nvidia_pci_devices as on_bus

    return on_bus(root or PCI_DEVICES)


def runs_root() -> Path:
    base = os.environ.get("AIRIG_RUNS_DIR")
    if base:
        return Path(base)
    if os.geteuid() == 0:
        return Path("/var/lib/airig/runs")
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "airig" / "runs"


def collections_path() -> str:
    """The collection from a checkout (collections/ next to src/) or the installed package."""
    here = Path(__file__).resolve().parents[2] / "collections"
    paths = [str(here)] if (here / "ansible_collections" / "airig" / "rig").exists() else []
    import sysconfig

    paths.append(sysconfig.get_paths()["purelib"])
    return os.pathsep.join(paths)


@dataclass
class Outcome:
    exit_code: int
    run_dir: Path
    progress: Progress
    stats: dict[str, Any]
    summary: dict[str, Any] | None


def run(
    profile: str,
    tgt: Target,
    *,
    check: bool = False,
    diff: bool = False,
    tags: str | None = None,
    skip_tags: str | None = None,
    limit: str | None = None,
    extra_vars: dict[str, Any] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    playbook: str = PLAYBOOK,
) -> Outcome:
    import ansible_runner

    root = runs_root()
    # Made 0700 when airig makes it; an existing directory (AIRIG_RUNS_DIR=/tmp...) keeps its
    # mode: each run directory is 0700 itself.
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    run_dir = root / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(mode=0o700, exist_ok=True)
    run_dir.chmod(0o700)
    # Extra variables (-e KEY=VALUE may hold secrets) go to a 0600 file that ansible-playbook
    # reads (-e @file), never onto its command line where `ps` shows them.
    env_dir = run_dir / "env"
    env_dir.mkdir(mode=0o700, exist_ok=True)
    extravars = {**({"profile_name": profile} if profile else {}), **(extra_vars or {})}
    _write_private(env_dir / "extravars", json.dumps(extravars))
    progress = Progress()
    progress.total = _estimate_tasks(profile)
    cmdline = []
    if check:
        cmdline.append("--check")
    if diff:
        cmdline.append("--diff")
    if skip_tags:
        cmdline += ["--skip-tags", skip_tags]
    bindir = str(Path(sys.executable).parent)
    env = {
        "ANSIBLE_COLLECTIONS_PATH": collections_path(),
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "yaml",
        # ansible-runner turns host key checking off unless told; airig keeps it on
        # (`airig provision --accept-new-host-key` trusts a new box's key on first contact).
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        # Inventories are data: read by the YAML/INI/TOML plugins only, never run as scripts.
        **RUNNER_ENV,
    }

    def handler(event: dict[str, Any]) -> bool:
        progress.on_event(event)
        if on_progress:
            on_progress(progress)
        return True  # keep the event in the run directory

    result = ansible_runner.run(
        private_data_dir=str(run_dir),
        playbook=playbook,
        inventory=tgt.inventory,
        cmdline=" ".join(cmdline) or None,
        tags=tags,
        limit=limit,
        envvars=env,
        event_handler=handler,
        quiet=True,
        suppress_env_files=True,
    )
    stats = result.stats or {}
    if result.status in ("canceled", "timeout"):
        code = EXIT_INTERRUPTED
    elif progress.unreachable or stats.get("dark"):
        code = EXIT_UNREACHABLE
    elif result.rc != 0 or progress.failures:
        code = EXIT_FAILED
    else:
        code = EXIT_OK
    text = result.stdout.read() if result.stdout else ""
    _write_private(run_dir / "stdout.log", text)
    if code == EXIT_FAILED and not progress.failures:
        # Failed before any task (no host matched --limit, a syntax error...): say why.
        lines = [ln for ln in text.splitlines() if "ERROR" in ln or "Could not match" in ln]
        why = " ".join(" ".join(lines[-3:]).split()) or f"ansible-playbook exited {result.rc}"
        progress.failures.append({"host": "-", "task": "(before any task)", "msg": why[:2000]})
    _forget_environment(run_dir)
    prune_runs(root)
    summary = None
    summary_file = Path("/srv/airig/state/summary.json")
    if tgt.local and summary_file.exists() and not check:
        try:
            summary = json.loads(summary_file.read_text())
        except (OSError, ValueError):
            summary = None
    return Outcome(code, run_dir, progress, stats, summary)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (0600 from creation on)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _forget_environment(run_dir: Path) -> None:
    """ansible-runner records the whole environment of the run in artifacts/*/command: keep the
    command and its directory, drop the environment."""
    for command in run_dir.glob("artifacts/*/command"):
        try:
            data = json.loads(command.read_text())
        except (OSError, ValueError):
            continue
        data.pop("env", None)
        command.write_text(json.dumps(data))


def prune_runs(root: Path, keep: int | None = None) -> list[Path]:
    """Remove all but the newest ``keep`` run directories (AIRIG_RUNS_KEEP, default 20)."""
    import shutil

    if keep is None:
        try:
            keep = max(1, int(os.environ.get("AIRIG_RUNS_KEEP", RUNS_KEEP_DEFAULT)))
        except ValueError:
            keep = RUNS_KEEP_DEFAULT
    runs = sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"\d{8}-\d{6}", p.name))
    removed = runs[:-keep] if len(runs) > keep else []
    for old in removed:
        shutil.rmtree(old, ignore_errors=True)
    return removed


def _estimate_tasks(profile: str) -> int:
    """Rough task count for the bar; the bar grows when the playbook runs more."""
    try:
        prof = profiles.load(profile) if profile else None
    except (AirigError, OSError):
        prof = None
    engines = len(prof.engines) if prof else 1
    gpu = bool(prof and prof.gpus.count)
    return 40 + 45 * engines + (60 if gpu else 0) + (25 if prof and prof.raw.get("agents") else 0)
