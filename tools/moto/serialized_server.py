"""moto's DynamoDB server, applying one request at a time.

moto's own server (`moto_server`) runs requests on concurrent threads without a lock around
its state: a `TransactWriteItems` deep-copies its tables while another thread writes to them
and fails with a 500 ("dictionary changed size during iteration"), and two conditional writes
on one item can both succeed. DynamoDB isolates both (transactions are serializable, a
conditional write is atomic per item:
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-isolation),
so applying requests one at a time is closer to it, not further. Connections are still served
on threads; only the application call holds the lock.

Usage: python serialized_server.py --host 127.0.0.1 --port 5000
"""

import argparse
import os
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


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
