"""Removes the finalizers of every Tributary object in the namespaces labelled tributary.dev/test=true (or
matching the label selector given as the argument), through `kubectl proxy`, 16 requests at a time (one
kubectl call per object takes minutes for thousands). Run by testbed/clean.sh with the test bed's
kubeconfig."""

import concurrent.futures
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

KINDS = ("topics", "queues", "deadletters", "subscriptions", "devicestreams", "consumers")


def main():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proxy = subprocess.Popen(["kubectl", "proxy", f"--port={port}"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/version", timeout=2).close()
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit("unfinalize: kubectl proxy did not start")
                time.sleep(0.2)
        selector = sys.argv[1] if len(sys.argv) > 1 else "tributary.dev/test=true"
        query = urllib.parse.urlencode({"labelSelector": selector})
        with urllib.request.urlopen(f"{base}/api/v1/namespaces?{query}") as answer:
            namespaces = {item["metadata"]["name"] for item in json.load(answer)["items"]}
        paths = []
        for kind in KINDS:
            try:
                with urllib.request.urlopen(f"{base}/apis/tributary.dev/v1alpha1/{kind}", timeout=120) as answer:
                    items = json.load(answer)["items"]
            except OSError:
                continue
            for item in items:
                meta = item["metadata"]
                if meta.get("namespace") in namespaces and meta.get("finalizers"):
                    paths.append(f"/apis/tributary.dev/v1alpha1/namespaces/{meta['namespace']}/{kind}/{meta['name']}")

        def unfinalize(path):
            request = urllib.request.Request(f"{base}{path}", method="PATCH",
                                             data=b'{"metadata":{"finalizers":null}}',
                                             headers={"Content-Type": "application/merge-patch+json"})
            try:
                urllib.request.urlopen(request, timeout=30).close()
            except OSError:
                pass

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(unfinalize, paths))
        print(len(paths))
    finally:
        proxy.terminate()
        proxy.wait()


if __name__ == "__main__":
    main()
