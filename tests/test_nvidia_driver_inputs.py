"""nvidia_driver refuses bad input before anything changes: its validate tasks and argument
specs, run on localhost (they only read), and the templates of paths no container here can
reach (Ubuntu's archive, NVIDIA's CUDA repository)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent
ROLE = REPO / "roles" / "nvidia_driver"


def play(
    tmp_path: Path, tasks: list[dict[str, Any]], extra: dict[str, Any], *flags: str
) -> subprocess.CompletedProcess[str]:
    book = tmp_path / "play.yml"
    book.write_text(
        json.dumps(
            [
                {
                    "name": "Exercise nvidia_driver",
                    "hosts": "localhost",
                    "gather_facts": True,
                    "tasks": tasks,
                }
            ]
        )
    )
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "t")}
    return subprocess.run(
        [str(BIN / "ansible-playbook"), *flags, "-e", json.dumps(extra), str(book)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


VALIDATE = [
    {
        "name": "Validate",
        "ansible.builtin.include_role": {
            "name": "airig.rig.nvidia_driver",
            "tasks_from": "validate",
        },
    }
]
OK = {"nvidia_driver_branch": "535", "nvidia_driver_secure_boot": "off"}


def flat(run: subprocess.CompletedProcess[str]) -> str:
    return " ".join((run.stdout + run.stderr).split())


@pytest.fixture(autouse=True)
def _debian_12_only() -> None:
    release = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    if 'VERSION_ID="12"' not in release or "ID=debian" not in release:
        pytest.skip("these checks run the role's validation against this Debian 12 machine")


def test_valid_input_passes(tmp_path: Path) -> None:
    run = play(tmp_path, VALIDATE, OK)
    assert run.returncode == 0, flat(run)


def test_the_default_on_debian_with_a_blackwell_box_is_nvidias_repository(tmp_path: Path) -> None:
    """Issue 30 item 1: the role's defaults (source auto, branch 580) on this Debian 12 machine
    for a Blackwell box: Debian's packages carry 535 only, so NVIDIA's CUDA repository, its key
    checked by the fingerprint airig pins, no checksum asked of anyone."""
    show = {
        "name": "Show",
        "ansible.builtin.debug": {
            "msg": "source={{ nvidia_driver__source }} fpr={{ nvidia_driver__key_fingerprint }}"
        },
    }
    run = play(
        tmp_path,
        [*VALIDATE, show],
        {"nvidia_driver_secure_boot": "off", "nvidia_driver_compute_capability": "12.0"},
    )
    assert run.returncode == 0, flat(run)
    assert "source=cuda_repo fpr=EB693B3035CD5710E231E123A4B469963BF863CC" in flat(run)


@pytest.mark.parametrize(
    ("extra", "want"),
    [
        ({"nvidia_driver_gpu_count": 2, "nvidia_driver_compute_capability": "12.0"}, True),
        ({"nvidia_driver_gpu_count": 1, "nvidia_driver_compute_capability": "12.0"}, False),
        ({"nvidia_driver_gpu_count": 4, "nvidia_driver_compute_capability": "8.9"}, False),
        (
            {
                "nvidia_driver_gpu_count": 2,
                "nvidia_driver_compute_capability": "12.0",
                "nvidia_driver_uvm_disable_hmm": False,
            },
            False,
        ),
        ({"nvidia_driver_gpu_count": 1, "nvidia_driver_uvm_disable_hmm": "true"}, True),
    ],
)
def test_uvm_hmm_is_disabled_where_cuda_would_not_start(
    tmp_path: Path, extra: dict[str, Any], want: bool
) -> None:
    """Issue 30 item 14: NVIDIA's workaround (nvidia_uvm uvm_disable_hmm=1) for multi-GPU
    Blackwell boxes on the open modules, by the rule in drivers.yml; true/false decide."""
    show = {
        "name": "Show",
        "ansible.builtin.debug": {"msg": "hmm={{ nvidia_driver__uvm_disable_hmm }}"},
    }
    base = {"nvidia_driver_secure_boot": "off", "nvidia_driver_branch": "580"}
    run = play(tmp_path, [*VALIDATE, show], {**base, **extra})
    assert run.returncode == 0, flat(run)
    assert f"hmm={want}" in flat(run)
    bad = play(tmp_path, VALIDATE, {**base, "nvidia_driver_uvm_disable_hmm": "sometimes"})
    assert bad.returncode == 2 and "uvm_disable_hmm auto, true or false" in flat(bad)


def test_the_key_check_reads_the_fingerprint_gpg_reads(tmp_path: Path) -> None:
    """The role's reader (files/airig_key_fingerprint.py) against gpg on keys made here, armored
    and binary; another key is refused with the one it has."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        [*gpg, "--quick-gen-key", "t <t@example.invalid>", "rsa2048", "sign", "never"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    colons = subprocess.run(
        [*gpg, "--with-colons", "--list-keys"], env=env, check=True, capture_output=True, text=True
    ).stdout
    want = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:"))
    script = ROLE / "files" / "airig_key_fingerprint.py"
    for armor in (["--armor"], []):
        key = tmp_path / ("k.asc" if armor else "k.gpg")
        key.write_bytes(
            subprocess.run(
                [*gpg, *armor, "--export"], env=env, check=True, capture_output=True
            ).stdout
        )
        ok = subprocess.run([sys.executable, script, key, want], capture_output=True, text=True)
        assert ok.returncode == 0 and ok.stdout.strip() == want, ok.stdout
        other = "EB693B3035CD5710E231E123A4B469963BF863CC"
        bad = subprocess.run([sys.executable, script, key, other], capture_output=True, text=True)
        assert bad.returncode == 1 and f"fingerprint {want}, not the {other}" in bad.stdout
    junk = tmp_path / "junk.pub"
    junk.write_text("<html>not found</html>")
    refused = subprocess.run([sys.executable, script, junk, want], capture_output=True, text=True)
    assert refused.returncode == 1 and "not an OpenPGP public key" in refused.stdout


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            {"nvidia_driver_compute_capability": "12.0", "nvidia_driver_open_modules": False},
            "NVIDIA supports them only with the open kernel modules on branch 570 or newer",
        ),
        (
            {"nvidia_driver_compute_capability": "12.0"},
            "NVIDIA supports them only with the open kernel modules on branch 570 or newer",
        ),
        (
            {"nvidia_driver_branch": "570"},
            "debian-12: the distribution's own packages carry driver branch 535, not 570: set "
            "nvidia_driver_branch: '535'",
        ),
        (
            {"nvidia_driver_version": "550.163.01-2"},
            "nvidia_driver_version empty or a version of that branch",
        ),
        ({"nvidia_driver_branch": "57"}, "a three-digit branch such as '580'"),
        (
            # reaches the apt preferences file: a newline would add a stanza of its own
            {"nvidia_driver_version": "535.261.03-1\nPackage: *\nPin-Priority: 1001"},
            "nvidia_driver_version empty or a version of that branch",
        ),
        ({"nvidia_driver_power_limit_w": 20}, "nvidia_driver_power_limit_w null or 50-1500 W"),
        (
            {"nvidia_driver_secure_boot": "on"},
            "Secure Boot is on: the kernel loads only signed modules",
        ),
        (
            # no checksum: the key is checked by its fingerprint, which must be one
            {
                "nvidia_driver_source": "cuda_repo",
                "nvidia_driver_branch": "580",
                "nvidia_driver_cuda_key_fingerprint": "3bf863cc",
            },
            "must be verified before apt trusts it",
        ),
        (
            {"nvidia_driver_source": "cuda_repo", "nvidia_driver_branch": "570"},
            "driver branch 570 (end of life): airig installs branches 580, 595",
        ),
        (
            {"nvidia_driver_version": "535.309.01-0+deb12u1", "nvidia_driver_open_modules": True},
            "contrib has no nvidia-open-kernel-dkms of that version",
        ),
    ],
)
def test_bad_input_is_refused_with_the_fix(
    tmp_path: Path, extra: dict[str, Any], needle: str
) -> None:
    run = play(tmp_path, VALIDATE, {**OK, **extra})
    assert run.returncode == 2, flat(run)
    assert needle in flat(run)


