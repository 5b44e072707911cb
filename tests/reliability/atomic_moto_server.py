"""moto's server, answering one request at a time: ``python -m tests.reliability.atomic_moto_server``.

DynamoDB applies each conditional write atomically: the condition and the update of one item
cannot be split by another writer. moto's threaded server checks a condition and applies the
update as two steps with no lock between them, so two concurrent ``UpdateItem`` calls can both
pass conditions that exclude each other (a join and a leave of one sid both land, which real
DynamoDB never allows). Serializing requests gives back per-request atomicity; the Lambdas
still race each other between their requests, which is what the concurrency tests are about.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server


def serialized(app: Callable[..., Iterable[bytes]]) -> Callable[..., list[bytes]]:
    lock = threading.Lock()

    def one_at_a_time(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with lock:
            return list(app(environ, start_response))

    return one_at_a_time


def main() -> None:
    """Bind a free port, print it (the caller waits for that line), then serve."""
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, serialized(app), threaded=True, request_handler=MotoRequestHandler)
    print(server.server_port, flush=True)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nobody reads the pipe from now on
    server.serve_forever()


if __name__ == "__main__":
    main()
