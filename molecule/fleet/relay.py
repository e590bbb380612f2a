#!/usr/bin/python3
"""Test harness: the fleet scenario's boxes live in network namespaces of their own (10.77.0.0/24,
made by prepare.yml), which reach nothing but the host's 10.77.0.1. This relays, on that address
only, what a site's own mirror would serve them (an apt-cacher-ng, a local artifact mirror):

  10.77.0.1:3142  an HTTP proxy for apt (Acquire::http::Proxy), to Debian's mirrors only;
                  .deb files are kept in CACHE_DIR (they never change under their name)
  10.77.0.1:8765  the local artifact mirror (tests/mirror/build.py, on 127.0.0.1:8765)

Real bytes both ways; status, length, range and date headers passed through.
Usage: relay.py ADDRESS CACHE_DIR   (runs until killed; prepare.yml starts it once)"""

import http.client
import http.server
import shutil
import sys
import threading
import urllib.parse
from pathlib import Path

ADDRESS, CACHE = sys.argv[1], Path(sys.argv[2])
DEBIAN = {"deb.debian.org", "security.debian.org"}
MIRROR = ("127.0.0.1", 8765)
PASS = ("Content-Length", "Content-Type", "Content-Range", "Accept-Ranges", "Last-Modified", "ETag")
ASK = ("Range", "If-Modified-Since", "If-Range", "If-None-Match", "Cache-Control")


class Relay(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: apt and get_url handle it

    def target(self) -> tuple[str, int, str] | None:
        if self.server.server_address[1] == MIRROR[1]:
            return (MIRROR[0], MIRROR[1], self.path) if ".." not in self.path else None
        url = urllib.parse.urlsplit(self.path)
        if url.scheme != "http" or url.hostname not in DEBIAN or ".." in url.path:
            return None
        return url.hostname, url.port or 80, url.path + (f"?{url.query}" if url.query else "")

    def do_HEAD(self) -> None:
        self.relay(body=False)

    def do_GET(self) -> None:
        self.relay(body=True)

    def relay(self, body: bool) -> None:
        where = self.target()
        if where is None:
            self.send_error(403, "only Debian's mirrors and the local mirror")
            return
        host, port, path = where
        cached = CACHE / host / path.lstrip("/")
        if path.endswith(".deb") and "Range" not in self.headers and cached.is_file():
            self.send_response(200)
            self.send_header("Content-Length", str(cached.stat().st_size))
            self.send_header("Content-Type", "application/vnd.debian.binary-package")
            self.end_headers()
            if body:
                with cached.open("rb") as f:
                    shutil.copyfileobj(f, self.wfile)
            return
        conn = http.client.HTTPConnection(host, port, timeout=120)
        try:
            headers = {k: self.headers[k] for k in ASK if k in self.headers}
            conn.request(self.command, path, headers=headers)
            resp = conn.getresponse()
            self.send_response(resp.status)
            for k in PASS:
                if resp.getheader(k):
                    self.send_header(k, resp.getheader(k))
            self.end_headers()
            if not body:
                return
            keep = path.endswith(".deb") and resp.status == 200
            part = cached.with_name(f"{cached.name}.{threading.get_ident()}.part")
            if keep:
                part.parent.mkdir(parents=True, exist_ok=True)
            with part.open("wb") if keep else open("/dev/null", "wb") as copy:
                while chunk := resp.read(1 << 16):
                    self.wfile.write(chunk)
                    copy.write(chunk)
            if keep:
                part.replace(cached)
        except OSError as exc:
            self.log_error("relay %s%s: %s", host, path, exc)
        finally:
            conn.close()

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


servers = [http.server.ThreadingHTTPServer((ADDRESS, p), Relay) for p in (3142, MIRROR[1])]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
