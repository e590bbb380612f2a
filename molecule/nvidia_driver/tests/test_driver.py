"""Real state after install on the first pinned version and an upgrade to the second
(testinfra, inside the container; the inventory names the versions)."""

import json

import pytest

COMPUTE_SET = ["nvidia-smi", "libnvidia-ml1", "libcuda1", "nvidia-persistenced"]


@pytest.fixture(scope="module")
def want(host):
    hv = host.ansible.get_variables()
    return {
        "old": hv["airig_test_driver_versions"][0],
        "new": hv["airig_test_driver_versions"][1],
        "module": hv["airig_test_module_package"],
    }


@pytest.mark.parametrize("name", ["nvidia-smi", "libnvidia-ml1", "libcuda1"])
def test_upgraded_to_the_new_pin(host, want, name):
    assert host.package(name).version == want["new"]


def test_kernel_module_package_upgraded(host, want):
    assert host.package(want["module"]).version == want["new"]


def test_python_nvml_binding_installed(host):
    assert host.package("python3-pynvml").is_installed


def test_every_driver_package_is_held(host):
    # The driver family (the role's nvidia_driver__family_regex), not e.g. glx-alternative-nvidia.
    listing = "dpkg --get-selections | grep -E '^(nvidia-|libnvidia-|libcuda1|firmware-nvidia-gsp)'"
    rows = host.check_output(listing).splitlines()
    names = {r.split()[0].split(":")[0]: r.split()[1] for r in rows}
    assert {*COMPUTE_SET} <= set(names)
    assert set(names.values()) == {"hold"}, names


def test_pin_names_the_new_version(host, want):
    pin = host.file("/etc/apt/preferences.d/airig-nvidia-driver")
    assert pin.contains(f"Pin: version {want['new']}")
    assert pin.contains("Pin-Priority: 1001")


def test_debian_non_free_sources_are_signed(host):
    src = host.file("/etc/apt/sources.list.d/airig-nvidia-debian.sources")
    assert src.contains("Components: contrib non-free non-free-firmware")
    assert src.contains("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg")
    assert host.file("/usr/share/keyrings/debian-archive-keyring.gpg").exists


def test_nouveau_blacklisted(host):
    conf = host.file("/etc/modprobe.d/airig-blacklist-nouveau.conf")
    assert conf.contains("^blacklist nouveau$") and conf.contains("options nouveau modeset=0")


def test_persistenced_enabled(host):
    assert host.service("nvidia-persistenced").is_enabled


def test_power_limit_unit(host):
    unit = host.file("/etc/systemd/system/airig-gpu-power-limit.service")
    assert unit.contains("ExecStart=/usr/bin/nvidia-smi --power-limit=450")
    assert host.service("airig-gpu-power-limit").is_enabled


def test_reboot_required_signal(host, want):
    assert host.file("/var/run/reboot-required").exists
    assert want["module"] in host.file("/var/run/reboot-required.pkgs").content_string


def test_dkms_not_built_without_headers(host):
    out = host.check_output("dkms status")
    assert "nvidia" in out and "added" in out


def test_gpu_verify_reports_driver_not_loaded(host):
    report = json.loads(host.file("/srv/airig/state/gpu_verify.json").content_string)
    assert report["profile"] == "home" and report["matched"] is False
    assert report["error_kind"] == "driver_not_loaded"
    assert "modprobe nvidia" in report["msg"] and "Traceback" not in report["msg"]


def test_real_nvml_says_driver_not_loaded(host):
    cmd = host.run("python3 -c 'import pynvml; pynvml.nvmlInit()'")
    assert cmd.rc == 1 and "Driver Not Loaded" in cmd.stderr
    assert host.run("nvidia-smi").rc == 9
