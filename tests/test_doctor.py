"""`airig doctor` (issue 11): the driver matrix a box would get and why, from this machine's
facts or from options naming another box; exit 0 works, 1 an engine needs more, 2 refused."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from airig import doctor
from airig.cli import app

RUNNER = CliRunner()


def run(*args: str) -> tuple[int, dict]:
    result = RUNNER.invoke(app, ["doctor", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def by_what(report: dict) -> dict[str, dict]:
    return {f["what"]: f for f in report["findings"]}


def test_hwe_box_with_the_business_profile() -> None:
    code, report = run(
        "--distro", "ubuntu-24.04", "--kernel", "6.11.0-29-generic", "--hwe", "-p", "business"
    )
    assert code == 0
    found = by_what(report)
    assert "generic-hwe-24.04" in found["kernel"]["why"]
    assert (
        found["kernel module"]["value"] == "linux-modules-nvidia-580-server-open-generic-hwe-24.04"
    )
    assert found["NVML"]["value"].startswith("libnvidia-compute-580-server")
    assert found["vllm"]["value"] == "0.33.0: CUDA 13.0, needs branch 580"
    assert report["resolved"]["packages"][0] == "nvidia-headless-580-server-open"


def test_old_python_fails_naming_why() -> None:
    code, report = run("--distro", "ubuntu-22.04", "--kernel", "6.8.0-40-generic", "-p", "business")
    assert code == 1
    fails = [f for f in report["findings"] if f["verdict"] == "fail"]
    assert [f["what"] for f in fails] == ["vllm"]
    assert "vllm needs Python 3.11 or newer; ubuntu-22.04's python3 is 3.10" in fails[0]["why"]


def test_branch_too_old_for_blackwell_is_refused() -> None:
    code, report = run(
        "--distro", "ubuntu-22.04", "--kernel", "6.8.0-40-generic", "--branch", "535", "-p", "team"
    )
    assert code == 2
    refused = [f for f in report["findings"] if f["verdict"] == "refused"]
    assert "on branch 570 or newer" in refused[0]["why"]


def test_refused_combination_exits_2_with_the_fix() -> None:
    code, report = run(
        "--distro", "debian-13", "--kernel", "6.12.57-1-amd64", "--source", "cuda_repo"
    )
    assert code == 2
    (refused,) = [f for f in report["findings"] if f["verdict"] == "refused"]
    assert (
        "starts at branch 590" in refused["why"] and "nvidia_driver_branch: '595'" in refused["why"]
    )


def test_reads_this_machine(tmp_path: Path) -> None:
    """Without options doctor reads /etc/os-release and uname -r (here: a recorded os-release)."""
    osr = tmp_path / "os-release"
    osr.write_text('PRETTY_NAME="Ubuntu 24.04.3 LTS"\nID=ubuntu\nVERSION_ID="24.04"\n')
    report = doctor.run(os_release=osr, kernel="6.8.0-45-generic", source="cuda_repo", branch="595")
    found = {f.what: f for f in report.findings}
    assert found["distribution"].why == f"from {osr}"
    assert found["packages"].value == "nvidia-driver-pinning-595 nvidia-open"
    assert report.exit_code == 0


def test_table_fits_a_narrow_terminal() -> None:
    result = RUNNER.invoke(
        app,
        ["doctor", "--distro", "ubuntu-24.04", "--kernel", "6.8.0-45-generic", "-p", "team"],
        env={"COLUMNS": "80"},
    )
    assert result.exit_code == 0, result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "Traceback" not in result.stdout


def test_unknown_distribution_is_refused() -> None:
    code, report = run("--distro", "rhel-9", "--kernel", "5.14.0-1-x")
    assert code == 2 and "airig provisions debian-12" in report["findings"][0]["why"]


def test_blackwell_profile_refuses_proprietary_modules() -> None:
    code, report = run(
        "--distro", "ubuntu-24.04", "--kernel", "6.8.0-45-generic", "--proprietary", "-p", "home"
    )
    assert code == 2
    assert "(Blackwell): NVIDIA supports them only with the open kernel modules" in " ".join(
        f["why"] for f in report["findings"]
    )


def test_the_readmes_first_steps_work_on_debian() -> None:
    """Issue 30 item 1: on Debian 12/13 `airig doctor`, `-p business` and even `-p cpu` exited 2
    (Debian's packages carry 535/550; 580 and Blackwell need NVIDIA's repository)."""
    cpu = CliRunner().invoke(app, ["doctor", "--distro", "debian-12", "-p", "cpu"])
    assert cpu.exit_code == 0, cpu.output
    cpu_text = " ".join(cpu.output.split())
    assert "no NVIDIA driver" in cpu_text and "verdict: works (exit 0)" in cpu_text
    business = CliRunner().invoke(
        app, ["doctor", "--distro", "debian-12", "-p", "business", "--json"]
    )
    report = json.loads(business.output)
    assert business.exit_code == 0, business.output
    assert report["resolved"]["source"] == "cuda_repo"
    assert report["resolved"]["key_fingerprint"] == "EB693B3035CD5710E231E123A4B469963BF863CC"
    assert any("source auto" in f["why"] for f in report["findings"])
    # Debian 13's own packages carry 550 and NVIDIA's repository there starts at 590: the way out
    trixie = CliRunner().invoke(app, ["doctor", "--distro", "debian-13", "-p", "home"])
    assert trixie.exit_code == 2
    text = " ".join(trixie.output.split())
    assert "nvidia_driver_branch: '595'" in text and "verdict: refused" in text
    assert (
        CliRunner()
        .invoke(app, ["doctor", "--distro", "debian-13", "-p", "home", "--branch", "595"])
        .exit_code
        == 0
    )
    # asked for explicitly, Debian's own source is still refused with the reason
    assert (
        CliRunner()
        .invoke(app, ["doctor", "--distro", "debian-12", "-p", "home", "--source", "distro"])
        .exit_code
        == 2
    )
