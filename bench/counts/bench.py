"""The API-server write rate caused by Consumers' status counts (issue 23), on the test bed.

COUNT order endpoints (Consumers with an HTTP source and processor order-ack, publishing to one Topic) in
one namespace, each run by a Deployment whose one pod kwok simulates. This script is their workers: one
process serving a fake `/metrics` per pod on its own loopback port, whose processed and dead-lettered counters grow at a rate of
their own. Each pod's status gets `podIP: 127.0.0.1` (an admin writes it here, as the kubelet would) and the
annotation `tributary.dev/metrics-port`, which the controller honours only with --scrape-loopback-pods.

Phase 1 (counts moving): once every Consumer shows status.throughput, the status PATCHes of consumers are
counted over WINDOW seconds in the API server's apiserver_request_total; printed as writes per Consumer per
10 s. Phase 2 (counts still): the counters stop; after two intervals for the rates to reach 0, the same count
over WINDOW seconds (expected: none, as an unchanged read writes nothing). PHASES picks them.
"""

import functools
import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

print = functools.partial(print, flush=True)  # noqa: A001

BIN = os.environ["TRIBUTARY_BUILD_DIR"] + "/tributary"
COUNT = int(os.environ.get("COUNT", "100"))
WINDOW = int(os.environ.get("WINDOW", "300"))
INTERVAL = int(os.environ.get("INTERVAL", "60"))
NS = f"bench-counts-{int(time.time())}"
OUT = "target/bench"
MOVING = threading.Event()
MOVING.set()


def kubectl(*args, stdin=None, check=True):
    return subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, check=check).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Worker:
    """One fake worker's counters: `rate` processed per second while MOVING, one in 50 dead-lettered."""

    def __init__(self, rate):
        self.rate, self.base, self.since, self.lock = rate, 0.0, time.time(), threading.Lock()

    def processed(self):
        with self.lock:
            if MOVING.is_set():
                return int(self.base + (time.time() - self.since) * self.rate)
            return int(self.base)

    def freeze(self):
        with self.lock:
            self.base += (time.time() - self.since) * self.rate
            self.since = time.time()


def serve(worker):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            n = worker.processed()
            body = (f"tributary_worker_messages_processed_total{{consumer=\"x\"}} {n}\n"
                    f"tributary_worker_messages_failed_total{{consumer=\"x\"}} {n // 20}\n"
                    f"tributary_worker_messages_dead_lettered_total{{consumer=\"x\",reason=\"rejected\"}} {n // 50}\n")
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def status_patches():
    """Status writes of consumers (PATCH and server-side APPLY of the status subresource) so far."""
    total = 0.0
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        if line.startswith("apiserver_request_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            if (labels.get("resource"), labels.get("subresource")) == ("consumers", "status") and \
                    labels.get("verb") in ("PATCH", "APPLY"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def with_throughput():
    out = kubectl("get", "consumers.tributary.dev", "-n", NS, "-o",
                  "jsonpath={range .items[*]}{.status.throughput.processed}{\"\\n\"}{end}")
    return sum(1 for line in out.splitlines() if line.strip())


def wait(what, check, timeout):
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            sys.exit(f"bench: timed out waiting for {what}")
        time.sleep(2)


def consumers():
    docs = [f"""apiVersion: tributary.dev/v1alpha1
kind: Topic
metadata: {{name: orders, namespace: {NS}}}
spec: {{provider: aws, aws: {{}}}}
"""]
    for i in range(COUNT):
        docs.append(f"""apiVersion: tributary.dev/v1alpha1
kind: Consumer
metadata: {{name: c{i}, namespace: {NS}}}
spec:
  source: {{http: {{auth: {{mode: none}}}}}}
  processor: order-ack
  sink: {{topicRef: {{name: orders}}}}
  scaling: {{minReplicas: 1, maxReplicas: 1}}
""")
    return "---\n".join(docs)


def wire_pods(ports):
    """Gives each Consumer's running pod the loopback IP and its fake worker's port."""
    wired = set()

    def step():
        out = kubectl("get", "pods", "-n", NS, "-o",
                      "jsonpath={range .items[*]}{.metadata.name} {.metadata.labels.tributary\\.dev/consumer} "
                      "{.status.phase} {.status.podIP}{\"\\n\"}{end}")
        for line in out.splitlines():
            parts = line.split()
            if len(parts) < 3 or parts[0] in wired or parts[2] != "Running":
                continue
            pod, consumer = parts[0], parts[1]
            kubectl("annotate", "pod", "-n", NS, pod, "--overwrite",
                    f"tributary.dev/metrics-port={ports[consumer]}")
            kubectl("patch", "pod", "-n", NS, pod, "--subresource=status", "--type=merge", "-p",
                    '{"status":{"podIP":"127.0.0.1","podIPs":[{"ip":"127.0.0.1"}]}}')
            wired.add(pod)
        return len(wired) >= COUNT

    wait("the pods", step, 600)


def main():
    os.makedirs(OUT, exist_ok=True)
    kubectl("create", "namespace", NS)
    kubectl("label", "namespace", NS, "tributary.dev/test=true", "--overwrite")
    kubectl("apply", "--server-side", "-f", "-", stdin=f"""apiVersion: tributary.dev/v1alpha1
kind: TenantPolicy
metadata: {{name: {NS}}}
spec: {{images: [bench.local/fake-worker:1]}}
""")
    workers = {f"c{i}": Worker(1 + i % 7) for i in range(COUNT)}
    ports = {name: serve(w) for name, w in workers.items()}
    metrics_port = free_port()
    log = open(f"{OUT}/counts-controller-{NS}.log", "w")
    controller = subprocess.Popen(
        [BIN, "controller", "--metrics-listen", f"127.0.0.1:{metrics_port}", "--watch-namespace", NS,
         "--leader-election-namespace", NS, "--identity", "bench", "--resync-seconds", "15",
         "--throughput-interval-seconds", str(INTERVAL), "--scrape-loopback-pods"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        kubectl("apply", "--server-side", "-f", "-", stdin=consumers())
        wire_pods(ports)
        print(f"bench: {COUNT} Consumers, pods wired; waiting for every status.throughput")
        wait("status.throughput", lambda: with_throughput() >= COUNT, 600)
        time.sleep(INTERVAL)  # past the first reads' window: rates everywhere
        results = []
        for phase in os.environ.get("PHASES", "counts moving,counts still").split(","):
            if phase == "counts still":
                for w in workers.values():
                    w.freeze()
                MOVING.clear()
                # The first read after the stop still has moving counts at its window's start; the
                # next finds the rates at 0 and writes them: two intervals and a resync.
                time.sleep(2 * INTERVAL + 30)
            before = status_patches()
            time.sleep(WINDOW)
            writes = status_patches() - before
            per = writes / COUNT / (WINDOW / 10)
            results.append((phase, writes, per))
            print(f"bench: {phase}: {writes:.0f} status writes of {COUNT} Consumers in {WINDOW} s = "
                  f"{per:.4f} per Consumer per 10 s")
        print("\n| phase | status writes | Consumers | window | writes per Consumer per 10 s |")
        print("|---|---|---|---|---|")
        for phase, writes, per in results:
            print(f"| {phase} | {writes:.0f} | {COUNT} | {WINDOW} s | {per:.4f} |")
    finally:
        controller.terminate()
        controller.wait(timeout=60)
        kubectl("delete", "namespace", NS, "--wait=false", check=False)
        kubectl("delete", "tenantpolicy.tributary.dev", NS, check=False)


if __name__ == "__main__":
    main()
