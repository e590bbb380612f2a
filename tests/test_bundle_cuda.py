"""Issue 15: a bundle for a box whose driver comes from NVIDIA's CUDA repository
(nvidia_driver_source: cuda_repo, what every Blackwell reference build on Debian needs). NVIDIA's
repository cannot be reached here, so a TEST DOUBLE of it stands in: a flat apt repository of
stand-in packages named as NVIDIA's, its InRelease signed with a key made for the test, served
over HTTP on loopback. The real code path runs on it: bundle.cuda_repo from the profile and the
settings, the key checked by nvidia_driver_cuda_key_checksum, apt for the target release
checking the signature and resolving with the branch pinned as the nvidia_driver role pins it,
the bundle's paths, provision_vars and the bundle role's apt source. Debian's own suites are
left out of these apt runs (suites=[]): the stand-ins depend on nothing of Debian's."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from airig import bundle, profiles
from airig.errors import InputError
from tests.conftest import REPO
from tests.mirror.build import RangeHandler, _standin_deb, _tar_gz

BLACKWELL = {
    "count": 2,
    "model": "NVIDIA GeForce RTX 5090",
    "memory_gib": 32,
    "compute_capability": "12.0",
}
# Stand-ins named as NVIDIA's debian12 packages for branch 580 (nvidia-open-580 pulls the
# kernel module); the module exists on two branches, so only the pin keeps it on 580.
PACKAGES = [
    ("nvidia-open-580", "580.95.05-1", "nvidia-kernel-open-dkms (>= 580)"),
    ("nvidia-kernel-open-dkms", "580.95.05-1", ""),
    ("nvidia-kernel-open-dkms", "595.45.04-1", ""),
]


def _gpg(home: Path, *args: str, data: bytes | None = None) -> bytes:
    env = {**os.environ, "GNUPGHOME": str(home)}
    return subprocess.run(
        ["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "", *args],
        input=data, env=env, capture_output=True, check=True,
    ).stdout  # fmt: skip


@pytest.fixture(scope="module")
def cuda_server(tmp_path_factory):
    """(repo base URL, flat repo dir, key sha256): the TEST DOUBLE of NVIDIA's repository."""
    root = tmp_path_factory.mktemp("cuda")
    home = root / "gnupg"
    home.mkdir(mode=0o700)
    _gpg(home, "--quick-gen-key", "airig test CUDA repository <t@example.invalid>",
         "ed25519", "sign", "never")  # fmt: skip
    flat = root / "srv/repos/debian12/x86_64"
    flat.mkdir(parents=True)
    key = _gpg(home, "--armor", "--export")
    (flat / "3bf863cc.pub").write_bytes(key)
    paragraphs = []
    for name, version, depends in PACKAGES:
        control, deb = _standin_deb(
            name, version, "TEST DOUBLE (airig)", _tar_gz([]), None, depends
        )
        path = flat / f"{name}_{version}_all.deb"
        path.write_bytes(deb)
        digest = hashlib.sha256(deb).hexdigest()
        where = f"Filename: ./{path.name}\nSize: {len(deb)}\nSHA256: {digest}\n"
        paragraphs.append(control.replace("Description:", where + "Description:"))
    packages = "\n".join(paragraphs).encode()
    (flat / "Packages").write_bytes(packages)
    release = (
        "Origin: TEST DOUBLE of NVIDIA's CUDA repository\nLabel: airig\nSuite: ./\nSHA256:\n"
        f" {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n"
    ).encode()
    (flat / "InRelease").write_bytes(_gpg(home, "--clearsign", data=release))
    httpd = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(RangeHandler, directory=str(root / "srv"))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/repos", flat, hashlib.sha256(key).hexdigest()
    httpd.shutdown()


def _profile():
    return profiles.from_data({
        "name": "blackwell", "description": "t", "gpus": BLACKWELL,
        "driver": {"min_branch": 580, "open_kernel_modules": True},
        "engines": ["llama_cpp"], "agents": [], "models": [],
    })  # fmt: skip


def _cfg(url: str, key_sha256: str) -> dict:
    return {
        **bundle.settings(None),
        "nvidia_driver_source": "cuda_repo",
        "nvidia_driver_branch": "580",
        "nvidia_driver_cuda_repo_url": url,
        "nvidia_driver_cuda_key_checksum": f"sha256:{key_sha256}" if key_sha256 else "",
    }


def _update(tmp_path, cfg):
    """apt update through the CUDA repository these settings name."""
    cuda = bundle.cuda_repo(_profile(), cfg, "bookworm")
    bundle.Apt(tmp_path, "bookworm", ["main"], cuda, suites=[]).update()


