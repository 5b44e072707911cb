"""Init work every handler shares in the Lambda runtime: priming, and the SnapStart hooks.

A handler module ends with ``runtime.at_init(prime, before_snapshot)``. In Lambda
(``LAMBDA_TASK_ROOT`` set; tests and tools build lazily) ``prime`` runs at once: it builds what the
first request would (clients, ports, models), calling nothing over the network, because Lambda runs
init on more CPU than a 512 MB handler gets and, with SnapStart, once per published version.

Where the runtime offers SnapStart hooks (the Python 3.12+ managed runtimes ship
``snapshot_restore_py``; absent elsewhere, where nothing is snapshotted), ``before_snapshot`` runs
before the snapshot, for work worth doing only when it is snapshotted, and :func:`after_restore`
after every restore (docs/cold-start.md).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

from control_plane import composition


def in_lambda() -> bool:
    return bool(os.environ.get("LAMBDA_TASK_ROOT"))


def after_restore() -> None:
    """What environments restored from one snapshot must not share.

    ``random``'s state (botocore draws retry jitter from it) is reseeded, so they do not retry in
    step; the LiveKit secret cache and the LiveKit HTTP session are dropped, so a secret or a
    connection from before the snapshot is never used. IDs and tokens come from ``uuid4`` and
    ``secrets`` (the kernel's CSPRNG, read at call time), so they need nothing.
    """
    random.seed()
    composition.after_restore()


def at_init(prime: Callable[[], None], before_snapshot: Callable[[], None] | None = None) -> None:
    """Prime now in Lambda, and register the SnapStart hooks where the runtime has them."""
    if in_lambda():
        prime()
    try:
        from snapshot_restore_py import (  # type: ignore[import-not-found]
            register_after_restore,
            register_before_snapshot,
        )
    except ImportError:  # outside the Lambda runtime
        return
    if before_snapshot is not None:
        register_before_snapshot(before_snapshot)
    register_after_restore(after_restore)
