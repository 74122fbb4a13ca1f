"""Patch of the test bed's moto (applied by testbed/install.sh to its own virtualenv, never to a system one).

moto's DynamoDB TransactWriteItems backs up each table it touches with a deep copy of the whole table, once
per operation of the transaction, so every transaction costs time in proportion to the table's size: an
order pipeline of a thousand orders (three transactions each, on one table) slowed to under two orders a
second, and moto's memory grew past 4 GiB. The patch keeps, instead, a copy of each item as it was before
the transaction wrote it, and a rollback puts back only those. Every operation touches one item (moto
refuses a transaction that names an item twice), so this restores what the table copy restored, without
undoing what concurrent requests wrote to other items meanwhile, as putting back a whole table copy did.
And every condition is checked first, against the state before the transaction, as DynamoDB does: a
transaction whose condition fails writes nothing at all. (Unpatched, a redelivered order message whose
transaction failed a condition could put back a stock count over a concurrent reservation.)

Finally, moto serves requests on threads but its DynamoDB operations read, change and write items without
a lock, so two concurrent updates of one item could lose one (a stock count, once in a thousand orders):
the patch serialises DynamoDB requests, which costs nothing on a server the interpreter lock serialises
anyway, and makes each item's operations atomic, as DynamoDB's are.

Likewise a Query on a table's key sorted every item of the table and kept those of the hash key; the patch
takes the hash key's items directly (they are sorted by range key afterwards, as before), so reading one
order no longer costs the whole table.

SQS had the same kind of race: a ReceiveMessage checks that a message is visible and then marks it
received, without a lock, so two concurrent receives on one queue could both take the same message (3
duplicates in 30 rounds of three receivers sharing 50 messages, measured here). Real SQS hides a received
message from every other receive until its visibility timeout; the worker runtime's tests count on that, and
a duplicate made one of them wait forever for an exact count. The patch serialises the part of a receive
that picks and marks messages, and releases the lock while a long poll waits, so waiting receives do not
block other requests.

Usage: python3 moto-patch.py SITE_PACKAGES
"""

import pathlib
import sys

MARKER = "Tributary test bed patch"

BACKUP = """        # Create a backup in case any of the transactions fail
        original_table_state: dict[str, Table] = {}
        for item in transact_items:
            _, op = next(iter(item.items()))
            table_name = op.get("TableName")
            if table_name and table_name in self.tables:
                original_table_state[table_name] = copy.deepcopy(
                    self.tables[table_name]
                )
"""

ITEM_BACKUP = """        # Tributary test bed patch (testbed/moto-patch.py): keep each item as it was before this transaction
        # wrote it, instead of a deep copy of each whole table per operation; a rollback puts back only those.
        original_items: list[tuple[str, dict[str, Any], Any]] = []

        def rollback() -> None:
            for table_name, key, original in reversed(original_items):
                if original is None:
                    try:
                        self.delete_item(table_name, key)
                    except Exception:
                        pass
                else:
                    self.put_item(table_name, original.to_json()["Attributes"])
"""

UNICITY = """            target_items.add(item)

"""

PRECHECK = """            target_items.add(item)

        # Tributary test bed patch (testbed/moto-patch.py): every condition is checked against the state
        # before the transaction, as DynamoDB does, and a cancelled transaction writes nothing (so its
        # rollback cannot undo what concurrent requests wrote meanwhile).
        prechecked: list[tuple[Any, Any, Any]] = []
        for item in transact_items:
            try:
                op_type, op = next(iter(item.items()))
                condition_expression = op.get("ConditionExpression")
                if condition_expression is None:
                    prechecked.append((None, None, None))
                    continue
                if op_type == "Put":
                    table = self.get_table(op["TableName"])
                    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = op["Item"][table.range_key_attr]
                else:
                    key = op["Key"]
                current = self.get_item(op["TableName"], key)
                condition_op = get_filter_expression(
                    condition_expression,
                    op.get("ExpressionAttributeNames"),
                    op.get("ExpressionAttributeValues"),
                )
                if condition_op.expr(current):
                    prechecked.append((None, None, None))
                    continue
                old = None
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    old = current.to_json()["Attributes"]
                failed = ConditionalCheckFailed(item=old)
                prechecked.append(("ConditionalCheckFailed", str(failed.message), old))
            except Exception:  # left to the loop below, which reports it as it always did
                prechecked.append((None, None, None))
        if any(code is not None for code, _, _ in prechecked):
            raise TransactionCanceledException(prechecked)

"""

