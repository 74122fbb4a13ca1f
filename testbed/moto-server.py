"""moto's server, keeping its state across a restart (run by testbed/up.sh with moto's own virtualenv).

moto keeps everything in memory, so a stopped moto used to come back empty: an outage test could not tell
an outage from a wipe. This starts the same server as `moto_server` (same WSGI application, same request
handler) and, given --state FILE:
- at start, loads the SNS, SQS and DynamoDB backends from FILE if it exists;
- on SIGTERM or SIGINT, stops answering new requests (they wait until the process ends, so their clients
  see the connection close without an answer, as in any outage), lets the requests in progress finish
  (a long poll ends within its wait time; at most 8 s, within the 10 s testbed/down.sh gives), saves
  the backends to FILE and exits.

A SIGKILL saves nothing: the next start has the state of the last graceful stop, or none. Only the
three services Tributary uses are kept. A Queue's message lock (a threading.Condition, which cannot be
pickled) is saved as a new one.

Usage: python moto-server.py -H HOST -p PORT --state FILE
"""

import argparse
import copyreg
import os
import pickle
import signal
import sys
import threading
import time

from werkzeug.serving import run_simple

from moto.backends import get_backend
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

SERVICES = ("sns", "sqs", "dynamodb")
# A Condition holds a lock, which pickle refuses; a restored queue gets a fresh one.
copyreg.pickle(threading.Condition, lambda _condition: (threading.Condition, ()))


class Gate:
    """Counts requests in progress and, once closed, holds new ones until the process exits."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Condition()
        self.running = 0
        self.closed = False

    def __call__(self, environ, start_response):
        with self.lock:
            while self.closed:
                self.lock.wait()
            self.running += 1
        try:
            # The body is produced here, so the request is over (its effect made) when this returns.
            return list(self.app(environ, start_response))
        finally:
            with self.lock:
                self.running -= 1
                self.lock.notify_all()

    def close(self, timeout):
        deadline = time.monotonic() + timeout
        with self.lock:
            self.closed = True
            while self.running and time.monotonic() < deadline:
                self.lock.wait(deadline - time.monotonic())
            return self.running


def backends():
    """Every (service, account, region) backend that exists."""
    for service in SERVICES:
        for account, regions in get_backend(service).items():
            for region, backend in regions.items():
                yield service, account, region, backend


def save(path):
    state = [(s, a, r, b) for s, a, r, b in backends()]
    temporary = f"{path}.tmp"
    with open(temporary, "wb") as file:
        pickle.dump(state, file)
    os.replace(temporary, path)
    return len(state)


def load(path):
    with open(path, "rb") as file:
        state = pickle.load(file)
    for service, account, region, backend in state:
        get_backend(service)[account][region] = backend
    return len(state)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--state", required=True, help="file the state is kept in between runs")
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    if os.path.exists(args.state):
        print(f"moto-server: loaded {load(args.state)} backends from {args.state}", flush=True)
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    gate = Gate(app)

    def stop(signum, _frame):
        unfinished = gate.close(8)
        try:
            count = save(args.state)
            print(f"moto-server: saved {count} backends to {args.state} ({unfinished} requests unfinished)", flush=True)
        finally:
            os._exit(0)

    # The handler runs in a thread of its own: waiting for requests in progress from the main thread's
    # signal handler would block the server loop those requests may need.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, f: threading.Thread(target=stop, args=(s, f)).start())
    run_simple(args.host, args.port, gate, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    sys.exit(main())
