"""Issue 11 items 1, 3, 4, 5 and 10: the driver matrix (src/airig/data/drivers.yml through
airig.matrix) gives every supported box package names that exist, and refuses what cannot
work. Names are checked against recorded package indices (tests/data/package_indices/):
Debian's real indices recorded here, Ubuntu's and NVIDIA's from public copies (each file says)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airig import matrix
from airig.profiles import drivers
from tests.conftest import REPO, play_tasks

INDICES = REPO / "tests" / "data" / "package_indices"


def index_names(name: str) -> set[str]:
    """The package names of one recorded index (deb822 stanzas, '#' comment lines)."""
    names = set()
    for line in (INDICES / f"{name}.Packages").read_text().splitlines():
        if line.startswith("Package: "):
            names.add(line.split(": ", 1)[1].strip())
    return names


def missing_names(combo: tuple[str, str, int, bool, str]) -> list[str]:
    """The names a combination asks for that its recorded indices do not hold."""
    r = matrix.resolve(*combo)
    distro_index = index_names(r.distro)
    repo_index = distro_index if r.source == "distro" else index_names(f"cuda-{r.cuda_distro}")
    asked = r.pre_packages + r.packages + r.module_packages + [r.nvml_library_package]
    return [n for n in asked if n not in repo_index] + (
        [] if r.nvml_python_package in distro_index else [r.nvml_python_package]
    )


COMBOS = matrix.combinations()


def test_every_distro_and_source_is_covered() -> None:
    seen = {(c[0], c[1]) for c in COMBOS}
    assert seen == {(d, s) for d in drivers()["distros"] for s in matrix.SOURCES}
    assert len(COMBOS) >= 40


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "-".join(str(x) for x in c))
def test_every_name_is_in_the_recorded_index(combo: tuple[str, str, int, bool, str]) -> None:
    assert missing_names(combo) == []


def test_a_name_missing_from_the_index_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: Ubuntu has no libnvidia-ml1 (issue 11 item 5)."""
    data = drivers()
    row = data["sources"]["distro"]["ubuntu"]
    monkeypatch.setitem(row, "nvml_library_package", "libnvidia-ml1")
    assert missing_names(("ubuntu-24.04", "distro", 580, True, "generic")) == ["libnvidia-ml1"]


def test_ubuntu_570_stubs_are_refused() -> None:
    """Item 1: on 24.04 the 570 packages are transitional stubs that pull 580."""
    with pytest.raises(matrix.MatrixError, match="transitional stubs that install 580"):
        matrix.resolve("ubuntu-24.04", "distro", 570)


@pytest.mark.parametrize(
    ("distro", "kernel", "installed", "flavour"),
    [
        ("ubuntu-24.04", "6.8.0-45-generic", [], "generic"),
        ("ubuntu-24.04", "6.11.0-29-generic", ["linux-generic-hwe-24.04"], "generic-hwe-24.04"),
        (
            "ubuntu-22.04",
            "6.8.0-40-generic",
            ["linux-image-generic-hwe-22.04"],
            "generic-hwe-22.04",
        ),
        ("ubuntu-24.04", "6.8.0-1015-aws", [], "aws"),
        ("debian-12", "6.1.0-26-amd64", [], ""),
    ],
)
def test_kernel_flavour(distro: str, kernel: str, installed: list[str], flavour: str) -> None:
    """Item 3: the module package follows the running kernel's flavour, as ubuntu-drivers."""
    assert matrix.kernel_flavour(distro, kernel, installed) == flavour


def test_hwe_kernel_gets_the_hwe_module_package() -> None:
    flavour = matrix.kernel_flavour(
        "ubuntu-24.04", "6.11.0-29-generic", ["linux-generic-hwe-24.04"]
    )
    r = matrix.resolve("ubuntu-24.04", "distro", 580, True, flavour)
    assert "linux-modules-nvidia-580-server-open-generic-hwe-24.04" in r.packages
    assert r.module_packages[0] == "linux-modules-nvidia-580-server-open-generic-hwe-24.04"
    with pytest.raises(matrix.MatrixError, match=r"expected the form 6\.8\.0-45-generic"):
        matrix.kernel_flavour("ubuntu-24.04", "6.8.0-45-generic\nx", [])


