"""A hostile stand-in for the service on 127.0.0.1: what a broken proxy or a buggy service answers.

Registration succeeds (201 with a real HostRegistrationResponse shape); each poll takes the next answer from
a script: any status, content type and bytes, or ``silent`` (accept, then never answer), or ``truncated``
(announce a Content-Length and close half-way). When the script is used up, polls get an empty Steps object.
Step replies are recorded. Used by the agent's fault tests and by bench/faults.py.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    body: bytes
    status: int = 200
    content_type: str = "application/json"
    fault: str = ""  # "", "silent" or "truncated"

    @classmethod
    def steps(cls, instructions: list[Any], seconds: float = 0.2, action: str = "continue") -> Answer:
        return cls(json.dumps({"instructions": instructions, "next_instruction_seconds": seconds,
                               "post_step_action": action}).encode())


IDLE = Answer.steps([])


class HostileService:
    def __init__(self) -> None:
        self.script: list[Answer] = []
        self.replies: list[dict[str, Any]] = []
        self.polls = 0
        self.seen: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers) of every request
        self.lock = threading.Lock()
        self.closing = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _send(self, answer: Answer) -> None:
                if answer.fault == "silent":
                    outer.closing.wait(120)
                    self.close_connection = True
                    return
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                try:
                    if answer.fault == "truncated":
                        self.wfile.write(answer.body[: len(answer.body) // 2])
                        self.close_connection = True
                        return
                    self.wfile.write(answer.body)
                except OSError:  # the agent hung up on an answer it refuses (too big): that is the point
                    self.close_connection = True

            def _record(self) -> None:
                with outer.lock:
                    outer.seen.append((self.command, self.path, dict(self.headers.items())))

            def do_GET(self) -> None:
                self._record()
                with outer.lock:
                    outer.polls += 1
                    answer = outer.script.pop(0) if outer.script else IDLE
                self._send(answer)

            def do_POST(self) -> None:
                self._record()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/hosts"):
                    host_id = json.loads(body)["host_id"]
                    infra_env_id = self.path.split("/")[-2]
                    runner = json.dumps({"agent_version": "quay.io/edge-infrastructure/assisted-installer-agent:latest",
                                         "host_id": host_id, "infra_env_id": infra_env_id})
                    self._send(Answer(json.dumps({"id": host_id, "kind": "Host", "href": "", "status": "discovering",
                                                  "next_step_runner_command": {"command": "", "args": [runner]}}
                                                 ).encode(), 201))
                    return
                with outer.lock:
                    outer.replies.append(json.loads(body))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, *answers: Answer) -> None:
        with self.lock:
            self.script.extend(answers)

    def wait_reply(self, step_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for reply in self.replies:
                    if reply.get("step_id") == step_id:
                        return reply
            time.sleep(0.1)
        raise AssertionError(f"no reply for {step_id} within {timeout}s; replies: {self.replies}")

    def wait_script_used(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.script and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not self.script, f"{len(self.script)} answers not fetched within {timeout}s"

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
