"""Real state of a box after the base role (testinfra, inside the container)."""

import pytest

PACKAGES = [
    "build-essential",
    "cmake",
    "git",
    "curl",
    "ca-certificates",
    "gnupg",
    "python3-venv",
    "python3-pip",
    "pciutils",
    "jq",
    "rsync",
    "zstd",
    "less",
    "systemd-timesyncd",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_package_installed(host, name):
    assert host.package(name).is_installed


def test_tools_run(host):
    assert host.run("cmake --version").rc == 0
    assert host.run("lspci --version").rc == 0
    assert host.run("python3 -m venv /tmp/probe-venv").rc == 0


@pytest.mark.parametrize(
    ("path", "mode"),
    [
        ("/srv/airig", 0o755),
        ("/srv/airig/models", 0o2755),
        ("/srv/airig/keys", 0o750),
        ("/srv/airig/state", 0o750),
    ],
)
def test_data_dir(host, path, mode):
    f = host.file(path)
    assert f.is_directory and f.user == "root" and f.group == "airig" and f.mode == mode


def test_data_group_is_a_system_group(host):
    assert host.group("airig").exists and host.group("airig").gid < 1000


def test_listed_package_is_held(host):
    assert host.check_output("dpkg --get-selections jq").split() == ["jq", "hold"]


def test_time_sync_enabled(host):
    assert host.service("systemd-timesyncd").is_enabled
