"""The strongest attention links of a range of layers, as a graph's edges.

A layer's maps are reduced to their edges inside its hook, on the model's device (the top-k
keys of every query row of every chosen head, or every weight at or above a threshold), so
only one layer's maps ever exist and only the edges leave the worker. Of the links the rule
lets through, only the strongest max_edges are kept (all are counted): 256 tokens × 30
layers × 9 heads at top-1 is 69,120 links, more than a browser draws in a few seconds
(bench/attention.py), so the page asks for the strongest few thousand.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.attention import (
    LayerInputCache,
    _check_indices,
    capture_attention,
    check_cells,
    kv_heads,
    read_attended,
)
from engine.limits import (
    DEFAULT_GRAPH_K,
    DEFAULT_GRAPH_MAX_EDGES,
    DEFAULT_GRAPH_THRESHOLD,
    GRAPH_RULES,
    MAX_CELLS,
    MAX_GRAPH_EDGES,
    MAX_GRAPH_K,
    MIN_GRAPH_THRESHOLD,
)
from engine.loading import LoadedModel
from engine.types import InputError, TokenPiece

WEIGHT_DECIMALS = 4  # as sent: enough to rank links, a third of float32's digits


@dataclass(frozen=True)
class LinkRule:
    """Which links of a query row are edges: its `k` strongest keys (rule "top_k") or every
    key it attends to with weight >= `threshold` (rule "threshold"). With skip_first, links
    to the first token (where many heads park attention they do not need: a "sink") are left
    out and the strongest of the others are kept."""

    rule: str = "top_k"
    k: int = DEFAULT_GRAPH_K
    threshold: float = DEFAULT_GRAPH_THRESHOLD
    skip_first: bool = False

    def __post_init__(self):
        if self.rule not in GRAPH_RULES:
            raise InputError(f"rule must be one of {', '.join(GRAPH_RULES)}", field="rule")
        if not 1 <= self.k <= MAX_GRAPH_K:
            raise InputError(f"k is 1–{MAX_GRAPH_K} links per query, not {self.k}", field="k")
        if not MIN_GRAPH_THRESHOLD <= self.threshold <= 1:
            raise InputError(
                f"threshold is a weight from {MIN_GRAPH_THRESHOLD} to 1, not {self.threshold}",
                field="threshold",
            )

    def to_dict(self) -> dict:
        return {
            "rule": self.rule,
            "k": self.k if self.rule == "top_k" else None,
            "threshold": self.threshold if self.rule == "threshold" else None,
            "skip_first": self.skip_first,
        }


@dataclass(frozen=True)
class AttentionGraph:
    """The strongest `max_edges` of the edges of `layers` × `heads` over `tokens` chosen by
    `links`; n_matching: how many edges the rule let through (all of them: E when it is at
    most max_edges).

    edges: (E, 4) int64 rows (layer, head, query, key), ordered by layer, head, query, then
    weight (strongest first); weights: (E,) float32, the attention `query` pays `key` in that
    head. kv_head_of[i]: the key/value head query head heads[i] reads.
    """

    tokens: tuple[TokenPiece, ...]
    layers: tuple[int, ...]
    heads: tuple[int, ...]
    kv_head_of: tuple[int, ...]
    links: LinkRule
    edges: torch.Tensor
    weights: torch.Tensor
    n_matching: int
    max_edges: int

    def to_dict(self) -> dict:
        layer, head, query, key = self.edges.T.tolist() if len(self.edges) else ([], [], [], [])
        return {
            "tokens": [token.to_dict() for token in self.tokens],
            "n_tokens": len(self.tokens),
            "layers": list(self.layers),
            "heads": list(self.heads),
            "kv_head_of": list(self.kv_head_of),
            **self.links.to_dict(),
            "max_edges": self.max_edges,
            "n_matching": self.n_matching,
            "n_edges": len(self.edges),
            "edges": {
                "layer": layer,
                "head": head,
                "query": query,
                "key": key,
                "weight": [round(value, WEIGHT_DECIMALS) for value in self.weights.tolist()],
            },
        }


class _StrongestEdges:
    """Reduces each layer's (heads, queries, keys) maps to its edges, counting every edge the
    rule lets through and keeping the layer's strongest max_edges (the strongest max_edges of
    all layers are among them), so what is held stays within layers × max_edges edges."""

    def __init__(self, heads: tuple[int, ...], links: LinkRule, max_edges: int):
        self.heads = list(heads)
        self.links = links
        self.max_edges = max_edges
        self.matching = 0

    def __call__(self, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows, values = layer_edges(weights[self.heads].float(), self.links)
        self.matching += len(values)
        kept = strongest(values, self.max_edges)
        return rows[kept], values[kept]


def strongest(weights: torch.Tensor, count: int) -> torch.Tensor:
    """The indices of the `count` largest weights, in their order (ties: the earlier ones)."""
    if len(weights) <= count:
        return torch.arange(len(weights))
    by_weight = torch.argsort(weights, descending=True, stable=True)
    return by_weight[:count].sort().values


def layer_edges(maps: torch.Tensor, links: LinkRule) -> tuple[torch.Tensor, torch.Tensor]:
    """maps (heads, n, n) of one layer → ((E, 3) int64 rows (head index in maps, query, key),
    (E,) float32 weights) on the CPU: each query row's strongest keys by `links`."""
    heads, n, _ = maps.shape
    causal = torch.ones(n, n, dtype=torch.bool, device=maps.device).tril()
    if links.skip_first:
        causal[:, 0] = False
    masked = maps.masked_fill(~causal, -1.0)  # weights are >= 0: -1 marks "no link"
    if links.rule == "top_k":
        values, keys = masked.topk(min(links.k, n), dim=-1)  # (heads, n, k), strongest first
        head, query, rank = torch.nonzero(values >= 0, as_tuple=True)
        rows = torch.stack([head, query, keys[head, query, rank]], dim=1)
        return rows.cpu(), values[head, query, rank].cpu()
    head, query, key = torch.nonzero(masked >= links.threshold, as_tuple=True)
    weights = masked[head, query, key]
    order = _strongest_first(query + head * n, weights)
    rows = torch.stack([head, query, key], dim=1)[order]
    return rows.cpu(), weights[order].cpu()


