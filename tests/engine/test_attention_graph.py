"""The attention graph's edges: exactly the strongest links of the model's own attention maps
(top-k per query row, or every weight above a threshold), of which the strongest max_edges
are kept and all are counted, and refusals that name the field."""

import re

import pytest
import torch

from engine.attention import LayerInputCache
from engine.attention_graph import LinkRule, attention_graph, layer_edges, strongest
from engine.distribution import prompt_ids
from engine.limits import DEFAULT_GRAPH_MAX_EDGES, MAX_GRAPH_EDGES
from engine.types import InputError

TEXT = "The quick brown fox jumps over the lazy dog because it was late for dinner."


def reference_maps(loaded, text=TEXT) -> tuple[torch.Tensor, ...]:
    """Every layer's (heads, n, n) maps from transformers' own output_attentions."""
    ids = torch.tensor([prompt_ids(loaded, text, None, False)])
    loaded.model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            attentions = loaded.model(ids, output_attentions=True).attentions
    finally:
        loaded.model.set_attn_implementation("sdpa")
    return tuple(layer[0].float() for layer in attentions)


def edges_by_row(graph) -> dict[tuple, list[tuple[int, float]]]:
    rows: dict[tuple, list] = {}
    for (layer, head, query, key), weight in zip(
        graph.edges.tolist(), graph.weights.tolist(), strict=True
    ):
        rows.setdefault((layer, head, query), []).append((key, weight))
    return rows


@pytest.mark.parametrize("k", [1, 3, 8])
def test_top_k_edges_are_the_top_k_of_the_real_maps(any_packaged_model, k):
    loaded = any_packaged_model
    reference = reference_maps(loaded)
    heads = [0, loaded.info.n_heads - 1]
    graph = attention_graph(
        loaded, TEXT, first_layer=1, last_layer=3, heads=heads, links=LinkRule("top_k", k=k)
    )
    n = len(graph.tokens)
    rows = edges_by_row(graph)
    assert graph.layers == (1, 2, 3)
    assert set(rows) == {(i, h, q) for i in (1, 2, 3) for h in heads for q in range(n)}
    for (layer, head, query), found in rows.items():
        row = reference[layer][head, query, : query + 1]
        expected = row.topk(min(k, query + 1)).values
        weights = torch.tensor([weight for _key, weight in found])
        assert torch.allclose(weights, expected, atol=1e-4), (layer, head, query)
        keys = [key for key, _weight in found]
        assert len(set(keys)) == len(keys) and max(keys) <= query
        assert torch.allclose(row[keys], weights, atol=1e-4)  # each edge's own weight
    assert len(graph.edges) == 3 * len(heads) * sum(min(k, q + 1) for q in range(n))


def test_threshold_edges_are_every_weight_above_it(smollm2):
    reference = reference_maps(smollm2)
    graph = attention_graph(
        smollm2,
        TEXT,
        first_layer=0,
        last_layer=29,
        links=LinkRule("threshold", threshold=0.2),
        max_edges=MAX_GRAPH_EDGES,
    )
    assert graph.n_matching == len(graph.edges) > DEFAULT_GRAPH_MAX_EDGES
    found = {tuple(edge) for edge in graph.edges.tolist()}
    for layer, maps in enumerate(reference):
        strong = torch.nonzero(maps.tril() >= 0.2 + 1e-4).tolist()
        weak = torch.nonzero(maps.tril() < 0.2 - 1e-4).tolist()
        assert {(layer, *edge) for edge in strong} <= found
        assert not {(layer, *edge) for edge in weak} & found
    assert (graph.weights >= 0.2 - 1e-4).all()


def test_skipping_the_first_token_ranks_the_others(smollm2):
    reference = reference_maps(smollm2)
    links = LinkRule("top_k", k=2, skip_first=True)
    graph = attention_graph(smollm2, TEXT, first_layer=5, last_layer=5, links=links)
    assert 0 not in graph.edges[:, 3].tolist()
    for (layer, head, query), found in edges_by_row(graph).items():
        assert query > 0  # the first token has nothing else to look at
        expected = reference[layer][head, query, 1 : query + 1].topk(min(2, query)).values
        assert torch.allclose(torch.tensor([w for _k, w in found]), expected, atol=1e-4)


def test_kept_layer_inputs_give_the_same_edges(smollm2):
    cache = LayerInputCache()
    first = attention_graph(smollm2, TEXT, first_layer=2, last_layer=4, reuse=(cache, "me"))
    assert cache.nbytes > 0
    again = attention_graph(smollm2, TEXT, first_layer=2, last_layer=4, reuse=(cache, "me"))
    fresh = attention_graph(smollm2, TEXT, first_layer=2, last_layer=4)
    assert torch.equal(first.edges, again.edges) and torch.equal(first.edges, fresh.edges)
    assert torch.allclose(again.weights, fresh.weights, atol=1e-5)


