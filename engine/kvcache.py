"""Key/value caches of branches, kept between steps in the worker that owns the model.

A branch is identified by a key (a string the caller chooses, e.g. a branch's UUID) and is always
described by its full token ids, so the cache is only an accelerator: correctness never depends on
what it holds. A lookup returns the longest cached prefix of the ids asked for — the branch's own
entry (grown one token per step; cropped on undo) or, for a new branch forked from another, the
prefix they share. Entries are evicted least recently used first under a byte budget.

Keys may carry a scope (`scoped(scope, key)`: whose text it is, e.g. one person). A lookup only
ever reuses entries of its own scope: how much of a text was already cached is itself
information about what someone else typed, so it never crosses from one person to another.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

# Per layer: (keys, values), each (batch=1, kv_heads, pos, head_dim).
LayerStates = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class CachedPrefix:
    """The key/value states of every layer for the tokens `ids` of one branch."""

    ids: torch.Tensor  # (pos,) long, on CPU
    layers: LayerStates
    # Counted once: every store sums the sizes of all entries to evict down to the budget.
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.nbytes = sum(keys.nbytes + values.nbytes for keys, values in self.layers)

    @property
    def length(self) -> int:
        return int(self.ids.shape[0])


SCOPE_SEPARATOR = "\x1f"


def scoped(scope: str, key: str | None) -> str | None:
    """The cache key of `key` within `scope` (None stays None; an empty scope adds nothing)."""
    if key is None or not scope:
        return key
    return f"{scope}{SCOPE_SEPARATOR}{key}"


def scope_of(key: str) -> str:
    scope, separator, _ = key.partition(SCOPE_SEPARATOR)
    return scope if separator else ""


def common_prefix_length(a: torch.Tensor, b: torch.Tensor) -> int:
    """How many leading ids two 1-D id tensors share."""
    n = min(a.shape[0], b.shape[0])
    if n == 0:
        return 0
    differs = torch.nonzero(a[:n] != b[:n])
    return int(differs[0]) if differs.numel() else n


def crop_layers(layers: LayerStates, length: int) -> LayerStates:
    """The states of the first `length` positions (views, no copy)."""
    return [(keys[:, :, :length], values[:, :, :length]) for keys, values in layers]


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes_used: int
    budget_bytes: int
    hits: int
    misses: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class PrefixCache:
    """Branch key → CachedPrefix, least recently used evicted first once over `budget_bytes`."""

    def __init__(self, budget_bytes: int):
        if budget_bytes < 0:
            raise ValueError(f"budget_bytes must be ≥ 0, got {budget_bytes}")
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[str, CachedPrefix] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def lookup(
        self, key: str, ids: torch.Tensor, max_length: int, parent: str | None = None
    ) -> tuple[int, LayerStates]:
        """The longest cached prefix of `ids` usable for branch `key`, at most `max_length` long.

        Looks at the branch's own entry first, then its `parent` (a fork), then every entry of
        the same scope (never another scope's). Returns (length, layer states cropped to it);
        (0, []) when nothing matches.
        """
        scope = scope_of(key)
        with self._lock:
            same_scope = self._in_scope(scope)
            if parent and scope_of(parent) == scope:
                same_scope.insert(0, self._entries.get(parent))
            candidates = [self._entries.get(key), *same_scope]
            best_length, best = 0, None
            for entry in candidates:
                if entry is None:
                    continue
                length = min(common_prefix_length(entry.ids, ids), max_length)
                if length > best_length:
                    best_length, best = length, entry
                if best_length == max_length:
                    break
            if best is None:
                self._misses += 1
                return 0, []
            self._hits += 1
            return best_length, crop_layers(best.layers, best_length)

    def cached_length(self, key: str, ids: torch.Tensor) -> int:
        """How many leading ids of `ids` a lookup for `key` would find (counting no hit):
        the longest prefix any entry of its scope holds."""
        with self._lock:
            entries = self._in_scope(scope_of(key))
            return max((common_prefix_length(entry.ids, ids) for entry in entries), default=0)

    def _in_scope(self, scope: str) -> list[CachedPrefix]:
        """Every entry of one scope (call with the lock held)."""
        return [entry for name, entry in self._entries.items() if scope_of(name) == scope]

    def store(self, key: str, ids: torch.Tensor, layers: LayerStates) -> None:
        """Remember `layers` as the states of `ids` for branch `key`, then evict down to budget
        (an entry larger than the whole budget is not kept)."""
        entry = CachedPrefix(ids.detach().to("cpu", torch.long), layers)
        with self._lock:
            self._entries.pop(key, None)
            if entry.nbytes > self.budget_bytes:
                return
            self._entries[key] = entry
            used = sum(cached.nbytes for cached in self._entries.values())
            while used > self.budget_bytes:
                _, evicted = self._entries.popitem(last=False)
                used -= evicted.nbytes

    def drop(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                entries=len(self._entries),
                bytes_used=sum(entry.nbytes for entry in self._entries.values()),
                budget_bytes=self.budget_bytes,
                hits=self._hits,
                misses=self._misses,
            )