def test_secure_boot_with_a_mok_key_passes(tmp_path: Path) -> None:
    run = play(
        tmp_path,
        VALIDATE,
        {
            **OK,
            "nvidia_driver_secure_boot": "on",
            "nvidia_driver_mok_key": "/var/lib/shim-signed/mok/MOK.priv",
            "nvidia_driver_mok_cert": "/var/lib/shim-signed/mok/MOK.der",
        },
    )
    assert run.returncode == 0, flat(run)


def test_argument_spec_rejects_an_unknown_source(tmp_path: Path) -> None:
    tasks = [
        {
            "name": "Run the role",
            "ansible.builtin.include_role": {"name": "airig.rig.nvidia_driver"},
        }
    ]
    run = play(tmp_path, tasks, {**OK, "nvidia_driver_source": "runfile"}, "--check")
    assert run.returncode == 2
    assert "nvidia_driver_source" in flat(run) and "distro, cuda_repo" in flat(run)


def test_cuda_repo_templates(tmp_path: Path) -> None:
    out = tmp_path / "out"
    tasks = [
        {
            "name": "Resolve Ubuntu 24.04's driver set",
            "ansible.builtin.set_fact": {
                "nvidia_driver__matrix": "{{ lookup('airig.rig.driver_matrix', 'ubuntu-24.04', "
                "source='cuda_repo', branch='580', kernel='6.8.0-45-generic') }}"
            },
        },
        {
            "name": "Load the role's variables",
            "ansible.builtin.include_vars": {"file": str(ROLE / "vars" / "main.yml")},
        },
        {
            "name": "Render",
            "ansible.builtin.template": {
                "src": str(ROLE / "templates" / "{{ item }}.j2"),
                "dest": f"{out}/{{{{ item }}}}",
                "mode": "0644",
            },
            "loop": ["cuda.sources", "cuda-branch.pref", "nvidia-driver.pref"],
        },
        {
            "name": "Show the Ubuntu package set",
            "ansible.builtin.debug": {
                "msg": "{{ lookup('airig.rig.driver_matrix', 'ubuntu-24.04', source='distro', "
                "branch='580', kernel='6.8.0-45-generic', open_modules=item) }}"
            },
            "loop": [True, False],
        },
    ]
    out.mkdir()
    extra = {
        "nvidia_driver_branch": "580",
        "nvidia_driver_version": "580.95.05-0ubuntu1",
        "nvidia_driver_cuda_repo_url": "https://mirror.example.internal/cuda",
    }
    import yaml

    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    run = play(tmp_path, tasks, {**defaults, **extra})
    assert run.returncode == 0, flat(run)
    sources = (out / "cuda.sources").read_text()
    assert "URIs: https://mirror.example.internal/cuda/ubuntu2404/x86_64/" in sources
    assert "Signed-By: /usr/share/keyrings/airig-cuda-archive-keyring.asc" in sources
    assert "Pin: version 580.*" in (out / "cuda-branch.pref").read_text()
    assert "Pin: version 580.95.05-0ubuntu1" in (out / "nvidia-driver.pref").read_text()
    text = flat(run)
    for pkg in (
        "nvidia-headless-580-server-open",
        "linux-modules-nvidia-580-server-open-generic",
        "nvidia-headless-580-server",
        "nvidia-utils-580-server",
        "libnvidia-compute-580-server",
    ):
        assert pkg in text


