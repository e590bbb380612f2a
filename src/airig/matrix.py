"""The driver matrix: which packages a box gets for its distribution, kernel, driver source and
branch, read from the one data file (src/airig/data/drivers.yml).

The nvidia_driver role reads it through the lookup airig.rig.driver_matrix, `airig doctor`
prints it, tests resolve every combination against recorded package indices, and the support
table in docs/nvidia_driver.md is generated from it (``python -m airig.matrix --markdown``).
"""

from __future__ import annotations

import re
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from airig.errors import InputError
from airig.profiles import drivers

SOURCES = ("distro", "cuda_repo")
# "auto": the distribution's own packages where they carry the branch (and the GPUs), else
# NVIDIA's CUDA repository (Debian's carry 535/550; Blackwell needs 570 or newer).
AUTO = "auto"
_KERNEL_RE = re.compile(r"^[0-9]+\.[0-9]+(\.[0-9]+)?-[0-9]+-([a-z][a-z0-9-]*)\Z")


class MatrixError(InputError):
    """A combination of distribution, source, branch and module kind that cannot work."""


@dataclass(frozen=True)
class Resolved:
    """What the nvidia_driver role installs on one box, and why."""

    distro: str
    family: str
    suite: str
    source: str
    branch: int
    branch_status: str
    open_modules: bool
    kernel_flavour: str
    pre_packages: list[str]
    packages: list[str]
    module_packages: list[str]
    nvml_library_package: str
    nvml_python_package: str
    components: list[str]
    cuda_distro: str
    key_file: str
    key_fingerprint: str
    branch_pin: bool
    signed_modules: bool
    python: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def distro_key(distribution: str, version: str) -> str:
    """'Debian', '12.8' -> 'debian-12'; 'Ubuntu', '24.04' -> 'ubuntu-24.04'."""
    name = distribution.strip().lower()
    if name == "debian":
        return f"debian-{version.split('.')[0]}"
    return f"{name}-{version}"


def kernel_flavour(distro: str, kernel: str, installed: list[str] | tuple[str, ...] = ()) -> str:
    """The Ubuntu kernel flavour whose module package fits the running kernel, as ubuntu-drivers
    picks it: the suffix of the kernel release ('6.8.0-45-generic' -> 'generic'), and for a
    generic kernel with the HWE metapackage installed, 'generic-hwe-<release>'. Debian: ''."""
    data = drivers()
    if data["distros"].get(distro, {}).get("family") != "ubuntu":
        return ""
    match = _KERNEL_RE.match(kernel)
    if not match:
        raise MatrixError(
            f"kernel release {kernel!r}: expected the form 6.8.0-45-generic (uname -r)"
        )
    flavour = match.group(2)
    release = distro.split("-", 1)[1]
    hwe = f"generic-hwe-{release}"
    if flavour == "generic" and any(
        name in (f"linux-generic-hwe-{release}", f"linux-image-generic-hwe-{release}")
        for name in installed
    ):
        flavour = hwe
    return flavour


def _fill(names: list[str], branch: int, flavour: str) -> list[str]:
    return [n.format(branch=branch, flavour=flavour) for n in names]