def test_the_default_is_every_layer_top_3_and_to_dict_sends_columns(smollm2):
    graph = attention_graph(smollm2, TEXT, heads=[4])
    sent = graph.to_dict()
    assert sent["layers"] == list(range(30)) and sent["rule"] == "top_k" and sent["k"] == 3
    assert sent["n_edges"] == len(sent["edges"]["weight"]) == len(graph.edges)
    assert sent["n_matching"] == sent["n_edges"] and sent["max_edges"] == DEFAULT_GRAPH_MAX_EDGES
    assert set(sent["edges"]["head"]) == {4} and set(sent["edges"]["layer"]) == set(range(30))
    assert sent["kv_head_of"] == [1]


def test_layer_edges_orders_each_row_strongest_first():
    maps = torch.tensor([[[1.0, 0, 0], [0.3, 0.7, 0], [0.5, 0.1, 0.4]]])
    rows, weights = layer_edges(maps, LinkRule("threshold", threshold=0.2))
    assert rows.tolist() == [[0, 0, 0], [0, 1, 1], [0, 1, 0], [0, 2, 0], [0, 2, 2]]
    assert weights.tolist() == pytest.approx([1.0, 0.7, 0.3, 0.5, 0.4])
    rows, _weights = layer_edges(maps, LinkRule("top_k", k=2))
    assert rows.tolist() == [[0, 0, 0], [0, 1, 1], [0, 1, 0], [0, 2, 0], [0, 2, 2]]


@pytest.mark.parametrize(
    "links", [LinkRule("top_k", k=2), LinkRule("threshold", threshold=0.05, skip_first=True)]
)
def test_max_edges_keeps_the_strongest_links_in_order_and_counts_them_all(smollm2, links):
    every = attention_graph(smollm2, TEXT, first_layer=3, last_layer=8, links=links)
    kept = attention_graph(smollm2, TEXT, first_layer=3, last_layer=8, links=links, max_edges=250)
    assert every.n_matching == len(every.edges) > 250
    assert kept.n_matching == every.n_matching and len(kept.edges) == 250
    assert kept.to_dict()["n_matching"] == every.n_matching
    assert kept.to_dict()["n_edges"] == 250 and kept.to_dict()["max_edges"] == 250
    rows = [tuple(edge) for edge in every.edges.tolist()]
    positions = [rows.index(tuple(edge)) for edge in kept.edges.tolist()]
    assert positions == sorted(positions)  # still by layer, head, query, strongest first
    assert torch.equal(kept.weights, every.weights[positions])
    dropped = torch.ones(len(rows), dtype=torch.bool)
    dropped[positions] = False
    assert kept.weights.min() >= every.weights[dropped].max()  # the strongest 250


def test_strongest_keeps_the_largest_in_their_order_and_the_earlier_of_a_tie():
    weights = torch.tensor([0.1, 0.5, 0.3, 0.5, 0.9, 0.3])
    assert strongest(weights, 3).tolist() == [1, 3, 4]
    assert strongest(weights, 4).tolist() == [1, 2, 3, 4]
    assert strongest(weights, 10).tolist() == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"first_layer": 30}, "first_layer", "this model has 30 layers (0–29)"),
        ({"first_layer": 0, "last_layer": 30}, "last_layer", "this model has 30 layers"),
        ({"first_layer": 5, "last_layer": 2}, "last_layer", "may not come after the last"),
        ({"heads": [9]}, "heads", "9 heads (0–8)"),
        ({"heads": []}, "heads", "at least one"),
        ({"max_edges": 0}, "max_edges", "max_edges is 1–100,000 links, not 0"),
        ({"max_edges": MAX_GRAPH_EDGES + 1}, "max_edges", "not 100001"),
        ({"max_edges": True}, "max_edges", "not True"),
    ],
)
def test_bad_requests_name_the_field(smollm2, kwargs, field, fragment):
    with pytest.raises(InputError, match=re.escape(fragment)) as caught:
        attention_graph(smollm2, TEXT, **kwargs)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"k": 0}, "k"),
        ({"k": 9}, "k"),
        ({"threshold": 0.001}, "threshold"),
        ({"rule": "x"}, "rule"),
    ],
)
def test_a_link_rule_out_of_range_names_its_field(kwargs, field):
    with pytest.raises(InputError) as caught:
        LinkRule(**kwargs)
    assert caught.value.field == field