def test_ubuntu_branch_move_finds_the_old_branch(tmp_path: Path) -> None:
    tasks = [
        {
            "name": "Plan the move",
            "ansible.builtin.include_role": {
                "name": "airig.rig.nvidia_driver",
                "tasks_from": "ubuntu_branch_move",
            },
        },
        {"name": "Show", "ansible.builtin.debug": {"var": "nvidia_driver__other_branch"}},
    ]
    extra = {
        "nvidia_driver_branch": "575",
        "nvidia_driver__wanted": ["nvidia-headless-575-server-open"],
        "nvidia_driver__installed_family": [
            "nvidia-headless-550-server-open",
            "nvidia-utils-550-server",
            "linux-modules-nvidia-550-server-open-generic",
            "libnvidia-compute-550-server",
            "nvidia-utils-575-server",
            "nvidia-firmware-575-575.57.08",
            "nvidia-kernel-common-575",
        ],
    }
    run = play(tmp_path, tasks, extra, "--check")
    assert run.returncode == 0, flat(run)
    text = flat(run)
    start = text.index("nvidia_driver__other_branch")
    shown = text[start : start + 400]
    for old in (
        "nvidia-headless-550-server-open",
        "nvidia-utils-550-server",
        "linux-modules-nvidia-550-server-open-generic",
        "libnvidia-compute-550-server",
    ):
        assert old in shown
    assert "575" not in shown.split("]")[0].replace("nvidia_driver__other_branch", "")
