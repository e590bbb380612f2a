"""`airig bundle`: everything provisioning one profile downloads, in one checksummed directory
that a box without any network provisions from (`airig provision --bundle DIR`).

Layout of a bundle (paths are those of the upstream servers, so the roles fetch from the bundle
exactly as from a mirror):

  apt/<archive>/dists/<suite>/InRelease     Debian's signed index (checked by the box's own apt
  apt/<archive>/dists/.../Packages.xz       against debian-archive-keyring), and the .deb files
  apt/<archive>/pool/...                    the profile needs, resolved with apt for the target
                                            release (empty dpkg status: the whole closure)
  apt/cuda/<distro>/x86_64/...              NVIDIA's CUDA repository (nvidia_driver_source:
                                            cuda_repo): its key (checked by sha256), signed
                                            InRelease, Packages and the driver's .deb files
  llama.cpp/<source tarball>                llama.cpp's source (llama_cpp_source_url)
  models/<file>                             GGUF weights of the profile's llama.cpp/Ollama models
  hermes-agent/<release>.tar.gz             Hermes Agent's release archive
  pypi/files/*.whl, pypi/simple/<name>/     hashed requirements for the target Python (Hermes,
                                            vLLM, the CUDA toolkit of a GPU llama.cpp build)
  npm/<package>/-/<file>.tgz                Node, npm and OpenClaw's locked tree, as the registry
  ollama/<version>/<archive>                Ollama's release
  manifest.json                             every file: size, sha256, source URL, role
  manifest.json.sha256, SHA256SUMS          the manifest's hash; `sha256sum -c` on the box
  manifest.json.sha256.asc                  with --sign KEY: gpg's detached signature of that hash

Downloads resume (.part files with HTTP ranges); a file already there with its sha256 is not
fetched again, so bundling twice downloads nothing.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airig import __version__, profiles
from airig.errors import AirigError, InputError

FORMAT = 1
# Debian releases a bundle can be made for: version, Python, suites (archive, suite) apt reads.
TARGETS: dict[str, dict[str, Any]] = {
    "bookworm": {"distro": "debian", "version": "12", "python": "3.11", "glibc": "2_36"},
    "trixie": {"distro": "debian", "version": "13", "python": "3.13", "glibc": "2_41"},
}
DEBIAN_URL = "http://deb.debian.org/debian"
SECURITY_URL = "http://deb.debian.org/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
NPM_REGISTRY = "https://registry.npmjs.org/"
# Where Hugging Face snapshots come from (huggingface_hub's HF_ENDPOINT; a mirror of yours).
HF_ENDPOINT = "https://huggingface.co"
_HF_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_COMMIT = re.compile(r"[0-9a-f]{40}\Z")
PYPI_INDEX = "https://pypi.org/simple/"
# A path inside a bundle: relative, no '..', characters of package and file names only.
_PATH_RE = re.compile(
    r"(?:[A-Za-z0-9_@+~%=-][A-Za-z0-9._@+~%=-]*/)*[A-Za-z0-9_@+~%=-][A-Za-z0-9._@+~%=-]*\Z"
)
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
WORKERS = 8
RETRIES = 3  # more tries of a download that failed on the way (resumed from its .part)
# Roles whose defaults name what a run downloads (URLs, versions, package lists).
ROLES_WITH_DOWNLOADS = (
    "base",
    "llama_cpp",
    "agent",
    "ollama",
    "vllm",
    "nvidia_driver",
    "proxy",
    "observe",
)


class BundleError(AirigError):
    """A download, a checksum or a bundle on disk is not what it should be."""


@dataclass
class Item:
    """One file of the bundle and where it comes from."""

    path: str
    url: str
    role: str
    size: int | None = None
    sha256: str | None = None
    sha512: str | None = None  # npm's integrity (base64 of the digest), when that is the pin
    estimate: int | None = None  # the planner's size of weights, when the server gives none

    def __post_init__(self) -> None:
        if not _PATH_RE.match(self.path) or ".." in self.path.split("/"):
            raise BundleError(f"bundle path {self.path!r}: not a plain relative path")
        if not re.match(r"https?://[!-~]+\Z", self.url):
            raise BundleError(f"{self.path}: source {self.url!r} is not an http(s) URL")


@dataclass
class Plan:
    """What a bundle holds: files to fetch, files made here, what the roles are pointed at."""

    profile: str
    target: dict[str, Any]
    items: list[Item] = field(default_factory=list)
    apt: dict[str, Any] = field(default_factory=dict)
    provides: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, item: Item) -> None:
        if any(i.path == item.path for i in self.items):
            return
        self.items.append(item)


# --- settings: role defaults, overridden by the inventory -----------------------------------------


def roles_dir() -> Path:
    from airig.provision import collections_path

    for base in collections_path().split(os.pathsep):
        cand = Path(base) / "ansible_collections" / "airig" / "rig" / "roles"
        if cand.is_dir():
            return cand
    raise BundleError(
        "airig's roles are not installed next to the package (see docs/collection.md)"
    )


def _role_yaml(role: str, name: str) -> dict[str, Any]:
    data = yaml.safe_load((roles_dir() / role / name).read_text()) or {}
    return {k: v for k, v in data.items() if not (isinstance(v, str) and "{{" in v)}


def settings(inventory: Path | None, one_profile: bool = False) -> dict[str, Any]:
    """The role variables a bundle depends on: role defaults, then the inventory's values for its
    first box (templated by Ansible, as a run would see them). Unless ``one_profile`` (the
    profile was named), the inventory's boxes must share one profile."""
    out: dict[str, Any] = {}
    for role in ROLES_WITH_DOWNLOADS:
        out.update(_role_yaml(role, "defaults/main.yml"))
    if inventory is None:
        return out
    from airig import inventory as inventories

    inv = inventories.load(inventory, "-i/--inventory")
    gateway = {h.name for h in inv.hosts("gateway")}
    hosts = [h for h in inv.hosts() if h.name not in gateway]
    if not hosts:
        raise InputError(f"-i/--inventory: {inventory} names no box")
    if not one_profile:
        # One bundle serves one profile: an inventory of several asks for one bundle each.
        names: dict[str, list[str]] = {}
        for h in hosts:
            hv = inv.host_vars(h)
            where = f"-i/--inventory: {h.name}: profile_name"
            name = str(inventories.template(hv.get("profile_name", ""), hv, where))
            names.setdefault(name, []).append(h.name)
        if len(names) > 1:
            raise InputError(
                f"-i/--inventory: its boxes have {len(names)} profiles ("
                + "; ".join(f"{n or '(none)'}: {', '.join(hs[:3])}" for n, hs in names.items())
                + "): make one bundle per profile with -p PROFILE"
            )
    # The fleet's gateway provisions from the same bundle (fleet.yml): its packages come too.
    out["airig_fleet_gateway"] = bool(gateway)
    hostvars = inv.host_vars(hosts[0])
    for key in [
        *out,
        "profile_name",
        "profile_dirs",
        "airig_allow_unpinned",
        "airig_manage_driver",
    ]:
        if key in hostvars:
            where = f"-i/--inventory: {hosts[0].name}: {key}"
            out[key] = inventories.template(hostvars[key], hostvars, where)
    return out


