"""Controller benchmark on the test bed (kube-apiserver + kwok + moto): the released `tributary controller`
applying N Topics, N Queues and N filtered Subscriptions (each Subscription joins its own Topic and Queue,
so every Queue needs a policy letting its Topic send), as the ACK measurement in issue 24 did.

For each run it prints: time from the first apply to all objects Ready (Ready means the queue policy that
lets the Topic send was read back from SQS), time to the controller's last AWS write, the controller's RSS
idle and peak, AWS calls per object (the controller's own count, by operation), API-server requests per
object (the apiserver's count for the tributary.dev group, Events and Leases, without LIST and WATCH and
without this script's applies), and for the larger runs the steady-state AWS call rate of the drift resync.

Run by bench/controller/run.sh with the moto virtualenv's Python (it has boto3, used for the drift checks).
"""

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import functools

print = functools.partial(print, flush=True)  # noqa: A001 (progress shows while it runs)

RELEASE = os.environ["TRIBUTARY_RELEASE_DIR"] + "/tributary"
RUN = str(int(time.time()))
RUNS = iter(range(1000))
OUT = "target/bench"
WRITES = {"CreateTopic", "SetTopicAttributes", "TagResource", "UntagResource", "CreateQueue",
          "SetQueueAttributes", "TagQueue", "UntagQueue", "Subscribe", "SetSubscriptionAttributes"}
# ACK sns-controller v1.6.0 + sqs-controller v1.5.4, measured for issue 24 on the same test bed.
ACK = {100: ("9.0 / 10.8 s", "-", "99 → 124 MiB", "6.0–7.0", "6.6–7.1"),
       300: ("30.8 / 30.1 s", "38 s", "99 → 124 MiB", "6.0–7.0", "6.6–7.1")}


def kubectl(*args, stdin=None, check=True):
    return subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, check=check).stdout


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return answer.read().decode()


def cloud_calls(text):
    """AWS calls by operation, from tributary_cloud_calls_total."""
    calls = {}
    for line in text.splitlines():
        if line.startswith("tributary_cloud_calls_total{"):
            operation = re.search(r'operation="([^"]*)"', line).group(1)
            calls[operation] = calls.get(operation, 0) + float(line.rsplit(" ", 1)[1])
    return calls


def apiserver_requests():
    """The controller's requests: tributary.dev, Events and Leases, without LIST/WATCH and applies of
    whole tributary.dev objects (this script's; the controller applies only their status), by
    resource/subresource/verb."""
    total = {}
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        ours = labels.get("group") == "tributary.dev" or labels.get("resource") in ("events", "leases")
        if not ours or labels.get("verb") in ("LIST", "WATCH"):
            continue
        if labels.get("group") == "tributary.dev" and labels.get("verb") == "APPLY" and not labels.get("subresource"):
            continue
        what = f"{labels.get('resource')}/{labels.get('subresource') or '-'}/{labels.get('verb')}"
        total[what] = total.get(what, 0) + float(line.rsplit(" ", 1)[1])
    return total


