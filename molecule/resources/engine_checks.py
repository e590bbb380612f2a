"""Checks every engine scenario shares (imported by molecule/<engine>/tests/test_*.py)."""

import json
import re

EXPOSURE_MAX = 4.5


def exposure(host, unit):
    """systemd-analyze security's overall exposure of a unit (0 = locked down, 10 = open)."""
    out = host.check_output(f"systemd-analyze security --no-pager {unit}")
    return float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out).group(1))


def key(host, engine):
    return host.file(f"/srv/airig/keys/{engine}.key").content_string.strip()


def check_key_file(host, engine, owner="root"):
    f = host.file(f"/srv/airig/keys/{engine}.key")
    assert f.user == owner and f.group == "root" and f.mode == 0o600
    assert len(f.content_string.strip()) >= 32


def check_key_kept(host, engine):
    """The key hashed by side_effect before the re-run is the key now."""
    recorded = host.file(f"/root/{engine}.key.sha256").content_string.split()[0]
    now = host.check_output(f"sha256sum /srv/airig/keys/{engine}.key").split()[0]
    assert recorded == now


def check_key_not_logged(host, engine, unit):
    secret = key(host, engine)
    assert secret not in host.check_output(f"journalctl --no-pager -u '{unit}'")
    assert secret not in host.check_output(f"systemctl show '{unit}'")


def check_users_file_survives(host):
    f = host.file("/srv/airig/models/users-own.gguf")
    assert f.exists and f.content_string == "the user's own model, not airig's\n"


def check_loopback_only(host, port):
    listeners = host.check_output("ss -Hltn")
    bound = [
        line.split()[3] for line in listeners.splitlines() if line.split()[3].endswith(f":{port}")
    ]
    assert bound and all(b.startswith(("127.0.0.1:", "[::1]:")) for b in bound), bound


def http(host, url, key=None, body=None, method=None):
    """(status, body) of a request made inside the box with curl (the path sent as given)."""
    cmd = "curl -sk --path-as-is -o /tmp/resp -w '%{http_code}' --max-time 120"
    if method is not None:
        cmd += f" -X {method}"
    if key is not None:
        cmd += f" -H 'Authorization: Bearer {key}'"
    if body is not None:
        host.run(f"cat > /tmp/req.json << 'EOF'\n{json.dumps(body)}\nEOF")
        cmd += " -H 'Content-Type: application/json' --data @/tmp/req.json"
    status = int(host.check_output(f"{cmd} '{url}'"))
    return status, host.file("/tmp/resp").content_string