BEFORE_WRITE = (
    """                        raise ConditionalCheckFailed(item=original_item)

                if op_type == "Put":
""",
    """                        raise ConditionalCheckFailed(item=original_item)

                if op_type != "ConditionCheck":
                    original_items.append((table_name, key, copy.deepcopy(current)))
                if op_type == "Put":
""",
)

ROLLBACKS = [
    (
        """                # Rollback to the original state, and reraise the error
                for table_name in original_table_state:
                    self.tables[table_name] = original_table_state[table_name]
""",
        """                # Rollback to the original state, and reraise the error
                rollback()
""",
    ),
    (
        """            # Rollback to the original state, and reraise the errors
            for table_name in original_table_state:
                self.tables[table_name] = original_table_state[table_name]
""",
        """            # Rollback to the original state, and reraise the errors
            rollback()
""",
    ),
]


QUERY = (
    """            possible_results = [
                item
                for item in self.all_items()
                if isinstance(item, Item) and item.hash_key == hash_key
            ]
""",
    """            # Tributary test bed patch (testbed/moto-patch.py): the hash key's items, not a sorted scan.
            bucket = self.items.get(hash_key)  # type: ignore
            if bucket is None:
                possible_results = []
            elif self.range_key_attr:
                possible_results = list(bucket.values())
            else:
                possible_results = [bucket]
""",
)

CALL_ACTION = (
    """        self.body = getattr(self, "params", {})
        return super().call_action()
""",
    """        self.body = getattr(self, "params", {})
        # Tributary test bed patch (testbed/moto-patch.py): one DynamoDB request at a time.
        with _TRIBUTARY_LOCK:
            return super().call_action()
""",
)

LOCK = (
    """import copy
import itertools
""",
    """import copy
import itertools
import threading

# Tributary test bed patch (testbed/moto-patch.py): serialises DynamoDB requests.
_TRIBUTARY_LOCK = threading.RLock()
""",
)

RECEIVE_WAIT = (
    """                queue.wait_for_messages(1)
""",
    """                # Tributary test bed patch (testbed/moto-patch.py): no lock held while a long poll waits.
                _TRIBUTARY_RECEIVE_LOCK.release()
                try:
                    queue.wait_for_messages(1)
                finally:
                    _TRIBUTARY_RECEIVE_LOCK.acquire()
""",
)

RECEIVE_LOCK = (
    """sqs_backends = BackendDict(SQSBackend, "sqs")
""",
    """# Tributary test bed patch (testbed/moto-patch.py): one receive at a time picks and marks messages, so
# two receives never take the same message.
import threading as _tributary_threading

_TRIBUTARY_RECEIVE_LOCK = _tributary_threading.Lock()
_tributary_receive_message = SQSBackend.receive_message


def _tributary_serialised_receive_message(self, *args, **kwargs):  # type: ignore
    with _TRIBUTARY_RECEIVE_LOCK:
        return _tributary_receive_message(self, *args, **kwargs)


SQSBackend.receive_message = _tributary_serialised_receive_message  # type: ignore

sqs_backends = BackendDict(SQSBackend, "sqs")
""",
)

# Files under site-packages/moto and what to replace in each (each old text must occur exactly once).
PATCHES = {
    "dynamodb/models/__init__.py": [(BACKUP, ITEM_BACKUP), (UNICITY, PRECHECK), BEFORE_WRITE, *ROLLBACKS],
    "dynamodb/models/table.py": [QUERY],
    "dynamodb/responses.py": [LOCK, CALL_ACTION],
    "sqs/models.py": [RECEIVE_WAIT, RECEIVE_LOCK],
}


def main() -> None:
    moto = pathlib.Path(sys.argv[1]) / "moto"
    for name, replacements in PATCHES.items():
        path = moto / name
        text = path.read_text()
        if MARKER in text:
            continue
        for old, new in replacements:
            if text.count(old) != 1:
                sys.exit(f"moto-patch.py: the code to patch was not found once in {path}; was moto upgraded?")
            text = text.replace(old, new)
        path.write_text(text)


if __name__ == "__main__":
    main()