def rss(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def manifests(trios, namespaces):
    """One manifest per namespace: trio i lives in namespace i % namespaces. Every run has namespaces
    of its own, so no run meets another's cloud resources (moto keeps them until testbed-down)."""
    prefix = f"bench-{RUN}-{next(RUNS)}"
    docs = {f"{prefix}-{n}": [] for n in range(namespaces)}
    for i in range(trios):
        ns = f"{prefix}-{i % namespaces}"
        meta = f"{{name: %s-{i}, labels: {{tributary.dev/bench: '{RUN}'}}}}"
        docs[ns].append(f"apiVersion: tributary.dev/v1alpha1\nkind: Topic\nmetadata: {meta % 'topic'}\n"
                        "spec: {provider: aws, aws: {}}\n")
        docs[ns].append(f"apiVersion: tributary.dev/v1alpha1\nkind: Queue\nmetadata: {meta % 'queue'}\n"
                        "spec: {provider: aws, aws: {}}\n")
        docs[ns].append(f"apiVersion: tributary.dev/v1alpha1\nkind: Subscription\nmetadata: {meta % 'sub'}\n"
                        f"spec:\n  topicRef: {{name: topic-{i}}}\n  queueRef: {{name: queue-{i}}}\n"
                        f"  filter: {{policy: {{event: [OrderPlaced], store: [store-{i}]}}}}\n")
    return {ns: "---\n".join(d) for ns, d in docs.items() if d}


def ready_count():
    out = kubectl("get", "topics.tributary.dev,queues.tributary.dev,subscriptions.tributary.dev", "-A",
                  "-l", f"tributary.dev/bench={RUN}", "--chunk-size=2000", "-o",
                  'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}')
    return out.count("True")


class Controller:
    def __init__(self, resync, limits):
        self.port = free_port()
        self.log = open(f"{OUT}/controller-{RUN}-{len(os.listdir(OUT))}.log", "w")
        args = [RELEASE, "controller", "--metrics-listen", f"127.0.0.1:{self.port}",
                "--leader-election-namespace", f"bench-{RUN}-lease", "--identity", "bench",
                "--resync-seconds", str(resync)]
        args += [f"--aws-rate-limit={limit}" for limit in limits]
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2)
                return
            except OSError:
                if self.process.poll() is not None or time.time() > deadline:
                    sys.exit(f"bench: the controller did not become ready (see {self.log.name})")
                time.sleep(0.2)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)


def wait_for_no_terminating_namespaces():
    """The controller watches every namespace: objects of namespaces still being deleted would be
    reconciled (and counted) too."""
    deadline = time.time() + 300
    while "Terminating" in kubectl("get", "namespaces", "--no-headers"):
        if time.time() > deadline:
            sys.exit("bench: namespaces still Terminating after 300 s")
        time.sleep(1)


def cleanup():
    """Drops the run's objects without deleting cloud resources one by one (moto is emptied by
    testbed-down): testbed/clean.sh removes the finalizers and the namespaces (labelled as tests')."""
    subprocess.run(["bash", "testbed/clean.sh"], check=False, capture_output=True)
    wait_for_no_terminating_namespaces()


def run(trios, namespaces, limits, resync=300, steady=0):
    """One measurement; returns a dict of figures."""
    docs = manifests(trios, namespaces)
    for ns in [*docs, f"bench-{RUN}-lease"]:
        kubectl("create", "namespace", ns, check=False)
        kubectl("label", "namespace", ns, "tributary.dev/test=true", "--overwrite", check=False)
    controller = Controller(resync, limits)
    idle = rss(controller.process.pid, "VmRSS")
    calls_before = cloud_calls(metrics(controller.port))
    requests_before = apiserver_requests()
    objects = 3 * trios
    start = time.time()

    def apply(item):
        ns, text = item
        subprocess.run(["kubectl", "apply", "--server-side", "-n", ns, "-f", "-"], input=text, text=True,
                       capture_output=True, check=True)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(apply, docs.items()))
    applied = time.time() - start
    last_write, writes, ready_at = start, None, None
    interval = 0.5 if objects <= 1000 else 2.0
    while True:
        calls = cloud_calls(metrics(controller.port))
        now_writes = sum(v for k, v in calls.items() if k in WRITES)
        if now_writes != writes:
            writes, last_write = now_writes, time.time()
        if ready_at is None and ready_count() >= objects:
            ready_at = time.time()
        if ready_at is not None and time.time() - max(ready_at, last_write) > 10:
            break
        if time.time() - start > 1800:
            sys.exit(f"bench: not all {objects} objects Ready after 1800 s (see {controller.log.name})")
        time.sleep(interval)
    calls = cloud_calls(metrics(controller.port))
    aws = sum(calls.values()) - sum(calls_before.values())
    requests_after = apiserver_requests()
    by_request = {k: v - requests_before.get(k, 0) for k, v in sorted(requests_after.items())}
    requests = sum(by_request.values())
    figures = {
        "objects": objects, "namespaces": namespaces, "applied": applied,
        "ready": ready_at - start, "last_write": last_write - start,
        "idle": idle, "peak": rss(controller.process.pid, "VmHWM"),
        "aws": aws / objects, "requests": requests / objects,
        "by_operation": {k: v - calls_before.get(k, 0) for k, v in sorted(calls.items())},
        "by_request": {k: v for k, v in by_request.items() if v},
    }
    # Each object's Ready transition, for a closer look at the slowest.
    with open(f"{OUT}/controller-{RUN}-objects-{objects}.txt", "w") as dump:
        dump.write(kubectl("get", "topics.tributary.dev,queues.tributary.dev,subscriptions.tributary.dev", "-A",
                           "-l", f"tributary.dev/bench={RUN}", "--chunk-size=2000", "-o",
                           'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].lastTransitionTime} '
                           '{.metadata.creationTimestamp} {.kind}/{.metadata.namespace}/{.metadata.name}{"\\n"}{end}'))
    if namespaces == 1:
        reasons = kubectl("get", "events", "-n", next(iter(docs)), "-o", "jsonpath={range .items[*]}{.reason}{\" \"}{end}")
        figures["events"] = {r: reasons.split().count(r) for r in sorted(set(reasons.split()))}
    if steady:
        # The first full checks are due one resync period after the objects were verified.
        time.sleep(resync)
        before = cloud_calls(metrics(controller.port))
        time.sleep(steady)
        after = cloud_calls(metrics(controller.port))
        rates = {k: (v - before.get(k, 0)) / steady for k, v in after.items() if v - before.get(k, 0) > 0}
        figures["steady"] = rates
    controller.stop()
    cleanup()
    return figures


