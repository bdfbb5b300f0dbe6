"""The branch cache: longest-prefix lookup (own entry, fork, undo) and LRU eviction by bytes."""

import torch

from engine.kvcache import PrefixCache, common_prefix_length, scoped


def states(length: int, layers: int = 2):
    """Fake per-layer states whose value at each position is the position (1 KiB a position)."""
    positions = torch.arange(length, dtype=torch.float32).reshape(1, 1, length, 1)
    return [(positions.expand(1, 2, length, 64).clone(),) * 2 for _ in range(layers)]


def ids(*values):
    return torch.tensor(values, dtype=torch.long)


def test_common_prefix_length():
    assert common_prefix_length(ids(1, 2, 3), ids(1, 2, 4, 5)) == 2
    assert common_prefix_length(ids(1, 2), ids(1, 2, 3)) == 2
    assert common_prefix_length(ids(), ids(1)) == 0


def test_lookup_crops_to_the_shared_prefix_for_undo_and_fork():
    cache = PrefixCache(1 << 20)
    cache.store("main", ids(1, 2, 3, 4, 5), states(5))
    length, layers = cache.lookup("main", ids(1, 2, 3), max_length=2)  # undo: keep one to read
    assert length == 2 and layers[0][0].shape[2] == 2
    length, layers = cache.lookup("child", ids(1, 2, 3, 9), max_length=3, parent="main")
    assert length == 3 and layers[1][1][0, 0, :, 0].tolist() == [0, 1, 2]
    assert cache.lookup("other", ids(7, 8), max_length=1) == (0, [])


def test_least_recently_used_entries_are_evicted_under_the_byte_budget():
    one_entry = sum(k.nbytes + v.nbytes for k, v in states(4))
    cache = PrefixCache(budget_bytes=2 * one_entry)
    cache.store("a", ids(1, 2, 3, 4), states(4))
    cache.store("b", ids(5, 6, 7, 8), states(4))
    cache.lookup("a", ids(1, 2, 3, 4, 0), max_length=4)  # a lookup does not reorder...
    cache.store("a", ids(1, 2, 3, 4), states(4))  # ...storing after a step does
    cache.store("c", ids(9, 9, 9, 9), states(4))
    assert sorted(cache.keys()) == ["a", "c"]
    assert cache.stats().bytes_used <= cache.budget_bytes


def test_an_entry_larger_than_the_budget_is_not_kept():
    cache = PrefixCache(budget_bytes=100)
    cache.store("big", ids(1, 2, 3), states(3))
    assert cache.keys() == []


def test_a_lookup_never_reuses_another_scopes_entries():
    """How much of a text is cached tells what someone typed: scopes never share entries."""
    cache = PrefixCache(budget_bytes=10**6)
    cache.store(scoped("user:1", "private"), ids(5, 6, 7, 8), states(4))
    assert cache.lookup(scoped("user:2", "probe"), ids(5, 6, 7, 9), 4) == (0, [])
    private = scoped("user:1", "private")
    probe_parent = cache.lookup(scoped("user:2", "probe"), ids(5, 6, 7), 3, private)
    assert probe_parent == (0, [])
    assert cache.lookup("unscoped", ids(5, 6, 7), 3)[0] == 0
    length, _ = cache.lookup(scoped("user:1", "fork"), ids(5, 6, 7, 9), 4)
    assert length == 3
