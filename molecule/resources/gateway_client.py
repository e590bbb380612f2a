"""A client of the fleet gateway for the gateway and fleet scenarios' tests: one request, sent
as a client on the network would (the gateway containers share this machine's network)."""

import json
import ssl
import urllib.error
import urllib.request


def call(port, key=None, model="airig-tiny", text="hello", path="/v1/chat/completions", **ask):
    """(status, body) of one request to the gateway on 127.0.0.1:port; `ask` adds to the
    completion request (stream=True, stream_options=...)."""
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    data = None
    if path.endswith("completions"):
        data = json.dumps({"model": model, "messages": [{"role": "user", "content": text}], **ask})
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(f"https://127.0.0.1:{port}{path}", data=data and data.encode(), headers=headers)
    return _open(req, 30)


def _open(req, timeout):
    """(status, body) of one request to the gateway's self-signed endpoint."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # self-signed
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def stream_then_close(port, key, model, text, events=1):
    """Ask for a stream (no usage asked), read its first `events` events, then close the
    connection, as a client that stops reading does; returns the events read."""
    data = json.dumps({"model": model, "messages": [{"role": "user", "content": text}],
                       "stream": True}).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    req = urllib.request.Request(f"https://127.0.0.1:{port}/v1/chat/completions", data=data,
                                 headers=headers)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # self-signed
    got = []
    with urllib.request.urlopen(req, timeout=30, context=context) as r:
        for line in r:
            if line.startswith(b"data: {"):
                got.append(json.loads(line[6:]))
                if len(got) >= events:
                    break
    return got


def send(port, key, method, path, body=None):
    """(status, body) of any method and path with a JSON body, as a client may send them."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"https://127.0.0.1:{port}{path}", data=data, headers=headers, method=method
    )
    return _open(req, 30)


def send_raw(port, key, data, path="/v1/chat/completions"):
    """(status, body) of a POST whose body is exactly these bytes."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    req = urllib.request.Request(
        f"https://127.0.0.1:{port}{path}", data=data, headers=headers, method="POST"
    )
    return _open(req, 60)


def team_key(host, team):
    return host.file(f"/srv/airig/keys/team-{team}.key").content_string.strip()
