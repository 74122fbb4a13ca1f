#!/usr/bin/env python3
"""Event audit: a processor for Tributary's delivery contract (docs/processors/contract.md), in Python
with the standard library only.

Tributary's worker, beside this container in the pod, POSTs each message to it as a CloudEvent in HTTP
binary mode: the body as it came, the attributes in `ce-*` headers. This service:

- records each event once in an append-only audit log (JSON lines: id, type, source, time, the event's
  extensions and body), idempotent by `ce-id`: a redelivered message (at-least-once) is acknowledged
  again and not recorded twice, across restarts too (the log is read back at start);
- answers 400 to a body that is not a JSON object: Tributary dead-letters the message with
  `HTTP 400: <the start of this answer>` as its reason, never retries it;
- when the event's FLAG_FIELD is a number above FLAG_ABOVE, answers with a reply CloudEvent
  (`com.example.audit.flagged`, in binary mode), which Tributary publishes to the Consumer's sink topic
  (`spec.sink.topicRef`; without one the answer is only a success);
- answers 503 while it cannot write the log, so Tributary retries the message later;
- serves GET /healthz (the pod's readiness probe; the worker takes no message before it answers 200).

Settings, from the environment: PORT (default 8080; Tributary sets it to spec.container.port), HOST
(default 0.0.0.0, so the kubelet's probes reach it on the pod's address; the NetworkPolicy Tributary
makes lets no other pod in), AUDIT_LOG (default /tmp/audit.jsonl), FLAG_FIELD and FLAG_ABOVE (no replies when unset).
"""

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG_PATH = os.environ.get("AUDIT_LOG", "/tmp/audit.jsonl")
FLAG_FIELD = os.environ.get("FLAG_FIELD", "")
FLAG_ABOVE = float(os.environ.get("FLAG_ABOVE", "0") or 0)
MAX_BODY = 1 << 20


class AuditLog:
    """The audit log and the ids it holds; one writer at a time (deliveries arrive concurrently)."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.seen = set()
        if os.path.exists(path):
            with open(path, encoding="utf-8") as log:
                for line in log:
                    try:
                        self.seen.add(json.loads(line)["id"])
                    except (ValueError, KeyError):
                        continue  # a torn last line from a crash: its message is redelivered

    def record(self, entry):
        """Appends `entry` unless its id is there: True when it was new."""
        with self.lock:
            if entry["id"] in self.seen:
                return False
            with open(self.path, "a", encoding="utf-8") as log:
                log.write(json.dumps(entry, sort_keys=True) + "\n")
                log.flush()
                os.fsync(log.fileno())
            self.seen.add(entry["id"])
            return True


AUDIT = AuditLog(LOG_PATH)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body=b"", headers=None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/healthz":
            self.answer(200, b"ok\n", {"content-type": "text/plain"})
        else:
            self.answer(404)

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self.answer(413, b"body larger than 1 MiB\n")
            return
        raw = self.rfile.read(length)
        event_id = self.headers.get("ce-id")
        if not event_id:
            self.answer(400, b"not a CloudEvent: no ce-id header\n")
            return
        try:
            body = json.loads(raw)
        except ValueError as error:
            self.answer(400, f"body is not JSON: {error}\n".encode())
            return
        if not isinstance(body, dict):
            self.answer(400, b"body is not a JSON object\n")
            return
        extensions = {
            name[3:]: value
            for name, value in self.headers.items()
            if name.lower().startswith("ce-")
            and name.lower() not in ("ce-id", "ce-type", "ce-source", "ce-time", "ce-specversion")
        }
        entry = {
            "id": event_id,
            "type": self.headers.get("ce-type"),
            "source": self.headers.get("ce-source"),
            "time": self.headers.get("ce-time"),
            "extensions": extensions,
            "traceparent": self.headers.get("traceparent"),
            "body": body,
        }
        try:
            AUDIT.record(entry)
        except OSError as error:
            self.answer(503, f"audit log unavailable: {error}\n".encode())
            return
        value = body.get(FLAG_FIELD) if FLAG_FIELD else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > FLAG_ABOVE:
            reply = json.dumps({"flagged": event_id, FLAG_FIELD: value, "above": FLAG_ABOVE}).encode()
            self.answer(200, reply, {
                "ce-specversion": "1.0",
                "ce-id": f"flagged-{event_id}",
                "ce-type": "com.example.audit.flagged",
                "ce-source": "/examples/custom/audit",
                "content-type": "application/json",
            })
            return
        self.answer(204)

    def log_message(self, format, *args):
        pass  # one line per request would drown the pod's log


def stop(_signal, _frame):
    # Kubernetes stops a native sidecar after the worker has drained: nothing is in flight any more.
    raise KeyboardInterrupt


def main():
    host, port = os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer((host, port), Handler)
    signal.signal(signal.SIGTERM, stop)
    print(f"audit: listening on {host}:{port}, log {LOG_PATH}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()


if __name__ == "__main__":
    main()