def test_the_cuda_repository_is_bundled_signed_pinned_and_where_the_role_looks(
    cuda_server, tmp_path
):
    url, flat, key_sha256 = cuda_server
    cfg = _cfg(url, key_sha256)
    cuda = bundle.cuda_repo(_profile(), cfg, "bookworm")
    assert cuda is not None and (cuda.distro, cuda.key_file, cuda.pin) == (
        "debian12",
        "3bf863cc.pub",
        True,
    )
    assert bundle.apt_wanted(_profile(), cfg, "bookworm")["nvidia_driver"][0] == "nvidia-open-580"
    apt = bundle.Apt(tmp_path, "bookworm", ["main"], cuda, suites=[])
    apt.update()
    rows = apt.uris(["nvidia-open-580"])
    # The branch pin (the role's own preferences file) keeps the module on 580, not 595.
    assert sorted(r[1] for r in rows) == [
        "nvidia-kernel-open-dkms_580.95.05-1_all.deb",
        "nvidia-open-580_580.95.05-1_all.deb",
    ]
    paths = {apt.bundle_path(r[0]) for r in rows}
    assert paths == {
        "apt/cuda/debian12/x86_64/nvidia-open-580_580.95.05-1_all.deb",
        "apt/cuda/debian12/x86_64/nvidia-kernel-open-dkms_580.95.05-1_all.deb",
    }
    for r in rows:  # what apt would fetch is what the repository holds
        assert r[3] == hashlib.sha256((flat / r[1]).read_bytes()).hexdigest()
    index = {i.path: i for i in apt.indices()}
    assert set(index) == {
        "apt/cuda/debian12/x86_64/3bf863cc.pub",
        "apt/cuda/debian12/x86_64/InRelease",
        "apt/cuda/debian12/x86_64/Packages",
    }
    assert index["apt/cuda/debian12/x86_64/3bf863cc.pub"].sha256 == key_sha256
    assert index["apt/cuda/debian12/x86_64/InRelease"].sha256 == hashlib.sha256(
        (flat / "InRelease").read_bytes()).hexdigest()  # fmt: skip


def test_without_the_pin_the_newer_branch_would_come(cuda_server, tmp_path):
    """The control: the pin is what keeps the module on 580 (else the test could not fail)."""
    url, _, key_sha256 = cuda_server
    cuda = bundle.cuda_repo(_profile(), _cfg(url, key_sha256), "bookworm")
    assert cuda is not None
    unpinned = bundle.CudaRepo(cuda.url, cuda.distro, cuda.key_file, cuda.key_sha256, 580, False)
    apt = bundle.Apt(tmp_path, "bookworm", ["main"], unpinned, suites=[])
    apt.update()
    assert "nvidia-kernel-open-dkms_595.45.04-1_all.deb" in {
        r[1] for r in apt.uris(["nvidia-open-580"])}  # fmt: skip


def test_a_key_that_is_not_the_pinned_one_is_neither_bundled_nor_trusted(cuda_server, tmp_path):
    url, _, _ = cuda_server
    with pytest.raises(bundle.BundleError, match=r"not the 0{64} nvidia_driver_cuda_key_checksum"):
        _update(tmp_path, _cfg(url, "0" * 64))


def test_an_index_not_signed_by_that_key_is_refused(cuda_server, tmp_path):
    url, flat, key_sha256 = cuda_server
    signed = (flat / "InRelease").read_bytes()
    try:
        (flat / "InRelease").write_bytes(signed.replace(b"Label: airig", b"Label: evil!"))
        with pytest.raises(bundle.BundleError, match="apt-get update"):
            _update(tmp_path, _cfg(url, key_sha256))
    finally:
        (flat / "InRelease").write_bytes(signed)


def test_without_a_checksum_the_key_is_checked_by_the_pinned_fingerprint(cuda_server, tmp_path):
    """Issue 30 item 1: no checksum to supply. The key's fingerprint must be the one airig's
    data pins for NVIDIA's repository: the TEST DOUBLE's own key is refused under it, and
    trusted when nvidia_driver_cuda_key_fingerprint names it (a mirror's own key)."""
    url, flat, key_sha256 = cuda_server
    cfg = _cfg(url, "")
    cuda = bundle.cuda_repo(_profile(), cfg, "bookworm")
    assert cuda is not None and cuda.key_fingerprint == "EB693B3035CD5710E231E123A4B469963BF863CC"
    with pytest.raises(
        bundle.BundleError, match=r"not the EB693B3035CD5710E231E123A4B469963BF863C"
    ):
        _update(tmp_path / "a", cfg)
    home = flat.parents[3] / "gnupg"
    colons = _gpg(home, "--with-colons", "--list-keys").decode()
    own = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:"))
    assert bundle.key_fingerprint((flat / "3bf863cc.pub").read_bytes()) == own
    mirror = {**cfg, "nvidia_driver_cuda_key_fingerprint": own}
    apt = bundle.Apt(tmp_path / "b", "bookworm", ["main"], bundle.cuda_repo(_profile(), mirror,
                     "bookworm"), suites=[])  # fmt: skip
    apt.update()
    index = {i.path: i for i in apt.indices()}
    assert index["apt/cuda/debian12/x86_64/3bf863cc.pub"].sha256 == key_sha256