def test_cuda_repo_from_590_installs_the_pinning_package_first() -> None:
    """Item 4: unversioned nvidia-open after nvidia-driver-pinning-<branch>; no branch pin of
    our own; the Ubuntu module package is nvidia-dkms-open."""
    r = matrix.resolve("ubuntu-24.04", "cuda_repo", 595)
    assert r.pre_packages == ["nvidia-driver-pinning-595"]
    assert r.packages == ["nvidia-open"] and not r.branch_pin
    assert r.module_packages[0] == "nvidia-dkms-open"
    assert r.nvml_library_package == "libnvidia-compute"
    old = matrix.resolve("ubuntu-24.04", "cuda_repo", 580, open_modules=False)
    assert old.packages == ["cuda-drivers-580"] and old.branch_pin and not old.pre_packages
    assert old.module_packages == ["nvidia-dkms-580-open", "nvidia-dkms-580"]
    deb = matrix.resolve("debian-12", "cuda_repo", 580)
    assert deb.module_packages[0] == "nvidia-kernel-open-dkms" and deb.key_file == "3bf863cc.pub"
    assert deb.components == ["contrib"]  # python3-pynvml (item 10)


def test_debian_13_cuda_repo_key_and_first_branch() -> None:
    """Item 4: debian13 is signed with 8793F200 and starts at 590."""
    assert matrix.resolve("debian-13", "cuda_repo", 595).key_file == "8793F200.pub"
    with pytest.raises(matrix.MatrixError) as err:
        matrix.resolve("debian-13", "cuda_repo", 580)
    assert "starts at branch 590 (signed with key 8793F200)" in str(err.value)


def test_debian_12_open_module_of_535_309_is_refused() -> None:
    """Item 10: bookworm-security has no open-module build of 535.309.01."""
    with pytest.raises(matrix.MatrixError, match="contrib has no nvidia-open-kernel-dkms"):
        matrix.resolve("debian-12", "distro", 535, True, "", "535.309.01-0+deb12u1")
    matrix.resolve("debian-12", "distro", 535, False, "", "535.309.01-0+deb12u1")
    debian12 = (INDICES / "debian-12.Packages").read_text()
    assert "Package: nvidia-kernel-dkms\nVersion: 535.309.01-0+deb12u1" in debian12
    assert "Package: nvidia-open-kernel-dkms\nVersion: 535.309.01" not in debian12


def test_refusals_say_what_to_set() -> None:
    with pytest.raises(matrix.MatrixError, match="carry driver branch 535, not 580: set"):
        matrix.resolve("debian-12", "distro", 580)
    with pytest.raises(matrix.MatrixError, match="airig installs branches 580, 595"):
        matrix.resolve("ubuntu-24.04", "cuda_repo", 570)
    with pytest.raises(matrix.MatrixError, match="airig provisions debian-12"):
        matrix.resolve("rhel-9", "distro", 580)


def test_docs_table_is_generated_from_the_data() -> None:
    """docs/nvidia_driver.md carries the table python -m airig.matrix --markdown prints."""
    doc = (REPO / "docs" / "nvidia_driver.md").read_text()
    start = doc.index("<!-- matrix:begin")
    start = doc.index("\n", start) + 1
    end = doc.index("<!-- matrix:end -->")
    assert doc[start:end] == matrix.markdown_table(), (
        "regenerate: python -m airig.matrix --markdown"
    )


def run_play(tmp_path: Path, tasks: list[dict[str, object]], extra: dict[str, object]) -> str:
    run = play_tasks(tmp_path, tasks, extra)
    return f"rc={run.returncode} " + " ".join((run.stdout + run.stderr).split())


def test_lookup_resolves_and_refuses(tmp_path: Path) -> None:
    """The role's path: the lookup returns the matrix row; a refusal stops with the message."""
    show = {
        "name": "Show",
        "ansible.builtin.debug": {
            "msg": "{{ lookup('airig.rig.driver_matrix', 'ubuntu-24.04', source='distro', "
            "branch='580', kernel='6.11.0-29-generic', installed=['linux-generic-hwe-24.04']"
            ") | to_json }}"
        },
    }
    out = run_play(tmp_path, [show], {})
    assert (
        out.startswith("rc=0") and "linux-modules-nvidia-580-server-open-generic-hwe-24.04" in out
    )
    refuse = {
        "name": "Refuse",
        "ansible.builtin.debug": {
            "msg": "{{ lookup('airig.rig.driver_matrix', 'debian-13', source='cuda_repo', "
            "branch='580') }}"
        },
    }
    out = run_play(tmp_path, [refuse], {})
    assert out.startswith("rc=2") and "starts at branch 590" in out