def drift(limits):
    """Drift and filter-policy drift made by hand, corrected by a controller with a 60 s resync."""
    import boto3
    docs = manifests(1, 1)
    ns = next(iter(docs))
    kubectl("create", "namespace", ns, check=False)
    kubectl("create", "namespace", f"bench-{RUN}-lease", check=False)
    controller = Controller(60, limits)
    kubectl("apply", "--server-side", "-n", ns, "-f", "-", stdin=docs[ns])
    deadline = time.time() + 120
    while ready_count() < 3:
        if time.time() > deadline:
            sys.exit("bench: the drift objects did not become Ready")
        time.sleep(0.5)
    get = lambda kind, name: json.loads(kubectl("get", "-n", ns, kind, name, "-o", "json"))["status"]
    queue_url = get("queues.tributary.dev", "queue-0")["url"]
    subscription_arn = get("subscriptions.tributary.dev", "sub-0")["arn"]
    region, endpoint = os.environ["AWS_REGION"], os.environ["AWS_ENDPOINT_URL"]
    sqs = boto3.client("sqs", region_name=region, endpoint_url=endpoint)
    sns = boto3.client("sns", region_name=region, endpoint_url=endpoint)
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": "7"})
    sns.set_subscription_attributes(SubscriptionArn=subscription_arn, AttributeName="FilterPolicy",
                                    AttributeValue='{"event": ["Tampered"]}')
    changed = time.time()
    fixed = {}
    while len(fixed) < 2 and time.time() - changed < 200:
        if "queue" not in fixed and sqs.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])["Attributes"]["VisibilityTimeout"] != "7":
            fixed["queue"] = time.time() - changed
        policy = sns.get_subscription_attributes(SubscriptionArn=subscription_arn)["Attributes"].get("FilterPolicy", "")
        if "filter" not in fixed and "Tampered" not in policy:
            fixed["filter"] = time.time() - changed
        time.sleep(0.5)
    # A filter policy written back must not be written again and again: count writes over one more resync.
    before = cloud_calls(metrics(controller.port)).get("SetSubscriptionAttributes", 0)
    time.sleep(65)
    loop = cloud_calls(metrics(controller.port)).get("SetSubscriptionAttributes", 0) - before
    controller.stop()
    cleanup()
    return fixed, loop