def resolve(
    distro: str,
    source: str,
    branch: int | str,
    open_modules: bool = True,
    flavour: str = "",
    version: str = "",
    compute_capability: str = "",
) -> Resolved:
    """The package set for one combination, or MatrixError saying what to change. Source
    "auto" takes the distribution's packages where they carry the branch, else NVIDIA's CUDA
    repository (and says so in the notes)."""
    if source == AUTO:
        try:
            return resolve(
                distro, "distro", branch, open_modules, flavour, version, compute_capability
            )
        except MatrixError as exc:
            why = str(exc)
            try:
                found = resolve(
                    distro, "cuda_repo", branch, open_modules, flavour, version, compute_capability
                )
            except MatrixError as second:
                raise MatrixError(f"{why}; NVIDIA's CUDA repository: {second}") from None
        found.notes.insert(0, f"source auto: NVIDIA's CUDA repository ({why.split(': set ')[0]})")
        return found
    data = drivers()
    _check_blackwell(compute_capability, branch, open_modules)
    if distro not in data["distros"]:
        raise MatrixError(f"distribution {distro!r}: airig provisions {', '.join(data['distros'])}")
    if source not in SOURCES:
        raise MatrixError(f"driver source {source!r}: expected auto, distro or cuda_repo")
    if not re.fullmatch(r"[0-9]{3}", str(branch)):
        raise MatrixError(f"driver branch {branch!r}: expected a three-digit branch such as 580")
    br = int(branch)
    info = data["distros"][distro]
    family = info["family"]
    status = data["branches"].get(br, {}).get("status", "unknown to airig")
    notes: list[str] = []
    if status == "end of life":
        notes.append(f"branch {br} is end of life (NVIDIA's support table); 580 is long-term")
    row = data["sources"][source][family]
    kind = "open" if open_modules else "proprietary"
    pre: list[str] = []
    branch_pin = False
    key_file = ""
    key_fingerprint = ""
    components: list[str] = list(row.get("components", []))

    if source == "distro":
        offered = [int(b) for b in row["branches"].get(distro, [])]
        moved = row.get("transitional", {}).get(distro, {})
        if br in {int(k) for k in moved}:
            to = moved.get(br, moved.get(str(br)))
            raise MatrixError(
                f"{distro}: the archive's branch {br} packages are transitional stubs that "
                f"install {to}; ask nvidia_driver_branch: '{to}' (a run on {br} would get {to} "
                "and the next run's branch move would remove what the stubs depend on)"
            )
        if br not in offered:
            hint = (
                f"set nvidia_driver_branch: '{offered[-1]}', or nvidia_driver_source: "
                "cuda_repo for another branch"
            )
            raise MatrixError(
                f"{distro}: the distribution's own packages carry driver branch "
                f"{' and '.join(str(b) for b in offered)}, not {br}: {hint}"
            )
        if family == "ubuntu" and not flavour:
            flavour = "generic"
        packages = _fill(row["packages"][kind], br, flavour)
        modules = _fill(row["module_packages"], br, flavour)
        nvml_lib = row["nvml_library_package"].format(branch=br)
        for refusal in row.get("refuse", []):
            if (
                refusal["distro"] == distro
                and bool(refusal.get("open")) == open_modules
                and version.startswith(refusal["version_prefix"])
            ):
                raise MatrixError(
                    f"{distro}: version {version} with the "
                    f"{'open' if open_modules else 'proprietary'} kernel module cannot be "
                    f"installed: {' '.join(refusal['why'].split())}. Pin another version or "
                    "set nvidia_driver_open_modules: false"
                )
    else:
        repo = data["sources"]["cuda_repo"]
        key = repo["keys"].get(distro, repo["keys"]["default"])
        key_file = key["file"]
        key_fingerprint = str(key.get("fingerprint", ""))
        if br < int(key.get("min_branch", 0)):
            first = min(int(b) for b in repo["branches"] if int(b) >= int(key["min_branch"]))
            raise MatrixError(
                f"{distro}: NVIDIA's CUDA repository for {info['cuda_distro']} starts at branch "
                f"{key['min_branch']} (signed with key {key_file.split('.')[0]}); ask "
                f"nvidia_driver_branch: '{first}' or newer, or use the distribution's "
                "own packages (nvidia_driver_source: distro)"
            )
        if br not in {int(b) for b in repo["branches"]}:
            raise MatrixError(
                f"driver branch {br} ({status}): airig installs branches "
                f"{', '.join(str(b) for b in repo['branches'])} from NVIDIA's CUDA repository"
            )
        unversioned = br >= int(repo["first_unversioned_branch"])
        if unversioned:
            pre = [repo["pinning_package"].format(branch=br)]
            packages = list(row["packages_unversioned"][kind])
            modules = list(row.get("module_packages_unversioned", row["module_packages"]))
            nvml_lib = row.get("nvml_library_package_unversioned", row["nvml_library_package"])
            notes.append(
                f"branch {br}: NVIDIA's {pre[0]} keeps the unversioned packages on the branch"
            )
        else:
            packages = _fill(row["packages"][kind], br, flavour)
            modules = _fill(row["module_packages"], br, flavour)
            nvml_lib = row["nvml_library_package"]
            branch_pin = True
        nvml_lib = nvml_lib.format(branch=br)
    return Resolved(
        distro=distro,
        family=family,
        suite=info["suite"],
        source=source,
        branch=br,
        branch_status=status,
        open_modules=open_modules,
        kernel_flavour=flavour,
        pre_packages=pre,
        packages=packages,
        module_packages=modules,
        nvml_library_package=nvml_lib,
        nvml_python_package=data["nvml_python_package"],
        components=components,
        cuda_distro=info["cuda_distro"],
        key_file=key_file,
        key_fingerprint=key_fingerprint,
        branch_pin=branch_pin,
        signed_modules=bool(row.get("signed_modules", False)),
        python=info["python"],
        notes=notes,
    )


def uvm_disable_hmm(open_modules: bool, compute_capability: str, gpus: int) -> bool:
    """Whether the role sets nvidia_uvm uvm_disable_hmm=1 (drivers.yml uvm_disable_hmm: open
    modules, at least min_gpus GPUs of at least min_compute_capability)."""
    rule = drivers()["uvm_disable_hmm"]
    try:
        cc = float(compute_capability) if compute_capability else 0.0
    except ValueError:
        return False
    return (
        open_modules
        and gpus >= int(rule["min_gpus"])
        and cc >= float(rule["min_compute_capability"])
    )


