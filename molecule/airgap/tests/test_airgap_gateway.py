"""The fleet's gateway with no network at all, set up by fleet.yml from the box's bundle (made
from an inventory with a gateway group, so HAProxy and its dependencies are in it): HAProxy and
the usage meter run, the endpoint refuses a request without a team key and says no box serves a
model (this fleet has no box exposing an engine), apt read the bundle only."""

import json

testinfra_hosts = ["airig-molecule-airgap-gateway"]


def test_the_gateway_has_no_network_but_loopback(host):
    links = host.check_output("ip -o link show").splitlines()
    assert len(links) == 1 and ": lo:" in links[0]


def test_haproxy_came_from_the_bundle_and_the_bundle_server_is_gone(host):
    assert host.package("haproxy").is_installed
    lists = host.check_output("ls /var/lib/airig/apt-bundle/lists").split()
    assert [n for n in lists if n.endswith("InRelease")]
    assert all(n.startswith("127.0.0.1:8767_apt_") for n in lists if n.endswith("InRelease"))
    manifest = json.loads(host.file("/var/lib/airig/bundle/manifest.json").content_string)
    assert "haproxy" in manifest["apt"]["packages"]["gateway"]
    assert not host.service("airig-bundle-server.service").is_running


def test_the_endpoint_and_the_meter_run(host):
    assert host.service("haproxy").is_running and host.service("airig-gateway-meter").is_running
    assert host.run("haproxy -c -q -f /etc/haproxy/haproxy.cfg").rc == 0
    key = host.file("/srv/airig/keys/team-airgap.key").content_string.strip()
    ask = (
        "python3 -c \"import json, ssl, sys, urllib.request, urllib.error; "
        "c = ssl.create_default_context(); c.check_hostname = False; "
        "c.verify_mode = ssl.CERT_NONE; "
        "h = {'Authorization': 'Bearer ' + sys.argv[1]} if sys.argv[1] else {}; "
        "r = urllib.request.Request('https://127.0.0.1:4443/v1/chat/completions', "
        "data=json.dumps({'model': 'm', 'messages': []}).encode(), headers=h)\n"
        "try: print(urllib.request.urlopen(r, context=c).status)\n"
        "except urllib.error.HTTPError as e: print(e.code)\" "
    )
    assert host.check_output(ask + "''") == "401"
    assert host.check_output(ask + key) == "404"
