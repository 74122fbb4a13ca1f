#!/usr/bin/env python3
"""The order part of `make demo`: posts sample orders to the order endpoint and waits, with a bound, until
every order reached its final state, then prints each order and a summary. Exits 1 when an order is not
accepted or not final in time, so the demo fails instead of printing a half-done table.

    orders.py URL COUNT TIMEOUT_SECONDS STATES_FILE     (API_KEY in the environment)

STATES_FILE receives the count of orders in each final state (JSON), from which the demo knows how many
order events the pipeline published.

URL is where the order endpoint answers (`kubectl port-forward` to its Service). The catalogue the orders
use (five products in stock, `poster` sold out) is put into the table by the demo before.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

SKUS = ["mug", "tee", "cap", "bag", "pen"]
DELIVERIES = ["standard", "express", "standard", "pickup", "standard"]
FINAL = {"SHIPPED", "RESERVED", "OUT_OF_STOCK"}


def request(url, key, body=None):
    headers = {"content-type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=headers, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, None


def sample(i, run):
    items = [{"sku": SKUS[i % 5], "quantity": 1 + i % 3, "unitPriceCents": 1500}]
    if i % 7 == 3:
        items.append({"sku": "poster", "quantity": 1, "unitPriceCents": 900})
    return {"customerId": f"c-{i % 9}", "items": items, "region": "eu-west",
            "delivery": DELIVERIES[i % 5], "idempotencyKey": f"demo-{run}-{i}"}


def is_final(order):
    # Pickup orders end RESERVED; the others go on to SHIPPED unless out of stock.
    state = order["state"]
    return state in FINAL and (state != "RESERVED" or order["placed"]["delivery"] == "pickup")


def main():
    base, count, timeout, states_file = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    key = os.environ["API_KEY"]
    status, _ = request(f"{base}/orders", None, {})
    print(f"  without credentials: {status}")
    if status != 401:
        sys.exit(f"demo: the order endpoint answered {status} to a request without an API key, not 401")
    run = int(time.time())
    started = time.time()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: request(f"{base}/orders", key, sample(i, run)), range(count)))
    refused = [s for s, _ in answers if s != 202]
    if refused:
        sys.exit(f"demo: {len(refused)} of {count} orders were not accepted (statuses {sorted(set(refused))})")
    ids = [body["orderId"] for _, body in answers]
    print(f"  {len(ids)} accepted (202) in {time.time() - started:.1f}s")
    print("\n== waiting for every order to reach its final state")
    orders, deadline = {}, time.time() + timeout
    while True:
        orders = {i: request(f"{base}/orders/{i}", key)[1] for i in ids}
        pending = [i for i, o in orders.items() if o is None or not is_final(o)]
        if not pending:
            break
        if time.time() > deadline:
            sys.exit(f"demo: {len(pending)} of {count} orders not final after {timeout:.0f}s, e.g. {pending[0]}: "
                     f"{orders[pending[0]] and orders[pending[0]]['state']}")
        time.sleep(1)  # a poll interval: the loop waits on the condition above, bounded by the deadline
    took = time.time() - started
    print(f"{'order':<24} {'delivery':<9} {'items':<22} {'state':<13} {'tracking':<16} notified")
    for i, o in orders.items():
        items = ",".join(f"{it['sku']}x{it['quantity']}" for it in o["placed"]["items"])
        print(f"{i:<24} {o['placed']['delivery']:<9} {items:<22} {o['state']:<13} "
              f"{o.get('trackingId', '-'):<16} {','.join(o['notifications'])}")
    states = {}
    for o in orders.values():
        states[o["state"]] = states.get(o["state"], 0) + 1
    print(f"\n{count} orders in {took:.1f}s: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
    with open(states_file, "w") as out:
        json.dump(states, out)


if __name__ == "__main__":
    main()
