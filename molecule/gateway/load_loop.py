#!/usr/bin/python3
"""A bounded load loop through the gateway (the gateway scenario): COUNT chat completions, at
most WORKERS at once, each answer checked (HTTP 200 and the text echoing that request's own
marker), then a JSON summary to OUT. Stops by itself: a fixed count, and a 30 s timeout each.

Usage: load_loop.py KEYFILE MODEL COUNT WORKERS OUT [PAUSE]"""

import concurrent.futures
import http.client
import json
import ssl
import sys
import time
import urllib.error
import urllib.request

KEYFILE, MODEL, COUNT, WORKERS, OUT = sys.argv[1:6]
PAUSE = float(sys.argv[6]) if len(sys.argv) > 6 else 0.05
with open(KEYFILE) as f:
    KEY = f.read().strip()
CONTEXT = ssl.create_default_context()
CONTEXT.check_hostname = False
CONTEXT.verify_mode = ssl.CERT_NONE  # the gateway's self-signed certificate


def one(i: int) -> dict:
    marker = f"request-{i}"
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": marker}]})
    req = urllib.request.Request(
        "https://127.0.0.1:4443/v1/chat/completions", data=body.encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30, context=CONTEXT) as r:
            answer = json.load(r)["choices"][0]["message"]["content"]
        ok = answer.endswith(f"answers {marker}")
        return {"i": i, "ok": ok, "box": answer.split("/")[0], "error": None if ok else answer}
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError, KeyError) as exc:
        return {"i": i, "ok": False, "box": None, "error": f"{type(exc).__name__}: {exc}"}


def paced(i: int) -> dict:
    time.sleep(PAUSE * (i % int(WORKERS)))
    return one(i)


with concurrent.futures.ThreadPoolExecutor(int(WORKERS)) as pool:
    results = list(pool.map(paced, range(int(COUNT))))
summary = {
    "sent": len(results),
    "ok": sum(r["ok"] for r in results),
    "failed": [r for r in results if not r["ok"]],
    "boxes": sorted({r["box"] for r in results if r["box"]}),
}
with open(OUT, "w") as f:
    json.dump(summary, f)
