"""The engines' sandbox as systemd applies it, probed with device nodes made by mknod (no GPU
here): inside a GPU engine's sandbox NVIDIA's nodes open with ENXIO (the device cgroup allows
them, no driver answers), never EPERM (denied), on both /proc/devices layouts."""

import pathlib
import re

import pytest

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "tests" / "data" / "proc_devices"
DROPIN = "/etc/systemd/system/{}.service.d/10-airig-hardening.conf"


NODES = [
    "/dev/nvidia0",
    "/dev/nvidia1",
    "/dev/nvidiactl",
    "/dev/nvidia-uvm",
    "/dev/nvidia-uvm-tools",
    "/dev/nvidia-caps/nvidia-cap1",
    "/dev/nvidia-caps/nvidia-cap2",
]


@pytest.fixture(scope="module")
def nodes(host):
    """The nodes scripts/test-devices made and molecule.yml passes in (no driver behind them)."""
    assert "nvidia" not in host.file("/proc/devices").content_string, "a real driver is loaded"
    for path in NODES:
        assert host.run(f"test -c {path}").rc == 0, path
    return NODES


def probe(host, unit):
    """Start the probe unit; return {path: errno name} from this start's journal lines."""
    start = host.run(f"systemctl start {unit}")
    assert start.rc == 0, start.stderr
    log = host.check_output(f"journalctl -o cat -u {unit} --no-pager")
    return dict(re.findall(r"^probe (\S+) (\S+)$", log, flags=re.M)[-7:])


def test_gpu_engine_opens_every_nvidia_node(host, nodes):
    """Issue 10 item 1: GPU engines could never see a GPU on driver >= 550.40 (char-nvidia-frontend
    only). Allowed by the cgroup means ENXIO here (no driver behind the node), never EPERM."""
    got = probe(host, "airig-gpu-probe.service")
    assert set(got) == set(nodes)
    assert got == dict.fromkeys(nodes, "ENXIO"), got


def test_old_rule_alone_denies_the_gpus(host, nodes):
    """The negative control: the rule the sandbox had before (char-nvidia-frontend, absent from
    /proc/devices since 550.40) denies the nodes, so EPERM is what a broken sandbox shows here."""
    unit = "airig-old-rule-probe.service"
    host.run(
        f"systemd-run --quiet --unit {unit} --wait --collect -p DevicePolicy=closed "
        "-p 'DeviceAllow=char-nvidia-frontend rw' "
        "/usr/bin/python3 /usr/local/lib/airig-probe.py " + " ".join(nodes)
    )
    log = host.check_output(f"journalctl -o cat -u {unit} --no-pager")
    got = dict(re.findall(r"^probe (\S+) (\S+)$", log, flags=re.M)[-len(nodes) :])
    assert got == dict.fromkeys(nodes, "EPERM"), got


def test_cpu_engine_sees_no_nvidia_node(host, nodes):
    """A CPU engine's sandbox (PrivateDevices=yes) has no NVIDIA node at all."""
    got = probe(host, "airig-cpu-probe.service")
    assert got == dict.fromkeys(nodes, "ENOENT"), got


@pytest.mark.parametrize("fixture", ["r535.txt", "r570.txt"])
def test_dropin_allows_every_nvidia_group(host, fixture):
    """Issue 10 item 1: both /proc/devices layouts (before and since 550.40) are allowed by name."""
    dropin = host.file(DROPIN.format("airig-gpu-probe")).content_string
    allowed = set(re.findall(r"^DeviceAllow=char-(\S+) rw$", dropin, flags=re.M))
    groups = {
        line.split()[1]
        for line in (FIXTURES / fixture).read_text().split("Block devices:")[0].splitlines()
        if line.strip()[:1].isdigit() and line.split()[1].startswith("nvidia")
    }
    assert groups and groups <= allowed, groups - allowed


def test_engine_gets_its_key_and_exact_arguments(host):
    """Issue 10 item 6: arguments with spaces or JSON arrive whole (read from /proc/PID/cmdline of
    the started unit, not re-parsed from a template); the key arrives as an environment
    variable, never on the command line."""
    unit = "airig-exec-readable.service"
    assert host.run(f"systemctl restart {unit}").rc == 0
    pid = host.check_output(f"systemctl show -p MainPID --value {unit}")
    for _ in range(50):
        argv = host.check_output(f"cat /proc/{pid}/cmdline | tr '\\0' '\\n'").splitlines()
        if argv[0] == "/usr/bin/python3":
            break
        host.run("sleep 0.1")
    assert argv[3:] == [
        "--alias",
        "two words",
        "--override-generation-config",
        '{"temperature": 0.6}',
        "$HOME",
        "it's",
    ]
    environ = host.check_output(f"cat /proc/{pid}/environ | tr '\\0' '\\n'").splitlines()
    assert "PROBE_API_KEY=probe-key-0123456789" in environ
    assert not any("probe-key" in a for a in argv)


def test_engine_whose_key_cannot_be_read_does_not_start(host):
    """Issue 10 item 2: fail closed. A key the engine's user cannot read stops the start with one
    journal line naming the file (exit 78, no restart loop), instead of serving without a key."""
    unit = "airig-exec-roots.service"
    host.run(f"systemctl start {unit}")
    host.run("sleep 1")
    assert host.check_output(f"systemctl show -p ActiveState --value {unit}") == "failed"
    assert host.check_output(f"systemctl show -p ExecMainStatus --value {unit}") == "78"
    assert host.check_output(f"systemctl show -p NRestarts --value {unit}") == "0"
    log = host.check_output(f"journalctl -o cat -u {unit} --no-pager")
    want = "probe-roots refuses to start: its API key /srv/airig-probe/roots.key cannot be read"
    assert want in log


def test_no_core_dumps_and_private_mounts(host):
    """Issue 10 item 14: a core dump would hold the key (LimitCORE=0); mounts stay private."""
    for unit in ("airig-gpu-probe.service", "airig-cpu-probe.service"):
        show = host.check_output(f"systemctl show -p LimitCORE -p PrivateMounts {unit}")
        assert "LimitCORE=0" in show and "PrivateMounts=yes" in show, show
