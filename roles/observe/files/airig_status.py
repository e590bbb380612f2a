#!/usr/bin/python3
# Copyright: airig engineers
# Apache-2.0 (see galaxy.yml)
"""airig's status page: one HTML page on 127.0.0.1, rendered at each request from this box's
Prometheus (GPU memory against capacity, temperatures, per-engine GPU memory, targets, alerts)
and its state files (summary.json: endpoints, engines, the last provisioning; check.json: each
engine's plan against what it allocated). No JavaScript, nothing fetched from elsewhere.
"""

from __future__ import annotations

import argparse
import html
import json
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

GB = 1e9
BAR_WIDTH = 360


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        data = json.load(response)
    return list(data.get("data", {}).get("result", []))


def _by_gpu(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {r["metric"].get("gpu", "?"): float(r["value"][1]) for r in rows}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _summary(raw: Any, problems: list[str]) -> dict[str, Any] | None:
    """summary.json as the page uses it: an object whose endpoints are objects."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("endpoints", []), list):
        problems.append("summary.json is not airig's summary (an object with a list of endpoints)")
        return None
    raw["endpoints"] = [ep for ep in raw.get("endpoints", []) if isinstance(ep, dict)]
    return raw


def _checks(raw: Any, problems: list[str]) -> list[dict[str, Any]]:
    """check.json as the page uses it: a list of objects whose terms map a name to numbers;
    what is not is left out and named (issue 29 item 13: it dropped the connection)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append("check.json is not a list of engine checks (run airig check again)")
        return []
    out = []
    for c in raw:
        terms = c.get("terms") if isinstance(c, dict) else None
        try:
            if not isinstance(c, dict) or not isinstance(terms or {}, dict):
                raise ValueError("not an object with terms")
            clean = {
                str(name): {"plan_gb": float(t["plan_gb"]), "actual_gb": float(t["actual_gb"])}
                for name, t in (terms or {}).items()
            }
        except (KeyError, TypeError, ValueError):
            problems.append("check.json holds an entry the page cannot read; it is left out")
            continue
        out.append({**c, "terms": clean})
    return out


def collect(prometheus: str, state: Path) -> dict[str, Any]:
    """Everything the page shows; what cannot be read is named, not fatal."""
    data: dict[str, Any] = {"problems": [], "gpus": [], "targets": [], "alerts": [], "units": []}
    try:
        used = _by_gpu(_query(prometheus, "airig_gpu_memory_used_bytes"))
        total = _by_gpu(_query(prometheus, "airig_gpu_memory_total_bytes"))
        temp = _by_gpu(_query(prometheus, "airig_gpu_temperature_celsius"))
        names = {
            r["metric"].get("gpu", "?"): r["metric"].get("name", "")
            for r in _query(prometheus, "airig_gpu_info")
        }
        for gpu in sorted(total, key=lambda g: (len(g), g)):
            data["gpus"].append(
                {
                    "gpu": gpu,
                    "name": names.get(gpu, ""),
                    "used": used.get(gpu, 0.0),
                    "total": total[gpu],
                    "temperature": temp.get(gpu),
                }
            )
        data["units"] = [
            {"gpu": r["metric"].get("gpu", "?"), "unit": r["metric"].get("unit") or "(no service)",
             "bytes": float(r["value"][1])}
            for r in _query(prometheus, "airig_gpu_process_memory_bytes")
        ]  # fmt: skip
        data["targets"] = [
            {"job": r["metric"].get("job", ""), "instance": r["metric"].get("instance", ""),
             "up": r["value"][1] == "1"}
            for r in _query(prometheus, "up")
        ]  # fmt: skip
        with urllib.request.urlopen(f"{prometheus}/api/v1/alerts", timeout=5) as response:
            data["alerts"] = json.load(response).get("data", {}).get("alerts", [])
    except (OSError, ValueError) as exc:
        data["problems"].append(f"Prometheus at {prometheus} did not answer: {exc}")
    data["summary"] = _summary(_read_json(state / "summary.json"), data["problems"])
    data["check"] = _checks(_read_json(state / "check.json"), data["problems"])
    runs = sorted((state / "burn").glob("*/burn.json"))  # named by time: the last is newest
    burn = _read_json(runs[-1]) if runs else None
    data["burn"] = {"when": runs[-1].parent.name, **burn} if isinstance(burn, dict) else None
    try:
        data["provisioned"] = time.strftime(
            "%Y-%m-%d %H:%M UTC", time.gmtime((state / "summary.json").stat().st_mtime)
        )
    except OSError:
        data["provisioned"] = None
        data["problems"].append(f"{state / 'summary.json'} is not readable: provision first")
    return data


def _bar(used: float, total: float, label: str) -> str:
    share = 0.0 if total <= 0 else min(1.0, used / total)
    fill = "#c0392b" if share > 0.9 else "#2e86c1"
    return (
        f'<svg class="bar" width="{BAR_WIDTH}" height="18" role="img" '
        f'aria-label="{html.escape(label)}">'
        f'<rect width="{BAR_WIDTH}" height="18" fill="#e5e8e8"/>'
        f'<rect width="{share * BAR_WIDTH:.1f}" height="18" fill="{fill}"/></svg>'
    )


def _burn(burn: dict[str, Any] | None) -> list[str]:
    """The last `airig burn`: when, the verdict, and each failure with what to do."""
    e = html.escape
    if not burn:
        return ["<p>No burn-in yet (airig burn).</p>"]
    verdict = "passed" if burn.get("passed") else "FAILED"
    pairs = burn.get("pairs") or []
    held = sum(1 for p in pairs if p.get("passed"))
    out = [
        f'<p class="{"up" if burn.get("passed") else "down"}" id="burn-verdict">'
        f"{e(str(burn.get('when', '')))}: {verdict}, {len(burn.get('gpus') or [])} GPUs under "
        f"{e(str(burn.get('load', '')))} load, {held} of {len(pairs)} GPU pairs all-reduced "
        "right</p>"
    ]
    lines = [
        (f"GPU {g.get('index')}", f)
        for g in burn.get("gpus") or []
        for f in g.get("failures") or []
    ]
    lines += [
        (f"GPUs {'-'.join(map(str, p.get('gpus') or []))}", f)
        for p in pairs
        for f in p.get("failures") or []
    ]
    lines += [("box", f) for f in burn.get("failures") or []]
    if lines:
        out.append("<ul>")
        out += [f'<li class="down">{e(who)}: {e(str(line))}</li>' for who, line in lines]
        out.append("</ul>")
    return out


def render(data: dict[str, Any]) -> str:
    """The page as HTML; every value from elsewhere is escaped."""
    e = html.escape
    summary = data.get("summary") or {}
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>airig: {e(str(summary.get('profile', 'this box')))}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:left}"
        ".down,.firing{color:#c0392b}.up{color:#1e8449}</style></head><body>",
        f"<h1>airig: {e(str(summary.get('profile', 'this box')))}</h1>",
    ]
    for problem in data.get("problems", []):
        parts.append(f'<p class="problem">{e(problem)}</p>')
    parts.append('<section id="gpus"><h2>GPUs</h2>')
    if not data.get("gpus"):
        parts.append("<p>No GPU on this box (or its exporter does not answer).</p>")
    else:
        parts.append("<table><tr><th>GPU</th><th>name</th><th>memory</th><th></th><th>C</th></tr>")
        for g in data["gpus"]:
            label = f"GPU {g['gpu']}: {g['used'] / GB:.1f} of {g['total'] / GB:.1f} GB"
            temp = "-" if g["temperature"] is None else f"{g['temperature']:.0f}"
            parts.append(
                f'<tr class="gpu"><td>{e(g["gpu"])}</td><td>{e(g["name"])}</td>'
                f"<td>{_bar(g['used'], g['total'], label)}</td><td>{e(label)}</td>"
                f"<td>{temp}</td></tr>"
            )
        parts.append("</table>")
        if data.get("units"):
            parts.append("<h3>GPU memory per service</h3><ul>")
            for u in data["units"]:
                parts.append(f"<li>GPU {e(u['gpu'])}: {e(u['unit'])} {u['bytes'] / GB:.1f} GB</li>")
            parts.append("</ul>")
    parts.append('</section><section id="engines"><h2>Engines: plan and actual</h2>')
    checks = data.get("check") or []
    if not checks:
        parts.append("<p>No plan-against-actual yet (airig check).</p>")
    for c in checks:
        parts.append(
            f'<h3 class="engine">{e(str(c.get("unit", "")))}: {e(str(c.get("model", "")))} '
            f'<span class="{e(str(c.get("status", "")))}">{e(str(c.get("status", "")))}</span></h3>'
            f"<p>{e(str(c.get('message', '')))}</p>"
        )
        terms = c.get("terms") or {}
        if terms:
            parts.append("<table><tr><th>term</th><th>plan GB</th><th>actual GB</th></tr>")
            for name, t in terms.items():
                parts.append(
                    f"<tr><td>{e(name)}</td><td>{float(t['plan_gb']):.3f}</td>"
                    f"<td>{float(t['actual_gb']):.3f}</td></tr>"
                )
            parts.append("</table>")
    parts.append('</section><section id="endpoints"><h2>Endpoints</h2><ul>')
    for ep in summary.get("endpoints", []):
        parts.append(
            f'<li class="endpoint">{e(str(ep.get("model", "")))} on '
            f"{e(str(ep.get('engine', '')))}: <code>{e(str(ep.get('base_url', '')))}</code></li>"
        )
    parts.append('</ul></section><section id="targets"><h2>Scraped</h2><ul>')
    for t in data.get("targets", []):
        state = "up" if t["up"] else "down"
        parts.append(f'<li class="{state}">{e(t["job"])} {e(t["instance"])}: {state}</li>')
    parts.append('</ul></section><section id="alerts"><h2>Alerts</h2>')
    alerts = data.get("alerts", [])
    if not alerts:
        parts.append("<p>None.</p>")
    else:
        parts.append("<ul>")
        for a in alerts:
            labels, notes = a.get("labels", {}), a.get("annotations", {})
            parts.append(
                f'<li class="{e(str(a.get("state", "")))}">{e(str(labels.get("alertname", "")))} '
                f"({e(str(a.get('state', '')))}): {e(str(notes.get('summary', '')))}. "
                f"{e(str(notes.get('action', '')))}</li>"
            )
        parts.append("</ul>")
    parts.append('</section><section id="burn"><h2>Burn-in</h2>')
    parts.extend(_burn(data.get("burn")))
    provisioned = data.get("provisioned") or "never"
    parts.append(f'</section><p id="provisioned">Last provisioned: {e(provisioned)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts)


# At most this many requests at once (each a thread), each with this long to send its request:
# a local user opening connections cannot make the page start threads without end.
MAX_CLIENTS = 8
CLIENT_TIMEOUT_S = 5.0


class BoundedServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with at most MAX_CLIENTS requests in flight; one more is closed."""

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def make_handler(prometheus: str, state: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = CLIENT_TIMEOUT_S

        def do_GET(self) -> None:
            if self.path not in ("/", "/index.html"):
                self.send_error(404)
                return
            try:
                body = render(collect(prometheus, state)).encode()
            except Exception as exc:  # a page that says so, never a dropped connection
                body = (
                    "<!doctype html><html lang=en><title>airig</title><body><p class=problem>"
                    f"The status page could not show this box: {html.escape(repr(exc))}</p>"
                ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header(
                "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"
            )
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: Any) -> None:
            pass  # the journal needs no line per page view

    return Handler


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=9447)
    ap.add_argument("--prometheus", default="http://127.0.0.1:9090")
    ap.add_argument("--state", type=Path, default=Path("/srv/airig/state"))
    args = ap.parse_args(argv)
    server = BoundedServer(("127.0.0.1", args.port), make_handler(args.prometheus, args.state))
    server.serve_forever()


if __name__ == "__main__":
    main()