# --- what each role downloads -------------------------------------------------------------------

# apt packages the roles install by name (tests/test_bundle.py holds this equal to the roles' apt
# tasks); base's and the driver's lists come from their role defaults and the driver matrix.
APT_PACKAGES: dict[str, list[str]] = {
    "base": ["systemd-timesyncd"],
    "llama_cpp": ["ccache"],
    "proxy": ["nginx", "openssl"],
    "observe": ["prometheus", "prometheus-node-exporter"],
    "observe_gpu": ["python3-prometheus-client", "python3-pynvml"],
    "observe_alerting": ["prometheus-alertmanager", "python3-bcrypt"],
    # from NVIDIA's CUDA repository, when the bundle carries it
    "observe_dcgm": ["datacenter-gpu-manager-exporter"],
    "agent": ["python3-venv", "python3-pip"],
    "vllm": ["python3-venv", "python3-pip"],
    "ollama": ["zstd"],
    # the fleet's gateway (playbooks/fleet.yml), when the inventory has one
    "gateway": ["haproxy", "procps"],
}


def apt_wanted(
    profile: profiles.Profile, cfg: dict[str, Any], release: str
) -> dict[str, list[str]]:
    """The apt packages each role installs for this profile on the target release."""
    want: dict[str, list[str]] = {
        "base": [*cfg.get("base_packages", []), *cfg.get("base_extra_packages", [])]
        + (APT_PACKAGES["base"] if cfg.get("base_time_sync", True) else [])
    }
    if "llama_cpp" in profile.engines and cfg.get("llama_cpp_ccache_dir"):
        want["llama_cpp"] = APT_PACKAGES["llama_cpp"]
    if cfg.get("proxy_expose"):
        want["proxy"] = APT_PACKAGES["proxy"]
    if profile.raw.get("observe", True):
        want["observe"] = list(APT_PACKAGES["observe"])
        if profile.gpus.count:
            want["observe"] += APT_PACKAGES["observe_gpu"]
        if cfg.get("observe_alert_webhook_url"):
            want["observe"] += APT_PACKAGES["observe_alerting"]
    if "hermes" in profile.raw.get("agents", []):
        want["agent"] = APT_PACKAGES["agent"]
    for engine in ("vllm", "ollama"):
        if engine in profile.engines:
            want[engine] = APT_PACKAGES[engine]
    if cfg.get("airig_fleet_gateway"):
        want["gateway"] = APT_PACKAGES["gateway"]
    # site.yml's own switch: a box whose driver is someone else's gets none from the bundle.
    res = _driver(profile, cfg, release)
    if res is not None:
        want["nvidia_driver"] = [*res.pre_packages, *res.packages, "linux-headers-amd64"]
        # The observe role installs dcgm-exporter wherever an apt source offers it, and the
        # bundled CUDA repository's index does: its package must be in the bundle too.
        dcgm = str(cfg.get("observe_dcgm_exporter", "auto")).lower()
        if res.source == "cuda_repo" and "observe" in want and dcgm not in ("false", "no"):
            want["observe"] += APT_PACKAGES["observe_dcgm"]
    if _cuda_toolkit(profile, cfg) == "cuda_repo":
        # NVIDIA's toolkit packages come from the CUDA repository the driver role adds.
        if res is None or res.source != "cuda_repo":
            raise InputError(
                "bundle: llama_cpp_cuda_toolkit cuda_repo installs NVIDIA's apt packages from "
                "the CUDA repository, which this box does not use: set nvidia_driver_source: "
                "cuda_repo, or llama_cpp_cuda_toolkit: pypi"
            )
        want["llama_cpp"] = [
            *want.get("llama_cpp", []),
            *_role_yaml("llama_cpp", "vars/main.yml")["llama_cpp__cuda_repo_packages"],
        ]
    return want


def _cuda_toolkit(profile: profiles.Profile, cfg: dict[str, Any]) -> str:
    """Where a GPU build of llama.cpp gets its CUDA toolkit (llama_cpp_cuda_toolkit), or ''
    when this profile builds none."""
    if "llama_cpp" not in profile.engines or not profile.gpus.count:
        return ""
    return str(cfg.get("llama_cpp_cuda_toolkit", "pypi"))


def _driver(profile: profiles.Profile, cfg: dict[str, Any], release: str) -> Any:
    """The driver matrix's answer for this profile on the target release (matrix.Resolved), or
    None when the bundle carries no driver (no GPU, or site.yml's airig_manage_driver off)."""
    if not profile.gpus.count or cfg.get("airig_manage_driver", True) in (False, "false", "no"):
        return None
    from airig import matrix

    return matrix.resolve(
        f"debian-{TARGETS[release]['version']}",
        str(cfg.get("nvidia_driver_source", "auto")),
        str(cfg.get("nvidia_driver_branch", "580")),
        open_modules=profile.open_kernel_modules,
        flavour="amd64",
        compute_capability=profile.gpus.compute_capability or "",
    )


@dataclass(frozen=True)
class CudaRepo:
    """NVIDIA's CUDA apt repository for the target (nvidia_driver_source: cuda_repo): a flat
    repository at <url>/<distro>/x86_64/, signed with the key the matrix names, which the
    nvidia_driver role verifies by the fingerprint airig's data pins, or by
    nvidia_driver_cuda_key_checksum when one is given (so does the bundle)."""

    url: str  # nvidia_driver_cuda_repo_url: NVIDIA's, or a mirror of it
    distro: str  # debian12
    key_file: str  # 3bf863cc.pub
    key_sha256: str  # nvidia_driver_cuda_key_checksum's, or "" to check key_fingerprint
    branch: int
    pin: bool  # the role pins the branch with apt preferences (branches before 590)
    key_fingerprint: str = ""  # the key's primary fingerprint airig's data pins

    @property
    def repo(self) -> str:
        return f"{self.url}/{self.distro}/x86_64"

    @property
    def bundle_dir(self) -> str:
        return f"apt/cuda/{self.distro}/x86_64"


