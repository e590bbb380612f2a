#!/usr/bin/python3
"""A bounded load loop through the gateway (the gateway and fleet scenarios): COUNT chat
completions, at most WORKERS at once, each answer checked, then a JSON summary to OUT. Stops by
itself: a fixed count, and a 30 s timeout each. The check: HTTP 200 and the text echoing that
request's own marker (the gateway scenario's stand-in boxes), or, given REPLY, a real engine's
streamed answer that starts with REPLY and ends with [DONE] (the fleet's TEST MODEL, asked for 48
tokens past its end so that requests stay in flight a while). With STOP_FILE, no request starts
once that file exists (the count then says how many were sent). The summary also sums the
tokens the answered requests reported (their "usage", or a stream's last llama.cpp "timings"),
which the gateway's usage must equal.

Usage: load_loop.py KEYFILE MODEL COUNT WORKERS OUT [PAUSE] [PORT] [REPLY] [STOP_FILE]"""

import concurrent.futures
import http.client
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request

KEYFILE, MODEL, COUNT, WORKERS, OUT = sys.argv[1:6]
PAUSE = float(sys.argv[6]) if len(sys.argv) > 6 else 0.05
PORT = int(sys.argv[7]) if len(sys.argv) > 7 else 4443
REPLY = sys.argv[8] if len(sys.argv) > 8 else None
STOP_FILE = sys.argv[9] if len(sys.argv) > 9 else None
with open(KEYFILE) as f:
    KEY = f.read().strip()
CONTEXT = ssl.create_default_context()
CONTEXT.check_hostname = False
CONTEXT.verify_mode = ssl.CERT_NONE  # the gateway's self-signed certificate


def one(i: int) -> dict:
    marker = f"request-{i}"
    ask = {"model": MODEL, "messages": [{"role": "user", "content": marker}]}
    if REPLY:
        ask.update(max_tokens=48, ignore_eos=True, stream=True)
    req = urllib.request.Request(
        f"https://127.0.0.1:{PORT}/v1/chat/completions", data=json.dumps(ask).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30, context=CONTEXT) as r:
            if REPLY:
                answer, tokens = streamed(r)
            else:
                whole = json.load(r)
                answer = whole["choices"][0]["message"]["content"]
                tokens = (whole["usage"]["prompt_tokens"], whole["usage"]["completion_tokens"])
            box = r.headers.get("X-Airig-Box") or answer.split("/")[0]
        ok = answer.startswith(REPLY) if REPLY else answer.endswith(f"answers {marker}")
        return {"i": i, "ok": ok, "box": box, "error": None if ok else answer, "tokens": tokens}
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError, KeyError) as exc:
        return {"i": i, "ok": False, "box": None, "error": f"{type(exc).__name__}: {exc}", "tokens": (0, 0)}


def streamed(r: http.client.HTTPResponse) -> tuple[str, tuple[int, int]]:
    """The text of a server-sent event stream and the tokens its last event reported;
    ValueError unless it ends with [DONE]."""
    text, event = [], {}
    for line in r:
        data = line.decode().strip().removeprefix("data: ")
        if data == "[DONE]":
            if "usage" in event:
                return "".join(text), (event["usage"]["prompt_tokens"], event["usage"]["completion_tokens"])
            t = event["timings"]  # llama.cpp's, on the last event
            return "".join(text), (t["prompt_n"] + t.get("cache_n", 0), t["predicted_n"])
        if data:
            event = json.loads(data)
            choice = (event.get("choices") or [{}])[0]
            text.append(choice.get("delta", {}).get("content") or "")
    raise ValueError(f"stream cut after {''.join(text)!r}")


def paced(i: int) -> dict | None:
    if STOP_FILE and os.path.exists(STOP_FILE):
        return None
    time.sleep(PAUSE * (i % int(WORKERS)))
    return one(i)


with concurrent.futures.ThreadPoolExecutor(int(WORKERS)) as pool:
    results = [r for r in pool.map(paced, range(int(COUNT))) if r is not None]
summary = {
    "sent": len(results),
    "ok": sum(r["ok"] for r in results),
    "failed": [r for r in results if not r["ok"]],
    "boxes": sorted({r["box"] for r in results if r["box"]}),
    "prompt_tokens": sum(r["tokens"][0] for r in results if r["ok"]),
    "completion_tokens": sum(r["tokens"][1] for r in results if r["ok"]),
}
with open(OUT, "w") as f:
    json.dump(summary, f)