def test_cuda_repo_settings_are_checked_before_anything_is_fetched():
    for cfg in (
        {**_cfg("https://mirror.example/cuda", ""), "nvidia_driver_cuda_key_checksum": "md5:1"},
        {**_cfg("https://mirror.example/cuda", ""), "nvidia_driver_cuda_key_fingerprint": "abc"},
    ):
        with pytest.raises(InputError, match=r"nvidia_driver_cuda_key_(checksum|fingerprint)"):
            bundle.cuda_repo(_profile(), cfg, "bookworm")
    for bad in ("file:///etc", "https://mirror.example/cuda repos", "https://x/\nEvil: 1"):
        with pytest.raises(InputError, match="nvidia_driver_cuda_repo_url"):
            bundle.cuda_repo(_profile(), _cfg(bad, "a" * 64), "bookworm")


def test_provisioning_from_the_bundle_points_the_driver_role_at_its_copy():
    manifest = {
        "files": {"apt/cuda/debian12/x86_64/3bf863cc.pub": {"sha256": "a" * 64}},
        "provides": {"nvidia_driver_cuda_repo": {"path": "apt/cuda"}},
    }
    got = bundle.provision_vars(manifest, "http://127.0.0.1:8767", {"name": "t", "models": []})
    # The role fetches <url>/debian12/x86_64/3bf863cc.pub (checked) and adds that flat source.
    assert got["nvidia_driver_cuda_repo_url"] == "http://127.0.0.1:8767/apt/cuda"


def test_the_bundle_roles_apt_source_for_the_cuda_repository():
    template = (REPO / "roles/bundle/templates/apt-bundle.list.j2").read_text()
    line = next(ln for ln in template.splitlines() if "apt/cuda" in ln)
    assert line == (
        "deb [signed-by=/usr/share/keyrings/airig-cuda-archive-keyring.asc check-valid-until=no]"
        " {{ bundle__url }}/apt/cuda/{{ bundle__manifest.apt.cuda.distro }}/x86_64/ /"
    )
    # the key the bundle role trusts is where the nvidia_driver role puts and checks it
    role = (REPO / "roles/nvidia_driver/tasks/repo_cuda.yml").read_text()
    assert "dest: /usr/share/keyrings/airig-cuda-archive-keyring.asc" in role


def test_a_gpu_llama_cpp_build_bundles_the_cuda_toolkit_wheels_the_role_pins(tmp_path):
    """llama_cpp_cuda_toolkit: pypi (the default): NVIDIA's wheels of the role's hashed
    requirements, resolved by pip for the target (PyPI's metadata; nothing is downloaded)."""
    plan = bundle.Plan("blackwell", {**bundle.TARGETS["bookworm"], "release": "bookworm"})
    bundle.plan_engines(plan, _profile(), bundle.settings(None), tmp_path)
    wheels = [i for i in plan.items if i.role == "llama_cpp" and i.path.endswith(".whl")]
    req = (REPO / "roles/llama_cpp/files/requirements/cuda-toolkit-13.0.txt").read_text()
    names = {w.path.split("/")[-1].split("-")[0] for w in wheels}
    assert {"nvidia_cuda_nvcc", "nvidia_cuda_runtime", "nvidia_cublas", "nvidia_cuda_cccl"} <= names
    for w in wheels:  # each wheel is one the role's requirements pin by hash
        assert f"--hash=sha256:{w.sha256}" in req, w.path
    assert plan.provides["llama_cpp_cuda_pip_index_url"] == {"path": "pypi/simple/"}
    manifest = {
        "files": {w.path: {"sha256": w.sha256} for w in wheels},
        "provides": {"llama_cpp_cuda_pip_index_url": {"path": "pypi/"}},
    }
    got = bundle.provision_vars(manifest, "http://127.0.0.1:8767", {"name": "t", "models": []})
    assert got["llama_cpp_cuda_pip_index_url"] == "http://127.0.0.1:8767/pypi/"


def test_the_toolkit_from_the_cuda_repository_comes_with_it_or_is_refused():
    cfg = {**_cfg("https://mirror.example/cuda", "a" * 64), "llama_cpp_cuda_toolkit": "cuda_repo"}
    want = bundle.apt_wanted(_profile(), cfg, "bookworm")
    assert {"cuda-nvcc-13-0", "libcublas-dev-13-0"} <= set(want["llama_cpp"])
    # a driver that is already there (not airig's): no CUDA repository for the toolkit's
    # packages to come from
    with pytest.raises(InputError, match="llama_cpp_cuda_toolkit cuda_repo"):
        bundle.apt_wanted(_profile(), {**cfg, "airig_manage_driver": False}, "bookworm")


def test_dcgm_exporter_comes_with_the_cuda_repository_the_observe_role_finds_it_in():
    """The observe role installs dcgm-exporter wherever an apt source offers it; the bundled CUDA
    repository's index does, so its package is bundled (else that install would fail offline)."""
    cfg = _cfg("https://mirror.example/cuda", "a" * 64)
    assert (
        "datacenter-gpu-manager-exporter"
        in bundle.apt_wanted(_profile(), cfg, "bookworm")["observe"]
    )
    off = bundle.apt_wanted(_profile(), {**cfg, "observe_dcgm_exporter": False}, "bookworm")
    assert "datacenter-gpu-manager-exporter" not in off["observe"]