def _strongest_first(row: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The order that keeps rows (already sorted) together and sorts each by weight,
    descending (two stable sorts)."""
    by_weight = torch.argsort(weights, descending=True, stable=True)
    return by_weight[torch.argsort(row[by_weight], stable=True)]


def _check_range(first: int, last: int | None, n_layers: int) -> tuple[int, ...]:
    last = n_layers - 1 if last is None else last
    for value, field in ((first, "first_layer"), (last, "last_layer")):
        if not isinstance(value, int) or not 0 <= value < n_layers:
            raise InputError(
                f"Layer {value!r} does not exist: this model has {n_layers} layers "
                f"(0–{n_layers - 1})",
                field=field,
            )
    if first > last:
        raise InputError(
            f"The layer range runs from first_layer {first} up to last_layer {last}: the first "
            "may not come after the last",
            field="last_layer",
        )
    return tuple(range(first, last + 1))


def attention_graph(
    loaded: LoadedModel,
    text: str,
    *,
    first_layer: int = 0,
    last_layer: int | None = None,
    heads=None,
    links: LinkRule | None = None,
    system_prompt: str | None = None,
    use_chat_template: bool = False,
    completion_ids=(),
    max_edges: int = DEFAULT_GRAPH_MAX_EDGES,
    max_cells: int = MAX_CELLS,
    reuse: tuple[LayerInputCache, str] | None = None,
) -> AttentionGraph:
    """The strongest attention links (by `links`, default the top 3 per query) of layers
    first_layer..last_layer (default: every layer) and `heads` (default all) over `text`
    followed by `completion_ids`: of the edges the rule lets through, the strongest
    max_edges (1–MAX_GRAPH_EDGES). Refused before the forward pass when one layer's maps
    would be more than max_cells values. `reuse`: see capture_attention (the layer inputs an
    attention heatmap reuses too)."""
    info = loaded.info
    links = links or LinkRule()
    if isinstance(max_edges, bool) or not 1 <= max_edges <= MAX_GRAPH_EDGES:
        raise InputError(
            f"max_edges is 1–{MAX_GRAPH_EDGES:,} links, not {max_edges!r}", field="max_edges"
        )
    layers = _check_range(first_layer, last_layer, info.n_layers)
    heads = _check_indices(range(info.n_heads) if heads is None else heads, info.n_heads, "heads")
    tokenization = read_attended(loaded, text, system_prompt, use_chat_template, completion_ids)
    ids = [token.id for token in tokenization.tokens]
    check_cells(1, info.n_heads, len(ids), max_cells)  # one layer's maps at a time
    reducer = _StrongestEdges(heads, links, max_edges)
    captured = capture_attention(loaded, ids, layers, reduce=reducer, reuse=reuse)
    edges, weights = _joined(captured, layers, heads)
    kept = strongest(weights, max_edges)
    kv_head_of_all = kv_heads(info.n_heads, info.n_kv_heads)
    return AttentionGraph(
        tokens=tokenization.tokens,
        layers=layers,
        heads=heads,
        kv_head_of=tuple(kv_head_of_all[head] for head in heads),
        links=links,
        edges=edges[kept],
        weights=weights[kept],
        n_matching=reducer.matching,
        max_edges=max_edges,
    )


def _joined(captured: dict, layers, heads) -> tuple[torch.Tensor, torch.Tensor]:
    """Every layer's (head index, query, key) rows as (layer, head, query, key) rows."""
    head_ids = torch.tensor(heads, dtype=torch.long)
    parts, weights = [], []
    for layer in layers:
        rows, values = captured[layer]
        layer_column = torch.full((len(rows), 1), layer, dtype=torch.long)
        parts.append(torch.cat([layer_column, head_ids[rows[:, :1]], rows[:, 1:]], dim=1))
        weights.append(values)
    return torch.cat(parts), torch.cat(weights)