def _check_blackwell(compute_capability: str, branch: int | str, open_modules: bool) -> None:
    rule = drivers()["blackwell"]
    try:
        cc = float(compute_capability) if compute_capability else 0.0
    except ValueError:
        raise MatrixError(
            f"compute capability {compute_capability!r}: expected a number such as 12.0"
        ) from None
    if cc < float(rule["min_compute_capability"]):
        return
    if not open_modules or not str(branch).isdigit() or int(branch) < int(rule["min_branch"]):
        raise MatrixError(
            f"The profile's GPUs have compute capability {compute_capability} (Blackwell): NVIDIA "
            f"supports them only with the open kernel modules on branch {rule['min_branch']} or "
            "newer. Set nvidia_driver_open_modules: true and nvidia_driver_branch: "
            f"'{drivers()['default_branch']}' (the long-term branch); on Debian use "
            "nvidia_driver_source: cuda_repo, whose packages carry those branches"
        )


def combinations() -> list[tuple[str, str, int, bool, str]]:
    """Every combination airig supports: (distro, source, branch, open, flavour)."""
    data = drivers()
    out: list[tuple[str, str, int, bool, str]] = []
    for distro, info in data["distros"].items():
        flavours = data["kernel_flavours"].get(distro, [""])
        for source in SOURCES:
            if source == "distro":
                branches = [
                    int(b) for b in data["sources"]["distro"][info["family"]]["branches"][distro]
                ]
            else:
                branches = [int(b) for b in data["sources"]["cuda_repo"]["branches"]]
            for br in branches:
                for open_modules in (True, False):
                    for flavour in flavours:
                        try:
                            resolve(distro, source, br, open_modules, flavour)
                        except MatrixError:
                            continue
                        out.append((distro, source, br, open_modules, flavour))
    return out


def python_refusal(distro: str, what: str) -> str | None:
    """Why `what` (vllm, hermes) cannot be installed on this distribution's python3, or None."""
    data = drivers()
    need = data["python_min"].get(what)
    have = data["distros"].get(distro, {}).get("python")
    if not need or not have:
        return None
    if tuple(int(x) for x in have.split(".")) >= tuple(int(x) for x in need.split(".")):
        return None
    return (
        f"{what} needs Python {need} or newer; {distro}'s python3 is {have}. Use Ubuntu 24.04 "
        "or Debian 12/13 for this box, or leave it out of the profile"
    )


def markdown_table() -> str:
    """The support table of docs/nvidia_driver.md, generated from the data file."""
    data = drivers()
    lines = [
        "| distribution | source | branches | packages (open modules) | kernel module package "
        "| NVML library |",
        "|---|---|---|---|---|---|",
    ]
    supported = combinations()
    for distro in data["distros"]:
        for source in SOURCES:
            rows = [c for c in supported if c[0] == distro and c[1] == source and c[3]]
            if not rows:
                continue
            branches = sorted({c[2] for c in rows})
            shown: dict[tuple[str, str, str], list[int]] = {}
            for br in branches:
                flavour = "<flavour>" if data["distros"][distro]["family"] == "ubuntu" else ""
                r = resolve(distro, source, br, True, flavour)
                pkgs = ", ".join(f"`{p}`" for p in r.pre_packages + r.packages)
                key = (
                    pkgs.replace(str(br), "<branch>"),
                    f"`{r.module_packages[0]}`".replace(str(br), "<branch>"),
                    f"`{r.nvml_library_package}`".replace(str(br), "<branch>"),
                )
                shown.setdefault(key, []).append(br)
            for (pkgs, module, nvml), brs in shown.items():
                eol = {b for b in brs if data["branches"].get(b, {}).get("status") == "end of life"}
                marks = ", ".join(f"{b}{' (EOL)' if b in eol else ''}" for b in brs)
                lines.append(f"| {distro} | {source} | {marks} | {pkgs} | {module} | {nvml} |")
    flav = "; ".join(f"{d}: {', '.join(f)}" for d, f in data["kernel_flavours"].items())
    lines.append("")
    lines.append(
        f"`<flavour>` is the running kernel's ({flav}). Python: "
        + ", ".join(f"{d} {i['python']}" for d, i in data["distros"].items())
        + "; "
        + ", ".join(f"{k} needs {v}+" for k, v in data["python_min"].items())
        + "."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool
    if sys.argv[1:] == ["--markdown"]:
        sys.stdout.write(markdown_table())
    else:
        sys.exit("usage: python -m airig.matrix --markdown")
