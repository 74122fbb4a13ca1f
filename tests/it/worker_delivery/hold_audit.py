#!/usr/bin/env python3
"""The audit example (examples/custom/audit.py, given as the first argument), run unchanged as a process
of its own, with one hook for the test that kills it mid-request: an event whose `ce-hold` extension (the
message attribute `hold`) is `before` or `after` is held the first time its id comes, before or after its
audit record is written, without an answer, until the process is killed. Each hold leaves a file named
`<stage>-<ce-id>` in HOLD_DIR, which tells the test a request is in flight and the next process (after the
kill) that the hold was done: it answers as the example does.
"""

import importlib.util
import os
import sys
import threading

spec = importlib.util.spec_from_file_location("audit", sys.argv[1])
audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)

HOLD_DIR = os.environ["HOLD_DIR"]
HELD = threading.local()


def hold(stage, event_id):
    marker = os.path.join(HOLD_DIR, f"{stage}-{event_id}")
    if os.path.exists(marker):
        return
    with open(marker, "w", encoding="utf-8"):
        pass
    threading.Event().wait()  # until the process is killed


class Holding(audit.Handler):
    def do_POST(self):
        HELD.stage = self.headers.get("ce-hold")
        HELD.event_id = self.headers.get("ce-id")
        if HELD.stage == "before":
            hold("before", HELD.event_id)
        super().do_POST()


class HoldingLog(audit.AuditLog):
    def record(self, entry):
        new = super().record(entry)
        if getattr(HELD, "stage", None) == "after":
            hold("after", HELD.event_id)
        return new


# The log is read back as the example reads it; only what happens after a record changes.
audit.AUDIT.__class__ = HoldingLog
audit.Handler = Holding
audit.main()