@pytest.mark.parametrize(
    ("line", "version"),
    [
        (
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.95.05  Release Build  "
            "(dvs-builder@U22-I3-AF03-09-1)  Tue Sep 23 09:46:24 UTC 2025",
            "580.95.05",
        ),
        (
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.261.03  "
            "Wed Jul  9 19:56:54 UTC 2025",
            "535.261.03",
        ),
    ],
)
def test_loaded_module_version_is_read_from_proc(tmp_path: Path, line: str, version: str) -> None:
    """Item 5: the reboot signal reads the loaded module's version from /proc/driver/nvidia/
    version (a recorded copy here: no module loads on this machine) and asks dpkg which package
    owns libnvidia-ml.so.1."""
    proc = tmp_path / "version"
    proc.write_text(line + "\nGCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n")
    tasks = [
        {"name": "Facts", "ansible.builtin.package_facts": {"manager": "apt"}},
        {
            "name": "Signal",
            "ansible.builtin.include_role": {
                "name": "airig.rig.nvidia_driver",
                "tasks_from": "reboot_signal",
            },
        },
        {
            "name": "Show",
            "ansible.builtin.debug": {"msg": "loaded={{ nvidia_driver__module_loaded }}"},
        },
    ]
    extra = {
        "nvidia_driver__proc_version": str(proc),
        "nvidia_driver__module_before": ["1"],
        "nvidia_driver__module_after": ["1"],
        "nvidia_driver__kernel_module_packages": [],
        "nvidia_driver__in_container": True,
    }
    out = run_play(tmp_path, tasks, extra)
    assert out.startswith("rc=0"), out
    assert f"loaded={version}" in out


def test_python_floor_is_the_roles_and_refuses_jammy() -> None:
    """Item 8: vLLM and Hermes need Python 3.11; Ubuntu 22.04's python3 is 3.10. The roles'
    floors are the data file's."""
    import yaml

    floors = drivers()["python_min"]
    vllm_vars = yaml.safe_load((REPO / "roles/vllm/vars/main.yml").read_text())
    agent_vars = yaml.safe_load((REPO / "roles/agent/vars/main.yml").read_text())
    assert vllm_vars["vllm__python_min"] == floors["vllm"]
    assert agent_vars["agent__hermes_python_min"] == floors["hermes"]
    assert "Python 3.11 or newer; ubuntu-22.04's python3 is 3.10" in str(
        matrix.python_refusal("ubuntu-22.04", "vllm")
    )
    assert matrix.python_refusal("ubuntu-24.04", "hermes") is None


@pytest.mark.parametrize(
    ("role", "extra", "needle"),
    [
        (
            "vllm",
            {"vllm__python": "3.10"},
            "vLLM 0.33.0 needs Python 3.11 or newer, and this box's python3 is 3.10",
        ),
        (
            "agent",
            {"agent__python": "3.10", "agent_names": ["hermes"]},
            "Hermes Agent needs Python 3.11 or newer",
        ),
    ],
)
def test_roles_refuse_an_old_python(
    tmp_path: Path, role: str, extra: dict[str, object], needle: str
) -> None:
    from airig import profiles

    task = {
        "name": "Validate",
        "ansible.builtin.include_role": {"name": f"airig.rig.{role}", "tasks_from": "validate"},
    }
    out = run_play(tmp_path, [task], {"profile_spec": profiles.load("business").raw, **extra})
    assert out.startswith("rc=2"), out[-2000:]
    assert needle in out


def test_cuda_toolkit_is_the_data_files() -> None:
    """Item 9: the llama_cpp role's toolkit (version, branch, apt names, hashed wheels) is the
    data file's, and the apt names are in NVIDIA's recorded indices."""
    import yaml

    data = drivers()["cuda_toolkit"]
    role = yaml.safe_load((REPO / "roles/llama_cpp/vars/main.yml").read_text())
    assert role["llama_cpp__cuda_version"] == data["version"]
    assert role["llama_cpp__cuda_min_branch"] == data["min_branch"]
    assert role["llama_cpp__cuda_repo_packages"] == data["cuda_repo_packages"]
    for cuda_distro in ("debian12", "debian13", "ubuntu2204", "ubuntu2404"):
        assert set(data["cuda_repo_packages"]) <= index_names(f"cuda-{cuda_distro}")
    reqs = REPO / f"roles/llama_cpp/files/requirements/cuda-toolkit-{data['version']}.txt"
    text = reqs.read_text()
    pins = dict(line.split(" ")[0].split("==") for line in text.splitlines() if "==" in line)
    assert set(pins) == {
        "nvidia-cublas",
        "nvidia-cuda-cccl",
        "nvidia-cuda-crt",
        "nvidia-cuda-nvcc",
        "nvidia-cuda-runtime",
        "nvidia-nvvm",
    }
    assert all(v.startswith(data["version"]) for k, v in pins.items() if k != "nvidia-cublas")
    assert text.count("--hash=sha256:") == len(pins)


