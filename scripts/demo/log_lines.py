#!/usr/bin/env python3
"""Shortens worker log lines for `make demo`: reads `kubectl logs --prefix` output on stdin (the workers log
JSON lines with the chart's logFormat json, or text), keeps the lines whose message contains TEXT, and
prints the last COUNT as `pod  time  message  field=value ...` (trace ids left out). Exits 1 when no line
matched, so the demo fails when a worker did not log what it should have.

    kubectl logs -l ... --prefix | log_lines.py TEXT COUNT
"""

import json
import re
import sys

PREFIX = re.compile(r"^\[pod/(?P<pod>[^/\]]+)/[^\]]+\] (?P<line>.*)$")


def shorten(pod, line):
    try:
        entry = json.loads(line)
    except ValueError:
        return f"{pod}  {line}"  # text format: as it is
    fields = dict(entry.get("fields", {}))
    message = fields.pop("message", "")
    fields.pop("trace_id", None)
    rest = " ".join(f"{k}={v}" for k, v in fields.items())
    return f"{pod}  {entry.get('timestamp', '')[11:23]}  {message}  {rest}".rstrip()


def main():
    text, count = sys.argv[1], int(sys.argv[2])
    matched = []
    for raw in sys.stdin:
        m = PREFIX.match(raw.rstrip("\n"))
        pod, line = (m["pod"], m["line"]) if m else ("", raw.rstrip("\n"))
        if text in line:
            matched.append(shorten(pod, line))
    if not matched:
        sys.exit(f"demo: no log line with {text!r}")
    for line in matched[-count:]:
        print(f"  {line}")


if __name__ == "__main__":
    main()
