"""Stable sharding of keys, for index partitions and the sweep's groups.

A DynamoDB partition takes about 1,000 writes a second; an index key with a few values (the
attention index had ``room`` and ``worker``) concentrates every write on one partition. Keys are
spread over shards by a stable hash (the same in every process and every release: never
Python's salted ``hash``), so a reader can query each shard on its own and a sweep group can own
a fixed set of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable

ATTENTION_SHARDS = 16
"""Shards of each kind (``room``, ``worker``) in the attention index. Changing it re-shards
every item, so it is a constant, not a setting."""


def shard_of(key: str, shards: int) -> int:
    """The shard of ``key`` among ``shards``: a stable 64-bit hash of its UTF-8 bytes, modulo."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def attention_value(kind: str, key: str) -> str:
    """The attention index's partition value for an item: ``room#3``, ``worker#11``."""
    return f"{kind}#{shard_of(key, ATTENTION_SHARDS)}"


def attention_values(kind: str, shards: Iterable[int] | None = None) -> list[str]:
    """The partition values of ``kind`` to query for ``shards`` (None: every shard)."""
    chosen = range(ATTENTION_SHARDS) if shards is None else sorted(set(shards))
    return [f"{kind}#{shard}" for shard in chosen]


def in_shards(key: str, shards: Collection[int] | None) -> bool:
    """Whether ``key``'s attention shard is one of ``shards`` (None: every shard)."""
    return shards is None or shard_of(key, ATTENTION_SHARDS) in shards


def group_shards(group: int, groups: int) -> frozenset[int]:
    """The attention shards sweep group ``group`` of ``groups`` owns: every ``groups``-th one,
    so each shard has exactly one owner and groups differ by at most one shard."""
    if not 1 <= groups <= ATTENTION_SHARDS:
        raise ValueError(f"sweep groups must be 1 to {ATTENTION_SHARDS}, not {groups}")
    if not 0 <= group < groups:
        raise ValueError(f"sweep group {group} is not one of 0 to {groups - 1}")
    return frozenset(range(group, ATTENTION_SHARDS, groups))