def test_llama_cpp_refuses_a_driver_too_old_for_its_toolkit(tmp_path: Path) -> None:
    from airig import profiles

    data = profiles.load("home").raw
    data["driver"]["min_branch"] = 570
    task = {
        "name": "Validate",
        "ansible.builtin.include_role": {"name": "airig.rig.llama_cpp", "tasks_from": "validate"},
    }
    out = run_play(tmp_path, [task], {"profile_spec": data})
    assert out.startswith("rc=2"), out[-2000:]
    assert "The CUDA 13.0 toolkit airig installs needs NVIDIA driver branch 580" in out
    out = run_play(tmp_path, [task], {"profile_spec": data, "llama_cpp_cuda_toolkit": "system"})
    assert out.startswith("rc=0"), out[-2000:]


def test_blackwell_needs_open_modules_from_the_data() -> None:
    with pytest.raises(matrix.MatrixError, match=r"compute capability 12\.0 \(Blackwell\)"):
        matrix.resolve("ubuntu-24.04", "distro", 580, False, "generic", "", "12.0")
    with pytest.raises(matrix.MatrixError, match="nvidia_driver_branch: '580'"):
        matrix.resolve("debian-12", "distro", 535, True, "", "", "12.0")
    assert matrix.resolve("ubuntu-24.04", "distro", 580, True, "generic", "", "12.0").packages
    assert matrix.resolve("debian-12", "distro", 535, False, "", "", "8.9").packages


@pytest.mark.parametrize("loaded", [True, False])
def test_version_report_reads_the_loaded_module(tmp_path: Path, loaded: bool) -> None:
    """Item 5: the box's version report takes the driver version from the loaded module
    (/proc/driver/nvidia/version; a recorded copy here), else from the package that owns
    libnvidia-ml.so.1 - none on this machine, which the report says instead of guessing."""
    proc = tmp_path / "version"
    if loaded:
        proc.write_text(
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.95.05  Release Build  "
            "(dvs-builder@U22-I3-AF03-09-1)  Tue Sep 23 09:46:24 UTC 2025\n"
        )
    tasks = [
        {
            "name": "Versions",
            "ansible.builtin.import_tasks": str(REPO / "playbooks/tasks/versions.yml"),
        },
        {"name": "Show", "ansible.builtin.debug": {"msg": "driver=[{{ v.driver }}]"}},
    ]
    extra = {
        "airig_versions_fact": "v",
        "profile_spec": {"engines": []},
        "airig_versions_driver_proc": str(proc),
    }
    out = run_play(tmp_path, tasks, extra)
    assert out.startswith("rc=0"), out[-2000:]
    if loaded:
        assert "driver=[580.95.05 (loaded module)]" in out
    else:  # this machine has no NVML library; one that has says "(<package>; module not loaded)"
        assert "driver=[not answering (rc 1)]" in out or "; module not loaded)]" in out


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"llama_cpp_cuda_toolkit_dir": "/opt/cuda 13"}, "must be absolute paths"),
        ({"llama_cpp_cuda_toolkit_dir": "/opt/airig/../../etc"}, "without '.' or '..' parts"),
        ({"llama_cpp_cuda_toolkit_dir": "opt/cuda"}, "must be absolute paths"),
        ({"llama_cpp_cuda_home": "/usr/local/cuda;id"}, "must be absolute paths"),
        ({"llama_cpp_cuda_home": "/usr/local/cuda\n"}, "must be absolute paths"),
        (
            {"llama_cpp_cuda_pip_index_url": "http://mirror/simple --trusted-host evil"},
            "an http(s) URL without spaces",
        ),
        ({"llama_cpp_cuda_pip_index_url": "file:///srv/wheels"}, "an http(s) URL"),
        ({"llama_cpp_cuda_pip_index_url": "--pre"}, "an http(s) URL"),
    ],
)
def test_llama_cpp_cuda_values_are_checked_for_their_use(
    tmp_path: Path, extra: dict[str, object], needle: str
) -> None:
    """The toolkit's directory and home reach root's build script and symlink targets, its index
    URL pip's command line: no spaces, shell characters, newlines, '..' or other schemes."""
    from airig import profiles

    task = {
        "name": "Validate",
        "ansible.builtin.include_role": {"name": "airig.rig.llama_cpp", "tasks_from": "validate"},
    }
    out = run_play(tmp_path, [task], {"profile_spec": profiles.load("home").raw, **extra})
    assert out.startswith("rc=2"), out[-2000:]
    assert needle in out