def cuda_repo(profile: profiles.Profile, cfg: dict[str, Any], release: str) -> CudaRepo | None:
    """The CUDA repository this profile's driver comes from, or None (Debian's own driver)."""
    res = _driver(profile, cfg, release)
    if res is None or res.source != "cuda_repo":
        return None
    url = str(cfg.get("nvidia_driver_cuda_repo_url", "")).rstrip("/")
    if not re.match(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?\Z", url):
        raise InputError(f"nvidia_driver_cuda_repo_url {url!r}: expected an http(s) URL")
    checksum = str(cfg.get("nvidia_driver_cuda_key_checksum", "") or "")
    fingerprint = str(cfg.get("nvidia_driver_cuda_key_fingerprint", "") or res.key_fingerprint)
    fingerprint = fingerprint.replace(" ", "").upper()
    if checksum and not re.match(r"sha256:[0-9a-f]{64}\Z", checksum):
        raise InputError(
            f"bundle: nvidia_driver_cuda_key_checksum {checksum!r}: expected 'sha256:<64 hex>' "
            "of NVIDIA's repository key, or leave it empty to check the key's fingerprint"
        )
    if not checksum and not re.match(r"[0-9A-F]{40}\Z", fingerprint):
        raise InputError(
            "bundle: the CUDA repository key has no pinned fingerprint: set "
            "nvidia_driver_cuda_key_fingerprint (40 hex) or nvidia_driver_cuda_key_checksum"
        )
    return CudaRepo(
        url,
        res.cuda_distro,
        res.key_file,
        checksum.split(":", 1)[1] if checksum else "",
        res.branch,
        res.branch_pin,
        fingerprint,
    )


def key_fingerprint(data: bytes) -> str:
    """An OpenPGP key's primary fingerprint, by the nvidia_driver role's own reader
    (roles/nvidia_driver/files/airig_key_fingerprint.py), so the bundle checks as the box does."""
    import importlib.util

    path = roles_dir() / "nvidia_driver/files/airig_key_fingerprint.py"
    spec = importlib.util.spec_from_file_location("airig_key_fingerprint", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        found: str = module.fingerprint(data)
    except (ValueError, IndexError) as exc:
        raise BundleError(f"the CUDA repository key is not an OpenPGP public key ({exc})") from None
    return found


def _branch_preferences(branch: int) -> str:
    """apt preferences that keep the driver on its branch: the nvidia_driver role's own file
    (templates/cuda-branch.pref.j2), so the bundle resolves what the box will install."""
    text = (roles_dir() / "nvidia_driver/templates/cuda-branch.pref.j2").read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    return "\n".join(lines).replace("{{ nvidia_driver_branch }}", str(branch)) + "\n"


def _components(wanted: dict[str, list[str]]) -> list[str]:
    return (
        ["main", "contrib", "non-free", "non-free-firmware"]
        if "nvidia_driver" in wanted
        else ["main"]
    )


class Apt:
    """apt for the target release in a private directory: its own sources, lists and an empty
    dpkg status (so the whole dependency closure is listed), signatures checked by apt."""

    def __init__(
        self,
        work: Path,
        release: str,
        components: list[str],
        cuda: CudaRepo | None = None,
        suites: list[tuple[str, str]] | None = None,
    ) -> None:
        self.root = work / f"apt-{release}"
        self.release = release
        self.suites = (
            [
                (DEBIAN_URL, release),
                (DEBIAN_URL, f"{release}-updates"),
                (SECURITY_URL, f"{release}-security"),
            ]
            if suites is None
            else suites
        )
        self.components = components
        self.cuda = cuda
        self.cuda_key = self.root / "cuda-archive-keyring.asc"
        self.cuda_key_sha256 = cuda.key_sha256 if cuda is not None else ""
        etc = self.root / "etc"
        dirs = ("etc/apt.conf.d", "etc/sources.list.d", "etc/preferences.d",
                "state/lists/partial", "cache/archives/partial")  # fmt: skip
        for d in dirs:
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "state/status").touch()
        comps = " ".join(components)
        sources = "".join(f"deb [signed-by={KEYRING}] {u} {s} {comps}\n" for u, s in self.suites)
        prefs = etc / "preferences.d/airig-nvidia-branch"
        prefs.unlink(missing_ok=True)
        if cuda is not None:
            # The flat repository, trusted through its checked key only, the branch pinned as
            # the role pins it.
            sources += f"deb [signed-by={self.cuda_key}] {cuda.repo}/ /\n"
            if cuda.pin:
                prefs.write_text(_branch_preferences(cuda.branch))
        (etc / "sources.list").write_text(sources)
        self.conf = self.root / "apt.conf"
        self.conf.write_text(
            f'Dir::Etc "{etc}";\nDir::Etc::Parts "{etc}/apt.conf.d";\n'
            f'Dir::Etc::SourceParts "{etc}/sources.list.d";\nDir::State "{self.root}/state";\n'
            f'Dir::State::status "{self.root}/state/status";\nDir::Cache "{self.root}/cache";\n'
            'APT::Architecture "amd64";\nAPT::Architectures { "amd64"; };\n'
            'Acquire::Languages "none";\nAPT::Sandbox::User "root";\n'
            # No binary caches: the lists are all a plan needs.
            'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
        )

    def _run(self, *args: str) -> str:
        env = {**os.environ, "APT_CONFIG": str(self.conf), "LC_ALL": "C"}
        proc = subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BundleError(
                f"apt-get {' '.join(args[:2])}: {' '.join(proc.stderr.split())[-600:]}"
            )
        return proc.stdout

    def update(self) -> None:
        if shutil.which("apt-get") is None or not Path(KEYRING).exists():
            raise BundleError(
                f"bundle: resolving Debian packages needs apt-get and {KEYRING} on this machine "
                "(Debian or Ubuntu; apt install apt debian-archive-keyring)"
            )
        if self.cuda is not None:
            key_url = f"{self.cuda.repo}/{self.cuda.key_file}"
            with _open(key_url) as resp:
                key = resp.read()
            digest = hashlib.sha256(key).hexdigest()
            if self.cuda.key_sha256 and digest != self.cuda.key_sha256:
                raise BundleError(
                    f"{key_url} has sha256 {digest}, not the {self.cuda.key_sha256} "
                    "nvidia_driver_cuda_key_checksum names: not bundled, not trusted"
                )
            if not self.cuda.key_sha256:
                found = key_fingerprint(key)
                if found != self.cuda.key_fingerprint:
                    raise BundleError(
                        f"{key_url} has fingerprint {found}, not the {self.cuda.key_fingerprint} "
                        "airig pins (nvidia_driver_cuda_key_fingerprint for a mirror's own key): "
                        "not bundled, not trusted"
                    )
            self.cuda_key_sha256 = digest
            self.cuda_key.write_bytes(key)
        self._run("update", "-qq")

    def uris(self, packages: list[str]) -> list[tuple[str, str, int, str]]:
        """(url, file name, size, sha256) of every package apt would fetch to install these."""
        out = self._run(
            "install", "-qq", "--print-uris", "--no-install-recommends",
            "-o", "Acquire::ForceHash=SHA256", *packages,
        )  # fmt: skip
        rows = []
        for line in out.splitlines():
            m = re.match(r"'(\S+)' (\S+) (\d+) SHA256:([0-9a-f]{64})\Z", line.strip())
            if m:
                rows.append((m[1], m[2], int(m[3]), m[4]))
        return rows

    def indices(self) -> list[Item]:
        """InRelease (as apt checked it) and each component's Packages.xz with its sha256 from
        InRelease."""
        items = []
        lists = self.root / "state/lists"
        for url, suite in self.suites:
            archive = url.rsplit("/", 1)[1]
            item, sha = _inrelease(lists, f"{url}/dists/{suite}", f"apt/{archive}/dists/{suite}")
            items.append(item)
            for comp in self.components:
                name = f"{comp}/binary-amd64/Packages.xz"
                if name not in sha:
                    continue
                digest, size = sha[name]
                items.append(
                    Item(
                        f"apt/{archive}/dists/{suite}/{name}",
                        f"{url}/dists/{suite}/{name}",
                        "apt",
                        size,
                        digest,
                    )
                )
        if self.cuda is not None:
            items += self._cuda_indices(self.cuda, lists)
        return items

    def _cuda_indices(self, cuda: CudaRepo, lists: Path) -> list[Item]:
        """The flat repository's key, InRelease (as apt checked it) and Packages index."""
        release, sha = _inrelease(lists, cuda.repo, cuda.bundle_dir)
        key = self.cuda_key.read_bytes()
        items = [
            Item(
                f"{cuda.bundle_dir}/{cuda.key_file}",
                f"{cuda.repo}/{cuda.key_file}",
                "nvidia_driver",
                len(key),
                self.cuda_key_sha256,
            ),
            release,
        ]
        for name in ("Packages.xz", "Packages.gz", "Packages"):
            if name in sha:
                digest, size = sha[name]
                items.append(
                    Item(f"{cuda.bundle_dir}/{name}", f"{cuda.repo}/{name}", "apt", size, digest)
                )
                break
        else:
            raise BundleError(f"{cuda.repo}/InRelease lists no Packages index")
        return items

    def bundle_path(self, url: str) -> str:
        """Where a package apt would fetch from ``url`` lies in the bundle."""
        parts = urllib.parse.urlsplit(url)
        if self.cuda is not None and url.startswith(self.cuda.repo + "/"):
            rel = urllib.parse.unquote(url[len(self.cuda.repo) + 1 :])
            while rel.startswith("./"):
                rel = rel[2:]
            return f"{self.cuda.bundle_dir}/{rel}"
        archive = parts.path.strip("/").split("/")[0]
        return f"apt/{archive}/{urllib.parse.unquote(parts.path.strip('/').split('/', 1)[1])}"


def _inrelease(lists: Path, url: str, path: str) -> tuple[Item, dict[str, tuple[str, int]]]:
    """The InRelease apt fetched (and checked) from ``url`` as a bundle item under ``path``, and
    the sha256 and size it lists for each index file."""
    fetched = lists / _apt_list_name(f"{url}/InRelease")
    if not fetched.exists():
        raise BundleError(f"apt did not fetch {url}/InRelease")
    data = fetched.read_bytes()
    item = Item(
        f"{path}/InRelease", f"{url}/InRelease", "apt", len(data), hashlib.sha256(data).hexdigest()
    )
    return item, _release_sha256(data.decode(errors="replace"))


def _apt_list_name(uri: str) -> str:
    """The file name apt keeps a fetched index under (apt-pkg's URItoFileName: the URI without
    its scheme, these characters %-quoted, then '/' as '_')."""
    quoted = "".join(
        f"%{ord(c):02x}" if c in '\\|{}[]<>"^~_=!@#$%&*' or not c.isprintable() else c
        for c in uri.split("://", 1)[1]
    )
    return quoted.replace("/", "_")


def _release_sha256(text: str) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    in_sha = False
    for line in text.splitlines():
        if line.startswith("SHA256:"):
            in_sha = True
            continue
        if in_sha and line.startswith(" "):
            digest, size, name = line.split()
            out[name] = (digest, int(size))
        elif in_sha:
            in_sha = False
    return out


def plan_apt(
    plan: Plan, wanted: dict[str, list[str]], work: Path, cuda: CudaRepo | None = None
) -> None:
    apt = Apt(work, plan.target["release"], _components(wanted), cuda)
    apt.update()
    all_pkgs = sorted({p for pkgs in wanted.values() for p in pkgs})
    rows = apt.uris(all_pkgs)
    by_role = {role: {r[1] for r in apt.uris(pkgs)} for role, pkgs in wanted.items()}
    for item in apt.indices():
        plan.add(item)
    for url, name, size, digest in rows:
        roles = ",".join(r for r, names in by_role.items() if name in names) or "apt"
        plan.add(Item(apt.bundle_path(url), url, roles, size, digest))
    plan.apt = {
        "packages": wanted,
        "sources": [
            {"archive": u.rsplit("/", 1)[1], "suite": s, "components": apt.components}
            for u, s in apt.suites
        ],
    }
    if cuda is not None:
        # The bundle role trusts the key (checked here and by sha256 on the box) and adds the
        # flat repository; the nvidia_driver role fetches the key from the bundle and pins.
        plan.apt["cuda"] = {
            "distro": cuda.distro,
            "key": f"{cuda.bundle_dir}/{cuda.key_file}",
            "branch": cuda.branch,
        }
        plan.provides["nvidia_driver_cuda_repo"] = {"path": "apt/cuda"}


def _unpinned(what: str, allow: bool) -> None:
    if not allow:
        raise InputError(
            f"bundle: {what} has no sha256 to check it by, so whatever its server gives today "
            "would go into the bundle; pin it, or accept it with --allow-unpinned"
        )


def _hf_endpoint(cfg: dict[str, Any]) -> str:
    endpoint = str(cfg.get("airig_hf_endpoint") or os.environ.get("HF_ENDPOINT") or HF_ENDPOINT)
    if not re.match(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?\Z", endpoint):
        raise InputError(f"airig_hf_endpoint / HF_ENDPOINT {endpoint!r}: expected an http(s) URL")
    return endpoint.rstrip("/")


# Files a snapshot holds that vLLM does not load: the original checkpoints Meta and others
# publish beside the safetensors (Llama 3.1 405B's original/ alone is another 800 GB).
_HF_SKIP = re.compile(r"(original/.*|.*\.(pth|pt|bin|msgpack|h5|onnx|gguf))\Z")


def hf_snapshot_items(
    repo: str, revision: str | None, endpoint: str, allow_unpinned: bool
) -> tuple[str, list[Item]]:
    """The files of a Hugging Face model repo at a commit, as the Hub's API lists them: LFS
    files (the weights) pinned by the sha256 the Hub records, the small files by the commit in
    their URL. Returns the commit and the items."""
    if not _HF_REPO.match(repo):
        raise InputError(f"bundle: {repo!r} is not a Hugging Face repo id (org/name)")
    if revision is None:
        _unpinned(f"Hugging Face repo {repo} (no revision)", allow_unpinned)
    elif not _COMMIT.match(revision):
        raise InputError(f"bundle: {repo}: revision {revision!r} is not a 40-hex commit")
    api = f"{endpoint}/api/models/{repo}/revision/{revision or 'main'}?blobs=true"
    with _open(api) as resp:
        try:
            info = json.loads(resp.read())
        except ValueError:
            raise BundleError(f"{api}: not the Hub's JSON") from None
    commit = str(info.get("sha", ""))
    if not _COMMIT.match(commit) or (revision and commit != revision):
        raise BundleError(f"{api}: answered commit {commit!r}, asked {revision or 'main'}")
    siblings = [s for s in info.get("siblings", []) if isinstance(s, dict)]
    names = [str(s.get("rfilename", "")) for s in siblings]
    has_safetensors = any(n.endswith(".safetensors") for n in names)
    items = []
    for s in siblings:
        name = str(s.get("rfilename", ""))
        if not _PATH_RE.match(name) or ".." in name.split("/"):
            raise BundleError(f"{api}: file name {name!r} is not a plain relative path")
        if has_safetensors and _HF_SKIP.match(name):
            continue
        lfs_field = s.get("lfs")
        lfs: dict[str, Any] = lfs_field if isinstance(lfs_field, dict) else {}
        pin = str(lfs.get("sha256", "")) or None
        if pin is not None and not _HEX64.match(pin):
            raise BundleError(f"{api}: {name}: sha256 {pin!r} is not 64 hex digits")
        size = lfs.get("size", s.get("size"))
        items.append(
            Item(
                f"hf/{repo}/{commit}/{name}",
                f"{endpoint}/{repo}/resolve/{commit}/{urllib.parse.quote(name)}",
                "vllm",
                size=int(size) if isinstance(size, int) else None,
                sha256=pin,
            )
        )
    if not items:
        raise BundleError(f"{api}: the repo lists no files")
    return commit, items


def plan_models(
    plan: Plan,
    profile: profiles.Profile,
    allow_unpinned: bool,
    cfg: dict[str, Any] | None = None,
) -> None:
    from airig.planner import catalog, memory

    cat = catalog.Catalog.default()
    for m in profile.models:
        engine = profiles.served_engine(m, cat) if m.engine is None else m.engine
        if engine == "vllm":
            if m.source and m.source.startswith("/"):
                plan.notes.append(
                    f"{m.name} (vllm): the model directory {m.source} is not in the bundle; copy "
                    "it onto the box there"
                )
                continue
            commit, items = hf_snapshot_items(
                str(m.source), m.revision, _hf_endpoint(cfg or {}), allow_unpinned
            )
            for item in items:
                plan.add(item)
            plan.provides.setdefault("hf", {})[m.name] = {
                "repo": m.source,
                "revision": commit,
                "path": f"hf/{m.source}/{commit}",
                "files": [i.path.split("/", 4)[4] for i in items],
            }
            continue
        if not m.source:
            plan.notes.append(f"{m.name}: no source in the profile; copy its file to the box")
            continue
        file = m.file or m.source.rstrip("/").rsplit("/", 1)[-1]
        if not m.sha256:
            _unpinned(f"model {m.name} ({m.source})", allow_unpinned)
        size = None
        try:
            spec = cat.model(m.name)
            size = int(memory.weights_bytes(spec, cat.quant(m.quant)))
        except AirigError:
            pass
        plan.add(Item(f"models/{file}", m.source, "engine_common", None, m.sha256, estimate=size))
        plan.provides.setdefault("models", {})[file] = {"path": f"models/{file}"}


def _npm_item(url: str, integrity: str, role: str) -> Item:
    if not url.startswith(NPM_REGISTRY):
        raise BundleError(f"npm: {url} is not on {NPM_REGISTRY}")
    algo, _, b64 = integrity.partition("-")
    if algo != "sha512":
        raise BundleError(f"npm: {url}: integrity {algo} (airig pins sha512)")
    return Item("npm/" + url[len(NPM_REGISTRY) :], url, role, sha512=base64.b64decode(b64).hex())


def npm_lock_items(lockfile: Path, role: str = "agent") -> list[Item]:
    """Every tarball of a package-lock.json (v3) that npm ci installs on linux x64 glibc."""
    data = json.loads(lockfile.read_text())
    items = []
    for key, pkg in sorted(data.get("packages", {}).items()):
        if not key or "resolved" not in pkg:
            continue
        if not _fits_platform(pkg.get("os"), "linux") or not _fits_platform(pkg.get("cpu"), "x64"):
            continue
        if not _fits_platform(pkg.get("libc"), "glibc"):
            continue
        items.append(_npm_item(pkg["resolved"], pkg["integrity"], role))
    return items


def _fits_platform(allowed: list[str] | None, ours: str) -> bool:
    if not allowed:
        return True
    if f"!{ours}" in allowed:
        return False
    positive = [a for a in allowed if not a.startswith("!")]
    return not positive or ours in positive


def plan_agents(plan: Plan, profile: profiles.Profile, cfg: dict[str, Any], work: Path) -> None:
    agents = profile.raw.get("agents", [])
    if "openclaw" in agents:
        for key in ("agent_node_tarball", "agent_npm_tarball"):
            tb = cfg[key]
            sha512 = str(tb["sha512"])
            integrity = "sha512-" + base64.b64encode(bytes.fromhex(sha512)).decode()
            item = _npm_item(str(tb["url"]), integrity, "agent")
            plan.add(item)
            plan.provides[key] = {"path": item.path, "sha512": sha512}
        lock = (
            roles_dir()
            / "agent/files"
            / f"openclaw-{cfg['agent_openclaw_version']}"
            / "package-lock.json"
        )
        if not lock.exists():
            raise InputError(
                f"bundle: no lockfile for OpenClaw {cfg['agent_openclaw_version']} ({lock})"
            )
        for item in npm_lock_items(lock):
            plan.add(item)
        plan.provides["agent_npm_registry"] = {"path": "npm/"}
    if "hermes" in agents:
        release = str(cfg["agent_hermes_release"])
        known = _role_yaml("agent", "vars/main.yml").get("agent__hermes_releases", {})
        sha = str(cfg.get("agent_hermes_sha256") or known.get(release, {}).get("sha256", ""))
        if not _HEX64.match(sha):
            raise InputError(
                f"bundle: no sha256 for Hermes Agent {release}: set agent_hermes_sha256 in the "
                "inventory (as for airig provision)"
            )
        base = str(cfg["agent_hermes_release_url"]).rstrip("/")
        plan.add(
            Item(f"hermes-agent/{release}.tar.gz", f"{base}/{release}.tar.gz", "agent", None, sha)
        )
        plan.provides["hermes"] = {"path": "hermes-agent", "sha256": sha}
        deps = known.get(release, {}).get("deps")
        py = plan.target["python"].replace(".", "")
        req = roles_dir() / "agent/files/requirements" / f"{deps}-py{py}.txt"
        if not deps or not req.exists():
            raise InputError(
                f"bundle: airig has no hashed requirements for Hermes {release} on Python "
                f"{plan.target['python']}"
            )
        for item in pip_items(req, plan.target, work):
            plan.add(item)
        plan.provides["agent_pip_index_url"] = {"path": "pypi/simple/"}


def pip_items(
    requirements: Path, target: dict[str, Any], work: Path, role: str = "agent"
) -> list[Item]:
    """The wheels pip installs from hashed requirements on the target's Python and glibc,
    resolved by pip itself (--dry-run --report) for that platform."""
    report = work / f"pip-{requirements.stem}-{target['release']}.json"
    py = target["python"]
    if not report.exists() or report.stat().st_mtime < requirements.stat().st_mtime:
        glibc = target["glibc"]
        # pip takes --platform literally: every manylinux tag up to the target's glibc.
        top = int(glibc.split("_")[1])
        platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(top, 4, -1)]
        platforms += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
        platforms += ["linux_x86_64"]
        cmd = [
            sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
            "--report", str(report), "--target", str(work / "pip-target"), "--only-binary=:all:",
            "--python-version", py, "--implementation", "cp", "--abi", f"cp{py.replace('.', '')}",
            "--abi", "abi3", "--abi", "none",
            *(a for p in platforms for a in ("--platform", p)),
            "--require-hashes", "-r", str(requirements),
        ]  # fmt: skip
        # Only the public index (no local find-links or extra indices of this machine's pip
        # configuration): the manifest names where each wheel comes from.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
        env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
        proc = subprocess.run(
            [*cmd, "--index-url", PYPI_INDEX], capture_output=True, text=True, env=env
        )
        if proc.returncode != 0:
            report.unlink(missing_ok=True)
            raise BundleError(
                f"pip could not resolve {requirements.name}: {' '.join(proc.stderr.split())[-600:]}"
            )
    items = []
    for inst in json.loads(report.read_text())["install"]:
        info = inst["download_info"]
        url = info["url"]
        name = urllib.parse.unquote(url.rsplit("/", 1)[1])
        sha = (
            info.get("archive_info", {}).get("hashes", {}).get("sha256")
            or info.get("archive_info", {}).get("hash", "").partition("=")[2]
        )
        items.append(Item(f"pypi/files/{name}", url, role, None, sha))
    return items


def pypi_index(root: Path, files: Iterable[Path]) -> list[Path]:
    """A PEP 503 simple index over the bundle's wheels: pypi/simple/<name>/index.html."""
    by_name: dict[str, list[Path]] = {}
    for f in files:
        name = re.sub(r"[-_.]+", "-", f.name.split("-", 1)[0]).lower()
        by_name.setdefault(name, []).append(f)
    out: list[Path] = []
    if not by_name:
        return out
    simple = root / "pypi" / "simple"
    for name, wheels in sorted(by_name.items()):
        page = simple / name / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        links = "".join(
            f'<a href="../../files/{urllib.parse.quote(w.name)}#sha256={sha256(w)}">'
            f"{html.escape(w.name)}</a>\n"
            for w in sorted(wheels)
        )
        page.write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
        out.append(page)
    top = simple / "index.html"
    top.write_text(
        "<!DOCTYPE html>\n<html><body>\n"
        + "".join(f'<a href="{n}/">{n}</a>\n' for n in sorted(by_name))
        + "</body></html>\n"
    )
    return [*out, top]


def plan_engines(plan: Plan, profile: profiles.Profile, cfg: dict[str, Any], work: Path) -> None:
    if "llama_cpp" in profile.engines:
        url = " ".join(str(cfg["llama_cpp_source_url"]).split())
        sha = str(cfg.get("llama_cpp_source_sha256", ""))
        if not _HEX64.match(sha):
            raise InputError("bundle: llama_cpp_source_sha256 must be the source tarball's sha256")
        name = urllib.parse.unquote(url.rsplit("/", 1)[1])
        plan.add(Item(f"llama.cpp/{name}", url, "llama_cpp", None, sha))
        plan.provides["llama_cpp_source"] = {"path": f"llama.cpp/{name}", "sha256": sha}
    if _cuda_toolkit(profile, cfg) == "pypi":
        # The CUDA toolkit a GPU build of llama.cpp compiles with: NVIDIA's wheels of the
        # role's hashed requirements (llama_cpp_cuda_pip_index_url -> the bundle's index).
        version = _role_yaml("llama_cpp", "vars/main.yml")["llama_cpp__cuda_version"]
        req = roles_dir() / "llama_cpp/files/requirements" / f"cuda-toolkit-{version}.txt"
        for item in pip_items(req, plan.target, work, role="llama_cpp"):
            plan.add(item)
        plan.provides["llama_cpp_cuda_pip_index_url"] = {"path": "pypi/simple/"}
    if "vllm" in profile.engines:
        name = f"{cfg['vllm_package']}-{cfg['vllm_version']}"
        py = plan.target["python"]
        req = roles_dir() / "vllm/files/requirements" / f"{name}-py{py.replace('.', '')}.txt"
        if not req.exists():
            raise InputError(
                f"bundle: airig has no hashed requirements for {name} on Python {py} "
                f"(roles/vllm/files/requirements/): pick a vllm_version airig ships"
            )
        for item in pip_items(req, plan.target, work, role="vllm"):
            plan.add(item)
        plan.provides["vllm_pip_index_url"] = {"path": "pypi/simple/"}
    if "ollama" in profile.engines:
        version = str(cfg["ollama_version"])
        archive = str(cfg.get("ollama_archive") or "ollama-linux-amd64.tar.zst")
        pins = _role_yaml("ollama", "vars/main.yml").get("ollama__pinned_sha256", {})
        sha = str(cfg.get("ollama_sha256") or pins.get(f"{version}/{archive}", ""))
        if not _HEX64.match(sha):
            _unpinned(f"Ollama {version}", bool(cfg.get("airig_allow_unpinned")))
            sha = _sha256sum_entry(
                f"{str(cfg['ollama_base_url']).rstrip('/')}/{version}/sha256sum.txt", archive
            )
        base = str(cfg["ollama_base_url"]).rstrip("/")
        plan.add(
            Item(f"ollama/{version}/{archive}", f"{base}/{version}/{archive}", "ollama", None, sha)
        )
        plan.provides["ollama"] = {"path": "ollama", "version": version, "sha256": sha}


def _sha256sum_entry(url: str, name: str) -> str:
    with _open(url) as resp:
        for line in resp.read().decode().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*").removeprefix("./") == name:
                return str(parts[0]).lower()
    raise BundleError(f"{url} lists no sha256 for {name}")


def make_plan(
    profile: profiles.Profile,
    cfg: dict[str, Any],
    release: str,
    work: Path,
    allow_unpinned: bool = False,
) -> Plan:
    if release not in TARGETS:
        raise InputError(f"--release {release!r}: airig bundles for {', '.join(TARGETS)} (Debian)")
    target = {**TARGETS[release], "release": release, "arch": "amd64"}
    plan = Plan(profile.name, target)
    allow = allow_unpinned or bool(cfg.get("airig_allow_unpinned"))
    cfg = {**cfg, "airig_allow_unpinned": allow}
    plan_engines(plan, profile, cfg, work)
    plan_models(plan, profile, allow, cfg)
    plan_agents(plan, profile, cfg, work)
    plan_apt(plan, apt_wanted(profile, cfg, release), work, cuda_repo(profile, cfg, release))
    return plan


# --- downloads ----------------------------------------------------------------------------------


def _open(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> Any:
    req = urllib.request.Request(
        url, headers={"User-Agent": f"airig/{__version__}", **(headers or {})}, method=method
    )
    try:
        return urllib.request.urlopen(req, timeout=60)
    except OSError as exc:
        raise BundleError(f"{url}: {exc}") from None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _digests(path: Path) -> tuple[str, str]:
    h256, h512 = hashlib.sha256(), hashlib.sha512()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h256.update(block)
            h512.update(block)
    return h256.hexdigest(), h512.hexdigest()


def _matches(item: Item, path: Path) -> tuple[bool, str]:
    s256, s512 = _digests(path)
    ok = (item.sha256 is None or s256 == item.sha256) and (
        item.sha512 is None or s512 == item.sha512
    )
    return ok, s256


def head_size(item: Item) -> int | None:
    try:
        with _open(item.url, method="HEAD") as resp:
            length = resp.headers.get("Content-Length")
            return int(length) if length else None
    except BundleError:
        return None


def fill_sizes(items: list[Item], root: Path | None = None) -> None:
    """Sizes the plan does not know yet: a file already in the bundle's, else the server's
    (HEAD requests, in parallel)."""
    for i in items:
        if i.size is None and root is not None and (root / i.path).is_file():
            i.size = (root / i.path).stat().st_size
    todo = [i for i in items if i.size is None]
    with ThreadPoolExecutor(WORKERS * 2) as pool:
        for item, size in zip(todo, pool.map(head_size, todo), strict=True):
            item.size = size if size is not None else item.estimate


def _download(item: Item, part: Path, on_bytes: Callable[[int], None]) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        resp = _open(item.url, headers)
    except BundleError:
        if have and head_size(item) == have:
            on_bytes(have)  # the .part is whole already (the server answered 416)
            return
        raise
    with resp:
        if have and resp.status != 206:
            have = 0
        on_bytes(have)
        with part.open("ab" if have else "wb") as fh:
            for block in iter(lambda: resp.read(1 << 20), b""):
                fh.write(block)
                on_bytes(len(block))


def fetch(item: Item, root: Path, on_bytes: Callable[[int], None]) -> tuple[str, bool]:
    """Download one item into the bundle (resuming a .part file); returns its sha256 and
    whether anything was downloaded."""
    dest = root / item.path
    if dest.exists():
        ok, digest = _matches(item, dest)
        if ok:
            on_bytes(dest.stat().st_size)
            return digest, False
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(RETRIES + 1):
        try:
            _download(item, part, on_bytes)
            break
        except (BundleError, OSError) as exc:
            # A dropped connection or a name that did not resolve this once: resume the .part.
            if attempt == RETRIES:
                raise BundleError(f"{item.path}: {exc} (after {RETRIES + 1} tries)") from None
            time.sleep(2**attempt)
    ok, digest = _matches(item, part)
    if not ok:
        part.unlink()
        want = item.sha256 or f"sha512 {item.sha512}"
        raise BundleError(
            f"{item.path}: sha256 {digest} is not the pinned {want} (from {item.url}); not kept"
        )
    part.rename(dest)
    return digest, True


@dataclass
class Result:
    root: Path
    files: int
    bytes: int
    downloaded: int
    manifest_sha256: str


def build(
    plan: Plan, root: Path, progress: Callable[[int, int, int, int], None] | None = None
) -> Result:
    """Fetch every item (WORKERS at a time), make the pip index, write the manifest."""
    root.mkdir(parents=True, exist_ok=True)
    fill_sizes(plan.items, root)
    total = sum(i.size or 0 for i in plan.items)
    done_bytes = 0
    done_files = 0
    import threading

    lock = threading.Lock()

    def bump(n: int) -> None:
        nonlocal done_bytes
        with lock:
            done_bytes += n
            if progress:
                progress(done_files, len(plan.items), done_bytes, total)

    digests: dict[str, str] = {}
    fetched = 0
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {pool.submit(fetch, item, root, bump): item for item in plan.items}
        for fut in as_completed(futures):
            item = futures[fut]
            digest, new = fut.result()
            digests[item.path] = digest
            with lock:
                done_files += 1
                fetched += int(new)
    made = pypi_index(root, [root / i.path for i in plan.items if i.path.startswith("pypi/files/")])
    files: dict[str, dict[str, Any]] = {}
    for item in plan.items:
        p = root / item.path
        files[item.path] = {
            "size": p.stat().st_size,
            "sha256": digests[item.path],
            "source": item.url,
            "role": item.role,
        }
    for p in made:
        rel = str(p.relative_to(root))
        files[rel] = {
            "size": p.stat().st_size,
            "sha256": sha256(p),
            "source": "made by airig bundle",
            "role": "agent",
        }
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "airig": __version__,
        "created": "",
        "profile": plan.profile,
        "target": plan.target,
        "apt": plan.apt,
        "provides": plan.provides,
        "notes": plan.notes,
        "files": dict(sorted(files.items())),
    }
    # The same contents keep the same manifest (and hash): only a change gets a new time.
    try:
        before = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        before = {}
    if isinstance(before, dict) and {**before, "created": ""} == manifest:
        manifest["created"] = before["created"]
    else:
        manifest["created"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = json.dumps(manifest, indent=1) + "\n"
    (root / "manifest.json").write_text(text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    (root / "manifest.json.sha256").write_text(f"{digest}  manifest.json\n")
    (root / "SHA256SUMS").write_text("".join(f"{v['sha256']}  {k}\n" for k, v in files.items()))
    total_bytes = sum(v["size"] for v in files.values())
    return Result(root, len(files), total_bytes, fetched, digest)


# --- verify -------------------------------------------------------------------------------------


def load_manifest(root: Path) -> dict[str, Any]:
    mf = root / "manifest.json"
    try:
        text = mf.read_text()
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise InputError(f"{root}: no readable manifest.json ({exc})") from None
    if (
        not isinstance(data, dict)
        or data.get("format") != FORMAT
        or not isinstance(data.get("files"), dict)
    ):
        raise InputError(f"{mf}: not an airig bundle manifest (format {FORMAT})")
    stamp = root / "manifest.json.sha256"
    want = stamp.read_text().split()[0] if stamp.exists() else ""
    if hashlib.sha256(text.encode()).hexdigest() != want:
        raise BundleError(
            f"{mf}: its sha256 is not the one in manifest.json.sha256 (changed after bundling)"
        )
    for rel in data["files"]:
        if not isinstance(rel, str) or not _PATH_RE.match(rel) or ".." in rel.split("/"):
            raise BundleError(f"{mf}: bad path {rel!r}")
    return data


SIGNATURE = "manifest.json.sha256.asc"
_GPG_KEY = re.compile(r"[A-Za-z0-9@._+<>=][A-Za-z0-9@._+<>= -]{0,199}\Z")


def _tail(text: str) -> str:
    return " ".join(text.split())[-400:]


def sign(root: Path, key: str) -> Path:
    """An OpenPGP detached signature (gpg, the secret key ``key``) of manifest.json.sha256,
    which holds the manifest's sha256, whose entries hold every file's: one signature covers
    the whole bundle."""
    if not _GPG_KEY.match(key):
        raise InputError(f"--sign {key!r}: expected a gpg key id, fingerprint or user id")
    if shutil.which("gpg") is None:
        raise InputError("--sign: needs gpg on this machine (apt install gnupg)")
    load_manifest(root)  # the stamp must match the manifest before it is signed
    out = root / SIGNATURE
    proc = subprocess.run(
        ["gpg", "--batch", "--yes", "--armor", "--local-user", key, "--output", str(out),
         "--detach-sign", "--", str(root / "manifest.json.sha256")],
        capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        out.unlink(missing_ok=True)
        raise BundleError(f"gpg could not sign with {key!r}: {_tail(proc.stderr)}")
    return out


def check_signature(root: Path, keyring: Path) -> None:
    """The bundle's signature is good and made by a key in ``keyring`` (an exported public key
    or keyring, armored or binary), checked with gpgv; BundleError otherwise."""
    sig = root / SIGNATURE
    if not sig.is_file():
        raise BundleError(
            f"{root} has no signature ({SIGNATURE}): "
            "its maker signs it with airig bundle --sign KEY"
        )
    try:
        keys = keyring.read_bytes()
    except OSError as exc:
        raise InputError(f"keyring {keyring}: {exc.strerror}") from None
    if shutil.which("gpgv") is None:
        raise InputError(
            "checking a bundle's signature needs gpgv on this machine (apt install gpgv)"
        )
    with tempfile.TemporaryDirectory(prefix="airig-gpgv-") as tmp:
        ring = Path(tmp, "keyring.gpg")
        if keys.lstrip().startswith(b"-----BEGIN PGP"):
            dearmor = subprocess.run(
                ["gpg", "--batch", "--dearmor", "--output", str(ring)],
                input=keys, capture_output=True,
            )  # fmt: skip
            if dearmor.returncode != 0:
                raise InputError(f"keyring {keyring}: not an OpenPGP key")
        else:
            ring.write_bytes(keys)
        proc = subprocess.run(
            ["gpgv", "--keyring", str(ring), "--", str(sig), str(root / "manifest.json.sha256")],
            capture_output=True, text=True,
        )  # fmt: skip
    if proc.returncode != 0:
        raise BundleError(
            f"{sig}: not a good signature by a key in {keyring} ({_tail(proc.stderr)})"
        )


def verify(root: Path, expect: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """Re-check every file; returns the manifest and what is wrong (missing, changed, extra)."""
    data = load_manifest(root)
    digest = hashlib.sha256((root / "manifest.json").read_bytes()).hexdigest()
    problems = []
    if expect and digest != expect:
        problems.append(f"manifest.json: sha256 {digest} is not the expected {expect}")
    for rel, meta in data["files"].items():
        p = root / rel
        if p.is_symlink() or not p.is_file():
            problems.append(f"{rel}: missing")
        elif (got := sha256(p)) != meta["sha256"] or p.stat().st_size != meta["size"]:
            problems.append(f"{rel}: changed (sha256 {got}, manifest {meta['sha256']})")
    return data, problems


def summary_rows(items: list[Item]) -> list[tuple[str, int, int | None]]:
    """(role, files, bytes or None when a size is unknown) per role."""
    rows: dict[str, list[Any]] = {}
    for i in items:
        r = rows.setdefault(i.role.split(",")[0], [0, 0])
        r[0] += 1
        r[1] = None if (r[1] is None or i.size is None) else r[1] + i.size
    return [(k, v[0], v[1]) for k, v in sorted(rows.items())]


def work_dir(out: Path) -> Path:
    d = out / ".work"
    d.mkdir(parents=True, exist_ok=True)
    return d


def temp_work() -> Path:
    return Path(tempfile.mkdtemp(prefix="airig-bundle-"))


# --- provisioning from a bundle ------------------------------------------------------------------


def provision_vars(
    manifest: dict[str, Any], base_url: str, profile_spec: dict[str, Any]
) -> dict[str, Any]:
    """The role variables that point every download of a run at the bundle served on
    ``base_url`` (the box's loopback), from what the manifest says the bundle provides; the
    profile's models get the bundle's copy and its sha256 as their source."""
    if not re.match(r"http://127\.0\.0\.1:[0-9]{1,5}\Z", base_url):
        raise BundleError(f"bundle URL {base_url!r}: expected http://127.0.0.1:PORT")
    files = manifest["files"]
    prov = manifest.get("provides", {})

    def url(rel: str) -> str:
        if rel.rstrip("/") not in files and not any(f.startswith(rel) for f in files):
            raise BundleError(f"manifest provides {rel!r}, which the bundle does not hold")
        return f"{base_url}/{rel}"

    out: dict[str, Any] = {}
    if "nvidia_driver_cuda_repo" in prov:
        out["nvidia_driver_cuda_repo_url"] = url(prov["nvidia_driver_cuda_repo"]["path"])
    if "llama_cpp_source" in prov:
        src = prov["llama_cpp_source"]
        out["llama_cpp_source_url"] = url(src["path"])
        out["llama_cpp_source_sha256"] = files[src["path"]]["sha256"]
    for key in ("agent_node_tarball", "agent_npm_tarball"):
        if key in prov:
            out[key] = {"url": url(prov[key]["path"]), "sha512": prov[key]["sha512"]}
    if "agent_npm_registry" in prov:
        out["agent_npm_registry"] = url(prov["agent_npm_registry"]["path"])
    if "hermes" in prov:
        out["agent_hermes_release_url"] = url(prov["hermes"]["path"]).rstrip("/")
        out["agent_hermes_sha256"] = prov["hermes"]["sha256"]
    for key in ("agent_pip_index_url", "vllm_pip_index_url", "llama_cpp_cuda_pip_index_url"):
        if key in prov:
            out[key] = url(prov[key]["path"])
    if "ollama" in prov:
        out["ollama_base_url"] = url(prov["ollama"]["path"]).rstrip("/")
        out["ollama_version"] = prov["ollama"]["version"]
        out["ollama_sha256"] = prov["ollama"]["sha256"]
    for name, snap in sorted(prov.get("hf", {}).items()):
        # vLLM's snapshot: the role fetches each file from the bundle and checks its sha256,
        # instead of asking the Hub (the box has no network).
        if not isinstance(snap, dict) or not isinstance(snap.get("files"), list):
            raise BundleError(f"manifest provides hf {name!r} without its files")
        base = str(snap["path"])
        out.setdefault("vllm_model_files", [])
        for rel in snap["files"]:
            out["vllm_model_files"].append(
                {
                    "path": rel,
                    "url": url(f"{base}/{rel}"),
                    "sha256": files[f"{base}/{rel}"]["sha256"],
                }
            )
    models = prov.get("models", {})
    if models:
        spec = dict(profile_spec)
        spec["models"] = []
        for m in profile_spec.get("models", []):
            m = dict(m)
            file = m.get("file") or str(m.get("source", "")).rstrip("/").rsplit("/", 1)[-1]
            if file in models:
                rel = models[file]["path"]
                m["source"] = url(rel)
                m["sha256"] = files[rel]["sha256"]
            spec["models"].append(m)
        out["profile_spec"] = spec
    return out


def target_problem(manifest: dict[str, Any], distro: str, version: str, arch: str) -> str | None:
    """Why a bundle does not fit a box (its distribution, release or architecture), or None."""
    t = manifest.get("target", {})
    box_arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)
    if (t.get("distro"), str(t.get("version")), t.get("arch")) == (
        distro.lower(),
        version,
        box_arch,
    ):
        return None
    return (
        f"the bundle is for {t.get('distro')} {t.get('version')} ({t.get('release')}) "
        f"{t.get('arch')}, this box is {distro} {version} {box_arch}: make one for it with "
        f"airig bundle --release <its release>"
    )