def main():
    os.makedirs(OUT, exist_ok=True)
    wait_for_no_terminating_namespaces()
    sizes = [int(n) for n in os.environ.get("SIZES", "100 300").split()]
    scale = [int(n) for n in os.environ.get("SCALE", "2000 10000").split()]
    lifted = ["*=unlimited"]
    print(f"controller benchmark ({os.cpu_count()} cores; kube-apiserver + kwok + moto; region "
          f"{os.environ.get('AWS_REGION')}; Tributary at AWS's published quotas unless marked 'lifted')\n")
    print(f"{'':44} {'Tributary':>34}   {'ACK (issue 24)':>18}")

    def show(label, n, f):
        ack = ACK.get(n, ("-",) * 5)
        memory = f"{f['idle']:.0f} → {f['peak']:.0f} MiB"
        print(label)
        print(f"  {'apply → all Ready':42} {f['ready']:>32.1f} s   {ack[0]:>18}")
        print(f"  {'(the apply itself took)':42} {f['applied']:>32.1f} s")
        print(f"  {'last AWS write after apply':42} {f['last_write']:>32.1f} s   {ack[1]:>18}")
        print(f"  {'memory idle → peak':42} {memory:>34}   {ack[2]:>18}")
        print(f"  {'AWS calls per object':42} {f['aws']:>34.2f}   {ack[3]:>18}")
        print(f"  {'API-server requests per object':42} {f['requests']:>34.2f}   {ack[4]:>18}")
        print("  AWS calls: " + ", ".join(f"{k} {v:.0f}" for k, v in f["by_operation"].items() if v))
        print("  API requests: " + ", ".join(f"{k} {v:.0f}" for k, v in f["by_request"].items()))
        print("  Events: " + ", ".join(f"{k} {v}" for k, v in f.get("events", {}).items()))
        leases = sum(v for k, v in f["by_request"].items() if k.startswith("leases/"))
        print(f"  API requests per object without the leader lease's renewals ({leases:.0f}): "
              f"{f['requests'] - leases / f['objects']:.2f}")

    for n in sizes:
        figures = run(n, 1, [])
        show(f"N={n} ({3 * n} objects)", n, figures)
        print(json.dumps({"N": n, **figures}), file=open(f"{OUT}/controller-{RUN}-N{n}.json", "w"))
    for n in sizes[-1:]:
        show(f"N={n} ({3 * n} objects), limits lifted", n, run(n, 1, lifted))
    for n in sizes[-1:]:
        # With limits that bind (the apply itself takes longer than AWS's published quotas need for
        # this workload), the floor is the busiest action's calls at its rate.
        rate = float(os.environ.get("FLOOR_RATE", "10"))
        f = run(n, 1, [f"*={rate:g}"])
        busiest = max(((k, v) for k, v in f["by_operation"].items() if k != "GetCallerIdentity"), key=lambda kv: kv[1])
        floor = max(f["applied"], busiest[1] / rate)
        show(f"N={n} ({3 * n} objects), every action limited to {rate:g} calls/s", n, f)
        print(f"  floor set by those limits: {floor:.1f} s ({busiest[1]:.0f} {busiest[0]} calls at {rate:g}/s); "
              f"all Ready at {f['ready'] / floor:.2f}× the floor")
    fixed, loop = drift([]) if sizes else ({}, 0)
    if sizes:
        print(f"\ndrift corrected (60 s resync): queue attribute {fixed.get('queue', float('nan')):.0f} s, "
              f"filter policy {fixed.get('filter', float('nan')):.0f} s; filter-policy writes over the next resync: {loop:.0f}")
    resync = int(os.environ.get("SCALE_RESYNC", "60"))
    print(f"\nscale (100 namespaces, published quotas, {resync} s resync; steady state: AWS calls/s over the "
          f"resync period that follows the first one)")
    for objects in scale:
        f = run(objects // 3, 100, [], resync=resync, steady=resync)
        print(f"  {objects} objects: all Ready {f['ready']:.1f} s (applied in {f['applied']:.1f} s), last AWS write "
              f"{f['last_write']:.1f} s, RSS {f['idle']:.0f} → {f['peak']:.0f} MiB, AWS calls/object {f['aws']:.2f}, "
              f"API requests/object {f['requests']:.2f}")
        rates = sorted(f["steady"].items(), key=lambda kv: -kv[1])
        print("    steady-state AWS calls/s: " + (", ".join(f"{k} {v:.2f}" for k, v in rates) or "none"))


if __name__ == "__main__":
    main()
