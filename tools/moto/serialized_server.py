"""moto's DynamoDB server, applying one request at a time.

moto's own server (`moto_server`) runs requests on concurrent threads without a lock around
its state: a `TransactWriteItems` deep-copies its tables while another thread writes to them
and fails with a 500 ("dictionary changed size during iteration"), and two conditional writes
on one item can both succeed. DynamoDB isolates both (transactions are serializable, a
conditional write is atomic per item:
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-isolation),
so applying requests one at a time is closer to it, not further. Connections are still served
on threads; only the application call holds the lock.

moto's `TransactWriteItems` also deep-copies every table it touches before it starts, to roll
back on failure: its cost grows with the tables, not the transaction, and one run of the suite
spent minutes in it (a ledger of 2,000 events copied at every event). Here a transaction backs
up only the items it names (the only ones it can change) and restores them on failure, which
is the same rollback.

Usage: python serialized_server.py --host 127.0.0.1 --port 5000
"""

import argparse
import copy
import os
import threading

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class _TablesNotCopied:
    """`copy` as moto's backend module sees it: a table is not copied (the transaction's own
    items are, by `_transact_write_items`); anything else is, as before."""

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


_moto_transact_write_items = DynamoDBBackend.transact_write_items


def _item_key(table, attrs):
    hash_key = attrs.get(table.hash_key_attr)
    if hash_key is None:
        return None
    range_key = None
    if table.range_key_attr is not None:
        range_key = attrs.get(table.range_key_attr)
        if range_key is None:
            return None
        range_key = DynamoType(range_key)
    return DynamoType(hash_key), range_key


def _transact_write_items(self, transact_items):
    backups = []
    for entry in transact_items:
        op = next(iter(entry.values()), None) or {}
        table = self.tables.get(op.get("TableName"))
        key = table and _item_key(table, op.get("Key") or op.get("Item") or {})
        if key is None:
            continue
        hash_key, range_key = key
        if table.range_key_attr is not None:
            current = table.items.get(hash_key, {}).get(range_key)
        else:
            current = table.items.get(hash_key)
        backups.append((table, hash_key, range_key, copy.deepcopy(current)))
    try:
        return _moto_transact_write_items(self, transact_items)
    except Exception:
        for table, hash_key, range_key, item in reversed(backups):
            if table.range_key_attr is not None:
                by_range = table.items[hash_key]
                if item is None:
                    by_range.pop(range_key, None)
                else:
                    by_range[range_key] = item
                if not by_range:
                    table.items.pop(hash_key, None)
            elif item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item
        raise


dynamodb_models.copy = _TablesNotCopied
DynamoDBBackend.transact_write_items = _transact_write_items


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # As moto_server does: moto names its own endpoint from it.
    os.environ.setdefault("MOTO_PORT", str(args.port))

    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ, start_response):
        with lock:
            # The body is produced inside the lock too: moto builds it from its state.
            return list(app(environ, start_response))

    run_simple(
        args.host,
        args.port,
        serialized,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
