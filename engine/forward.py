"""Forward passes that reuse each branch's key/value cache, one branch or many in one batch.

Batching branches whose prefixes differ in length uses left padding: each row's cached states
are padded on the left to the longest, the attention mask hides the padding and position ids
carry each row's true positions. Padding sits before every real token of a row, so relative
distances (and with them sliding-window attention) are unchanged. After the pass each row's
states are cut back out, without the padding, and stored under its branch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from engine.kvcache import LayerStates, PrefixCache
from engine.output import output_logits, reproduces_model_logits


@dataclass(frozen=True)
class Row:
    """One branch to run: its cache key, every token id it holds, and an optional parent
    branch it was forked from (where its prefix is likely cached)."""

    branch: str
    ids: torch.Tensor  # (pos,) long, on CPU
    parent: str | None = None


def cache_from(layers: LayerStates) -> DynamicCache:
    """A DynamicCache holding these tensors as they are (no copy: updates concatenate)."""
    cache = DynamicCache()
    for keys, values in layers:
        layer = DynamicLayer()
        layer.lazy_initialization(keys, values)
        layer.keys, layer.values = keys, values
        cache.layers.append(layer)
    return cache


def layers_of(cache: DynamicCache) -> LayerStates:
    return [(layer.keys, layer.values) for layer in cache.layers]


class CachedForward:
    """Runs one model over branches, keeping their key/value states in a PrefixCache."""

    def __init__(self, model: torch.nn.Module, device: torch.device, cache: PrefixCache):
        self.model = model
        self.device = device
        self.cache = cache

    def _run(self, input_ids: torch.Tensor, cache: DynamicCache, n_logits: int, **extra):
        """Logits (batch, n_logits, vocab) of the last n_logits positions, extending `cache`."""
        input_ids = input_ids.to(self.device)
        if not reproduces_model_logits(self.model, self.device):
            output = self.model(
                input_ids=input_ids,
                cache=cache,
                use_cache=True,
                logits_to_keep=n_logits,
                **extra,
            )
            return output.logits
        hidden = self.model.get_decoder()(
            input_ids=input_ids, cache=cache, use_cache=True, **extra
        ).last_hidden_state
        return output_logits(self.model, hidden[:, -n_logits:])

    def _extend(self, row: Row, upto: int, n_logits: int) -> tuple[DynamicCache, torch.Tensor]:
        """Run the tokens of row.ids[:upto] not yet cached; returns the cache covering them and
        the logits of the last n_logits positions (None when n_logits is 0)."""
        max_cached = max(upto - n_logits, 0)
        length, layers = self.cache.lookup(row.branch, row.ids[:upto], max_cached, row.parent)
        cache = cache_from(layers)
        if length == upto:
            return cache, None
        new_ids = row.ids[length:upto].unsqueeze(0)  # (1, new)
        if n_logits == 0:  # catching up only: the decoder without the output projection
            self.model.get_decoder()(input_ids=new_ids.to(self.device), cache=cache, use_cache=True)
            return cache, None
        return cache, self._run(new_ids, cache, n_logits)

    @torch.inference_mode()
    def logits(self, row: Row, n_positions: int = 1) -> torch.Tensor:
        """Next-token logits (n_positions, vocab), float32 on CPU, at the last n_positions
        positions of row.ids — what a full forward pass over row.ids gives there."""
        total = row.ids.shape[0]
        if not 1 <= n_positions <= total:
            raise ValueError(f"n_positions must be between 1 and {total}, got {n_positions}")
        try:
            cache, logits = self._extend(row, total, n_positions)
        except BaseException:
            self.cache.drop(row.branch)
            raise
        self.cache.store(row.branch, row.ids, layers_of(cache))
        return logits[0].float().cpu()

    @torch.inference_mode()
    def last_logits(self, rows: list[Row]) -> torch.Tensor:
        """Next-token logits (batch, vocab), float32 on CPU, after each row's ids, computed in
        one batched pass. Rows with nothing cached are first read together in one left-padded
        pass; a row with several uncached tokens after a cached part catches up alone."""
        if len(rows) == 1:
            return self.logits(rows[0]).reshape(1, -1)
        try:
            caches = self._catch_up(rows)
            merged, attention_mask, position_ids = _merge(caches)
            last_ids = torch.stack([row.ids[-1:] for row in rows])  # (batch, 1)
            logits = self._run(
                last_ids,
                merged,
                1,
                attention_mask=attention_mask.to(self.device),
                position_ids=position_ids.to(self.device),
            )
        except BaseException:
            for row in rows:
                self.cache.drop(row.branch)
            raise
        for index, row in enumerate(rows):
            self.cache.store(row.branch, row.ids, _unpad(merged, index, row.ids.shape[0]))
        return logits[:, -1].float().cpu()

    def _catch_up(self, rows: list[Row]) -> list[DynamicCache]:
        """A cache per row covering all of its ids but the last."""
        caches: list[DynamicCache | None] = []
        fresh = []
        for index, row in enumerate(rows):
            upto = row.ids.shape[0] - 1
            length, layers = self.cache.lookup(row.branch, row.ids[:upto], upto, row.parent)
            if length == 0 and upto > 1:
                fresh.append(index)
                caches.append(None)
            elif length == upto:
                caches.append(cache_from(layers))
            else:
                caches.append(self._extend(row, upto, 0)[0])
        if len(fresh) == 1:
            caches[fresh[0]] = self._extend(rows[fresh[0]], rows[fresh[0]].ids.shape[0] - 1, 0)[0]
        elif fresh:
            prefixes = [rows[index].ids[:-1] for index in fresh]
            for index, cache in zip(fresh, self._read_together(prefixes), strict=True):
                caches[index] = cache
        return caches

    def _read_together(self, prefixes: list[torch.Tensor]) -> list[DynamicCache]:
        """Caches for several id sequences read in one left-padded pass of the decoder."""
        longest = max(prefix.shape[0] for prefix in prefixes)
        input_ids = torch.zeros(len(prefixes), longest, dtype=torch.long)
        attention_mask = torch.zeros(len(prefixes), longest, dtype=torch.long)
        position_ids = torch.zeros(len(prefixes), longest, dtype=torch.long)
        for row, prefix in enumerate(prefixes):
            n = prefix.shape[0]
            input_ids[row, longest - n :] = prefix
            attention_mask[row, longest - n :] = 1
            position_ids[row, longest - n :] = torch.arange(n)
        cache = DynamicCache()
        self.model.get_decoder()(
            input_ids=input_ids.to(self.device),
            attention_mask=attention_mask.to(self.device),
            position_ids=position_ids.to(self.device),
            cache=cache,
            use_cache=True,
        )
        return [
            cache_from(_unpad(cache, row, prefix.shape[0])) for row, prefix in enumerate(prefixes)
        ]


def _merge(caches: list[DynamicCache]) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
    """One left-padded batch cache from single-row caches, with the attention mask
    (batch, longest + 1) and position ids (batch, 1) for the next token of every row."""
    lengths = [cache.get_seq_length() for cache in caches]
    longest = max(lengths)
    n_layers = max(len(cache.layers) for cache in caches)
    layers = []
    for layer_index in range(n_layers):
        keys, values = [], []
        for cache, length in zip(caches, lengths, strict=True):
            layer_keys, layer_values = _layer_or_empty(cache, layer_index, caches)
            pad = (0, 0, longest - length, 0)  # (head_dim: none, pos: left)
            keys.append(torch.nn.functional.pad(layer_keys, pad))
            values.append(torch.nn.functional.pad(layer_values, pad))
        layers.append((torch.cat(keys), torch.cat(values)))  # (batch, kv_heads, longest, head_dim)
    attention_mask = torch.zeros(len(caches), longest + 1, dtype=torch.long)
    for row, length in enumerate(lengths):
        attention_mask[row, longest - length :] = 1
    position_ids = torch.tensor(lengths, dtype=torch.long).unsqueeze(1)
    return cache_from(layers), attention_mask, position_ids


def _layer_or_empty(cache: DynamicCache, layer_index: int, all_caches: list[DynamicCache]):
    """A row's states for one layer; zero-length states shaped like another row's when this row
    has nothing cached (a one-token branch)."""
    if layer_index < len(cache.layers) and cache.layers[layer_index].is_initialized:
        return cache.layers[layer_index].keys, cache.layers[layer_index].values
    template = next(c.layers[layer_index].keys for c in all_caches if len(c.layers) > layer_index)
    empty = template[:1, :, :0]
    return empty, empty


def _unpad(merged: DynamicCache, row: int, length: int) -> LayerStates:
    """Row `row`'s states (now `length` long) without its left padding, as fresh tensors."""
    return [
        (
            layer.keys[row : row + 1, :, -length:].clone(),
            layer.values[row : row + 1, :, -length:].clone(),
        )
        for layer in merged.layers
    ]
