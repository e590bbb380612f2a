"""`airig doctor`: the driver matrix one box would get (distribution, kernel flavour, source,
branch, packages, engines and the CUDA they need) and why, from this machine's facts or from
the options that name another box."""

from __future__ import annotations

import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airig import matrix, profiles
from airig.errors import InputError

OS_RELEASE = Path("/etc/os-release")


@dataclass
class Finding:
    """One line of the report: what, the value, and where it came from or why."""

    what: str
    value: str
    why: str = ""
    verdict: str = "ok"  # ok | warn | fail


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    resolved: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        verdicts = {f.verdict for f in self.findings}
        return 2 if "refused" in verdicts else 1 if "fail" in verdicts else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "findings": [f.__dict__ for f in self.findings],
            "resolved": self.resolved,
            "exit_code": self.exit_code,
        }


def _os_release(path: Path) -> tuple[str, str]:
    fields: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        fields[key.strip()] = value.strip().strip('"')
    return fields.get("ID", ""), fields.get("VERSION_ID", "")


def _installed_kernel_metapackages() -> list[str]:
    if not shutil.which("dpkg-query"):
        return []
    run = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${Status}\n", "linux-*generic*"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [
        line.split()[0] for line in run.stdout.splitlines() if line.endswith("install ok installed")
    ]


def run(
    distro: str | None = None,
    kernel: str | None = None,
    source: str = "auto",
    branch: str | None = None,
    open_modules: bool = True,
    profile: str | None = None,
    profiles_dirs: tuple[Path, ...] = (),
    hwe: bool | None = None,
    os_release: Path = OS_RELEASE,
) -> Report:
    report = Report()
    add = report.findings.append
    data = profiles.drivers()
    if distro is None:
        if not os_release.is_file():
            raise InputError(
                f"{os_release} is missing: name the box with --distro, e.g. ubuntu-24.04"
            )
        ident, version = _os_release(os_release)
        distro = matrix.distro_key(ident, version)
        where = f"from {os_release}"
    else:
        where = "from --distro"
    if distro not in data["distros"]:
        add(
            Finding(
                "distribution",
                distro,
                f"{where}; airig provisions {', '.join(data['distros'])}",
                "refused",
            )
        )
        return report
    info = data["distros"][distro]
    add(Finding("distribution", f"{distro} ({info['suite']}, python3 {info['python']})", where))

    if kernel is None:
        kernel, kwhere = platform.release(), "from uname -r"
        installed = _installed_kernel_metapackages() if hwe is None else []
    else:
        kwhere, installed = "from --kernel", []
    if hwe:
        installed = [f"linux-generic-hwe-{distro.split('-', 1)[1]}"]
    try:
        flavour = matrix.kernel_flavour(distro, kernel, installed)
    except matrix.MatrixError as exc:
        add(Finding("kernel", kernel, str(exc), "refused"))
        return report
    known = data["kernel_flavours"].get(distro)
    if info["family"] == "ubuntu":
        why = f"{kwhere}; flavour {flavour}" + (
            " (HWE kernel metapackage installed)" if flavour.startswith("generic-hwe") else ""
        )
        verdict = "ok"
        if known and flavour not in known:
            why += f": no recorded module packages for it (airig knows {', '.join(known)})"
            verdict = "warn"
        add(Finding("kernel", kernel, why, verdict))
    else:
        add(Finding("kernel", kernel, f"{kwhere}; DKMS builds the module for it"))

    prof = profiles.load(profile, profiles_dirs) if profile else None
    if prof is not None and prof.gpus.count == 0:
        # A box without NVIDIA GPUs needs no driver (issue 30 item 1: -p cpu exited 2).
        add(Finding("driver", "none", f"profile {prof.name} has no GPU: no NVIDIA driver"))
        add(Finding("profile", prof.name, f"engines {', '.join(prof.engines)}"))
        for engine in prof.engines:
            add(Finding(engine, "CPU build", "the profile has no GPU"))
        return report
    if branch is None:
        branch = str(data["default_branch"])
        bwhere = "the nvidia_driver role's default"
        if prof and prof.driver_min_branch and prof.driver_min_branch > int(branch):
            branch, bwhere = str(prof.driver_min_branch), f"profile {prof.name}'s driver.min_branch"
    else:
        bwhere = "from --branch"
    try:
        cc = (prof.gpus.compute_capability or "") if prof and prof.gpus.count else ""
        r = matrix.resolve(distro, source, branch, open_modules, flavour, "", cc)
    except matrix.MatrixError as exc:
        add(Finding("driver", f"{source}, branch {branch}", str(exc), "refused"))
        return report
    report.resolved = r.to_dict()
    add(
        Finding(
            "driver",
            f"{r.source}, branch {r.branch} ({r.branch_status}), "
            f"{'open' if open_modules else 'proprietary'} modules",
            bwhere + (f"; {r.notes[0]}" if source == matrix.AUTO and r.source != "distro" else ""),
            "warn" if r.branch_status == "end of life" else "ok",
        )
    )
    if r.key_file:
        add(
            Finding(
                "repository key",
                f"{r.key_file} ({r.key_fingerprint or 'no pinned fingerprint'})",
                f"NVIDIA's CUDA repository for {r.cuda_distro}; the key is checked against "
                "this fingerprint, airig's own data (or nvidia_driver_cuda_key_checksum)",
            )
        )
    if r.components:
        add(Finding("components", " ".join(r.components), "added to Debian's sources"))
    notes = r.notes[1:] if source == matrix.AUTO and r.source != "distro" else r.notes
    add(Finding("packages", " ".join(r.pre_packages + r.packages), "; ".join(notes)))
    add(
        Finding(
            "kernel module",
            r.module_packages[0],
            "Canonical-signed (Secure Boot works)" if r.signed_modules else "DKMS-built",
        )
    )
    add(
        Finding(
            "NVML", f"{r.nvml_library_package} + {r.nvml_python_package}", "what gpu_verify loads"
        )
    )

    if prof:
        add(Finding("profile", prof.name, f"engines {', '.join(prof.engines)}"))
        for engine in prof.engines:
            row = data["engines"].get(engine)
            if prof.gpus.count == 0:
                add(Finding(engine, "CPU build", "the profile has no GPU"))
                continue
            if row:
                met = r.branch >= int(row["min_branch"])
                add(
                    Finding(
                        engine,
                        f"{row['version']}: CUDA {row['cuda']}, needs branch {row['min_branch']}",
                        f"{' '.join(row['why'].split())}"
                        + ("" if met else f"; branch {r.branch} is too old"),
                        "ok" if met else "fail",
                    )
                )
            elif engine == "llama_cpp":
                add(
                    Finding(
                        engine, "CUDA build from source", "needs the CUDA toolkit (nvcc, cuBLAS)"
                    )
                )
        for name in (*prof.engines, *prof.raw.get("agents", [])):
            need_py = matrix.python_refusal(distro, name)
            if need_py:
                add(Finding(name, "Python", need_py, "fail"))
        if prof.driver_min_branch and r.branch < prof.driver_min_branch:
            add(
                Finding(
                    "driver.min_branch",
                    str(prof.driver_min_branch),
                    f"branch {r.branch} is below the profile's minimum",
                    "fail",
                )
            )
    return report
