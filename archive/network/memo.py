"""A small memo keyed by argument objects' identities, for answers that depend only on objects shared by many
associations (the decoded contexts of one A-ASSOCIATE-RQ, the supported contexts of one configuration)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class IdentityMemo(Generic[T]):
    """At most ``size`` answers, the oldest dropped first; safe across threads (two threads may compute the
    same answer once each). Each entry keeps the objects whose ids are in its key alive, so that no other
    object can take one of those ids while the entry stands."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._entries: dict[tuple, tuple[object, T]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, keep: object, compute: Callable[[], T]) -> T:
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None:
            return hit[1]
        value = compute()
        with self._lock:
            if len(self._entries) >= self._size:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = (keep, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)
