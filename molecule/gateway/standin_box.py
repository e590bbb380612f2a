#!/usr/bin/python3
"""TEST DOUBLE of one box's proxy role in front of an engine (the gateway scenario): HTTPS with
the box's certificate, "Authorization: Bearer <the box key>" required on every route (401
otherwise), GET /health and /api/version answer 200, POST /v1/chat/completions answers an
OpenAI-style completion whose text names this box and engine and echoes the request's "n-th"
marker, streamed slowly (headers, then the body after DELAY seconds) so a box stopped mid-answer
loses requests in flight, as a real engine does. Each answer reports its tokens as engines do:
"usage" (prompt_tokens: the characters of the last message, completion_tokens: the words of the
answer); with "stream": true, server-sent events one word each, ending with "usage" when
stream_options.include_usage asks for it, else with llama.cpp's "timings" (prompt_n + cache_n,
predicted_n).

Usage: standin_box.py NAME ENGINE PORT KEYFILE CERT KEY [DELAY]"""

import http.server
import json
import socketserver
import ssl
import sys
import time

NAME, ENGINE, PORT, KEYFILE, CERT, KEY = sys.argv[1:7]
DELAY = float(sys.argv[7]) if len(sys.argv) > 7 else 0.2
with open(KEYFILE) as f:
    WANT = f"Bearer {f.read().strip()}"


class Box(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.flush()
        if status == 200 and self.command == "POST":
            time.sleep(DELAY)  # the answer is being generated
        self.wfile.write(data)

    def authorized(self) -> bool:
        if self.headers.get("Authorization") != WANT:
            self.reply(401, {"error": "missing or wrong API key"})
            return False
        return True

    def do_GET(self) -> None:
        if self.authorized():
            self.reply(200 if self.path in ("/health", "/api/version") else 404, {"status": "ok"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if not self.authorized():
            return
        asked = body.get("messages", [{}])[-1].get("content", "")
        text = f"{NAME}/{ENGINE} answers {asked}"
        usage = {"prompt_tokens": len(asked), "completion_tokens": len(text.split())}
        if body.get("stream"):
            self.stream(text, usage, (body.get("stream_options") or {}).get("include_usage"))
            return
        self.reply(200, {"object": "chat.completion", "model": body.get("model"), "usage": usage,
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})

    def stream(self, text: str, usage: dict, include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        words = text.split(" ")
        events = [{"choices": [{"index": 0, "delta": {"content": w if i == 0 else " " + w}}]}
                  for i, w in enumerate(words)]
        if include_usage:
            events.append({"choices": [], "usage": usage})
        else:  # llama.cpp: 2 of the prompt's tokens came from its cache
            events[-1]["timings"] = {"cache_n": 2, "prompt_n": usage["prompt_tokens"] - 2,
                                     "predicted_n": usage["completion_tokens"]}
        for event in [*(f"data: {json.dumps(e)}\n\n" for e in events), "data: [DONE]\n\n"]:
            data = event.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            time.sleep(DELAY / len(events))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, fmt: str, *args: object) -> None:
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


server = Server(("127.0.0.1", int(PORT)), Box)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(CERT, KEY)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
