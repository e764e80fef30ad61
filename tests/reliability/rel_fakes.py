"""A fake vLLM (OpenAI-compatible) server over real HTTP, whose faults a test scripts per
problem and per attempt: timeouts, 5xx/429, dropped connections, garbage outputs, and the whole
server going away and coming back on the same port (a sampler pod restart)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: An action for one request: "ok", "garbage" (200 but no gradable answer), "empty" (200,
#: empty content), "bad-json" (200, body not JSON), "timeout" (answer after the client gave
#: up), "drop" (close the connection without answering), or an HTTP status code (500, 429...).
Plan = Callable[[str, int], "str | int"]


class FakeVLLM:
    def __init__(self, answers: dict[str, str], plan: Plan | None = None, stall_seconds: float = 2.0):
        self.answers = answers  # problem text -> gold answer
        self.plan = plan or (lambda problem, attempt: "ok")
        self.stall_seconds = stall_seconds
        self.attempts: Counter[str] = Counter()  # problem text -> requests received
        self.served: Counter[str] = Counter()  # problem text -> 200 answers sent
        self.actions: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self.on_request: Callable[[int], None] | None = None  # called with the running request count

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeVLLM:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake._handle(self, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._server.allow_reuse_address = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """The pod dies: the listening socket closes (new connections are refused)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def crash_and_restart(self, downtime: float) -> None:
        """Stop now, start again on the same port after ``downtime`` seconds (in a thread)."""
        self.stop()

        def later():
            time.sleep(downtime)
            self.start()

        threading.Thread(target=later, daemon=True).start()

    # ------------------------------------------------------------------ requests
    def _problem(self, body: dict) -> str:
        user = body["messages"][-1]["content"]
        for text in self.answers:
            if text in user:
                return text
        raise KeyError(user)

    def _handle(self, h: BaseHTTPRequestHandler, body: dict) -> None:
        problem = self._problem(body)
        with self.lock:
            self.attempts[problem] += 1
            attempt = self.attempts[problem]
            total = sum(self.attempts.values())
        action = self.plan(problem, attempt)
        with self.lock:
            self.actions[str(action)] += 1
        if self.on_request is not None:
            self.on_request(total)
        if action == "drop":
            h.close_connection = True
            h.connection.shutdown(2)
            return
        if action == "timeout":
            time.sleep(self.stall_seconds)
            action = "ok"
        if isinstance(action, int):
            self._send(h, action, json.dumps({"error": {"message": "injected", "code": action}}).encode())
            return
        if action == "bad-json":
            self._send(h, 200, b"{not json")
            return
        n = body["n"]
        answer = self.answers[problem]
        choices = []
        for i in range(n):
            if action == "garbage":
                text = "\ufffd\x00 lorem ipsum }{ \\boxed{"
            elif action == "empty":
                text = ""
            else:
                text = f"Adding up, the result is \\boxed{{{answer}}}."
            words = re.findall(r"\S+", text)
            choices.append({
                "index": i, "message": {"role": "assistant", "content": text},
                "finish_reason": "stop", "token_ids": list(range(len(words) + 1)),
            })
        with self.lock:
            self.served[problem] += 1
        self._send(h, 200, json.dumps({"choices": choices, "usage": {"completion_tokens": 0}}).encode())

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, data: bytes) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass
