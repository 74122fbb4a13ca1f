#!/usr/bin/env python3
"""Waits, with a bound, until a Consumer's worker pods together have handled at least N messages
(processed + dead-lettered), reading each pod's /metrics through the API server's pod proxy (`kubectl get
--raw`, the way `kubectl` reaches a pod without a port of its own), then prints what they did. Exits 1 when
the count is not reached in time, naming what was counted.

    worker_metrics.py NAMESPACE CONSUMER MIN_HANDLED TIMEOUT_SECONDS
"""

import json
import subprocess
import sys
import time

METRICS_PORT = 9090
PROCESSED = "tributary_worker_messages_processed_total"
DEAD_LETTERED = "tributary_worker_messages_dead_lettered_total"
SINK_WRITES = "tributary_worker_sink_writes_total"


def kubectl(*args):
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, check=False)


def pods(namespace, consumer):
    out = kubectl("get", "pods", "-n", namespace, "-l", f"tributary.dev/consumer={consumer}",
                  "--field-selector", "status.phase=Running", "-o", "json")
    return [p["metadata"]["name"] for p in json.loads(out.stdout or '{"items": []}')["items"]] if out.returncode == 0 else []


def totals(namespace, consumer):
    """The sums over the Consumer's running pods of every counter (labels summed away)."""
    sums = {}
    for pod in pods(namespace, consumer):
        out = kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}:{METRICS_PORT}/proxy/metrics")
        if out.returncode != 0:
            continue
        for line in out.stdout.splitlines():
            if line and not line.startswith("#"):
                name = line.split("{")[0].split(" ")[0]
                sums[name] = sums.get(name, 0) + float(line.rsplit(" ", 1)[1])
    return sums


def main():
    namespace, consumer, wanted, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    started, deadline = time.time(), time.time() + timeout
    while True:
        m = totals(namespace, consumer)
        handled = m.get(PROCESSED, 0) + m.get(DEAD_LETTERED, 0)
        if handled >= wanted:
            break
        if time.time() > deadline:
            sys.exit(f"demo: the {consumer} workers handled {handled:.0f} of {wanted} messages in {timeout:.0f}s "
                     f"({m.get(PROCESSED, 0):.0f} processed, {m.get(DEAD_LETTERED, 0):.0f} dead-lettered)")
        time.sleep(0.5)  # a poll interval: the loop waits on the count above, bounded by the deadline
    print(f"  {consumer}: {m.get(PROCESSED, 0):.0f} processed ({m.get(SINK_WRITES, 0):.0f} sink writes), "
          f"{m.get(DEAD_LETTERED, 0):.0f} dead-lettered with the reason, {time.time() - started:.1f}s after the "
          f"wait began")


if __name__ == "__main__":
    main()
