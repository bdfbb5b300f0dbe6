"""Head clustering: the features are what transformers' own attentions give, each pattern gets
the feature values it should, every head lands in one cluster, and labels are unique."""

import math
import re

import numpy as np
import pytest
import torch

from engine.attention import capture_attention
from engine.heads import (
    FEATURE_NAMES,
    cluster_heads,
    cluster_labels,
    head_features,
    layer_features,
    sequence_ids,
)
from engine.types import InputError

TEXT = (
    "The lighthouse keeper climbed the narrow stairs every evening at dusk. He lit the lamp, "
    "wrote the weather in his logbook, and watched the ships pass the rocky point. One stormy "
    "night a small boat lost its mast, and he rowed out through the waves to bring the sailors "
    "home safely."
)
MODELS = ["smollm2", "gemma"]


_features = {}


def _features_of(loaded):
    """head_features over TEXT, one forward pass per model for the whole module."""
    if loaded.spec.key not in _features:
        _features[loaded.spec.key] = head_features(loaded, TEXT)
    return _features[loaded.spec.key]


@pytest.fixture(scope="module", params=MODELS)
def computed(request):
    """(loaded, features, clusters at k=4 seed=0) per model; UMAP compiles once per process."""
    loaded = request.getfixturevalue(request.param)
    features = _features_of(loaded)
    return loaded, features, cluster_heads(features, k=4, seed=0)


def _brute_force(attention: np.ndarray) -> dict[str, float]:
    """The features of one (n, n) map, row by row, straight from their definitions."""
    rows = {name: [] for name in FEATURE_NAMES}
    for i in range(1, len(attention)):
        row = attention[i, : i + 1]
        kept = row[row > 0]
        rows["entropy"].append(-(kept * np.log2(kept)).sum() / math.log2(i + 1))
        rows["distance"].append(sum(row[j] * (i - j) for j in range(i + 1)))
        rows["previous"].append(attention[i, i - 1])
        rows["sink"].append(attention[i, 0])
        rows["self"].append(attention[i, i])
    return {name: float(np.mean(values)) for name, values in rows.items()}


@pytest.mark.model
def test_features_match_a_brute_force_reading_of_output_attentions(computed):
    loaded, features, _clusters = computed
    ids = torch.tensor([sequence_ids(loaded, TEXT)])
    loaded.model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            attentions = loaded.model(ids, output_attentions=True).attentions
    finally:
        loaded.model.set_attn_implementation("sdpa")
    info = loaded.info
    for layer, head in [(1, 0), (info.n_layers // 2, 1), (info.n_layers - 1, info.n_heads - 1)]:
        expected = _brute_force(attentions[layer][0, head].double().numpy())
        ours = features.head_rows()[layer * info.n_heads + head]["features"]
        assert ours == pytest.approx(expected, rel=1e-4, abs=1e-4), (layer, head)


def _pattern(name: str, n: int) -> torch.Tensor:
    """An (n, n) causal attention map whose rows all do one thing."""
    maps = torch.zeros(n, n)
    if name == "previous":
        maps[0, 0] = 1  # the first token can only attend to itself
        maps[torch.arange(1, n), torch.arange(n - 1)] = 1
    elif name == "sink":
        maps[:, 0] = 1
    elif name == "self":
        maps = torch.eye(n)
    else:  # even attention over every earlier token
        maps = torch.ones(n, n).tril()
        maps /= maps.sum(-1, keepdim=True)
    return maps


def test_hand_built_patterns_get_the_features_they_should():
    n = 6
    even = sum(1 / (i + 1) for i in range(1, n)) / (n - 1)  # a_ii of even attention
    expected = {  # entropy, distance, previous, sink, self
        "previous": [0, 1, 1, 1 / (n - 1), 0],
        "sink": [0, (n / 2), 1 / (n - 1), 1, 0],
        "self": [0, 0, 0, 0, 1],
        "uniform": [1, n / 4, even, even, even],
    }
    maps = torch.stack([_pattern(name, n) for name in expected])  # (4 "heads", n, n)
    assert torch.allclose(maps.sum(-1), torch.ones(4, n))
    got = layer_features(maps)
    assert got.tolist() == [pytest.approx(values, abs=1e-6) for values in expected.values()]


@pytest.mark.model
def test_capture_attention_hands_each_layer_to_reduce_in_the_hook(smollm2):
    ids = sequence_ids(smollm2, "Hello there, world")
    shapes = capture_attention(smollm2, ids, (0, 29), reduce=lambda maps: tuple(maps.shape))
    assert shapes == {0: (9, len(ids), len(ids)), 29: (9, len(ids), len(ids))}


@pytest.mark.model
def test_every_head_is_in_exactly_one_cluster(computed):
    loaded, features, clusters = computed
    body = clusters.to_dict()
    info = loaded.info
    pairs = [(head["layer"], head["head"]) for head in body["heads"]]
    assert pairs == [(layer, h) for layer in range(info.n_layers) for h in range(info.n_heads)]
    assert {head["cluster"] for head in body["heads"]} == set(range(body["k"]))
    sizes = [cluster["size"] for cluster in body["clusters"]]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == len(pairs)
    assert all(math.isfinite(head["x"]) and math.isfinite(head["y"]) for head in body["heads"])
    assert body["umap"] == {"n_neighbors": 15, "min_dist": 0.1}
    assert body["tokens"] == features.tokens and body["feature_names"] == list(FEATURE_NAMES)


@pytest.mark.model
def test_kv_heads_follow_grouped_query_attention(computed):
    loaded, _features, clusters = computed
    info = loaded.info
    group = info.n_heads // info.n_kv_heads
    assert all(row["kv_head"] == row["head"] // group for row in clusters.to_dict()["heads"])


@pytest.mark.model
def test_the_same_seed_draws_the_same_map(computed):
    _loaded, features, clusters = computed
    again = cluster_heads(features, k=4, seed=0)
    assert again.xy == clusters.xy and again.cluster == clusters.cluster


@pytest.mark.model
@pytest.mark.parametrize("k", [1, 2, 5, 8])
def test_labels_are_unique_and_described_for_any_k(computed, k):
    _loaded, features, _clusters = computed
    clusters = cluster_heads(features, k=k, seed=0).clusters
    labels = [cluster.label for cluster in clusters]
    assert len(labels) == k and len(set(labels)) == k
    assert all(cluster.description.endswith(".") for cluster in clusters)


@pytest.mark.model
def test_later_smollm2_layers_park_attention_on_the_first_token(smollm2):
    """A known property of trained transformers ("attention sinks"), checked on this text:
    in the last third of SmolLM2's layers most heads put over half of each row on token 0."""
    features = _features_of(smollm2)
    sink = np.array([row[3] for row in features.values]).reshape(30, 9)  # (layers, heads)
    early, late = sink[:10], sink[20:]
    even = np.mean([1 / (i + 1) for i in range(1, features.tokens)])  # even attention's a_i0
    assert (late > 0.5).mean() > 0.5
    assert np.median(late) > np.median(early) + 0.1
    assert np.median(late) > 5 * even


def _mean(entropy=0.5, distance=15.0, previous=0.1, sink=0.1, self_=0.1):
    return dict(zip(FEATURE_NAMES, (entropy, distance, previous, sink, self_), strict=True))


def test_labels_come_from_mean_features():
    means = [
        _mean(entropy=0.2, distance=1.1, previous=0.9),
        _mean(entropy=0.1, distance=30, sink=0.9),
        _mean(entropy=0.4, distance=25, sink=0.55),
        _mean(distance=0.3, self_=0.8),
        _mean(distance=2.5, previous=0.2, self_=0.2),
        _mean(entropy=0.9),
        _mean(sink=0.3),
    ]
    labels = [label for label, _description in cluster_labels(means, tokens=60)]
    assert labels == [
        "previous-token heads",
        "first-token sink heads (strong)",
        "first-token sink heads (mild)",
        "self heads",
        "local heads",
        "broad heads",
        "mixed heads (leaning broad)",
    ]


def test_mixed_clusters_leaning_the_same_way_are_ranked():
    labels = [label for label, _ in cluster_labels([_mean(), _mean(entropy=0.4)], tokens=60)]
    assert labels == ["mixed heads (leaning broad, strong)", "mixed heads (leaning broad, mild)"]


@pytest.mark.model
@pytest.mark.parametrize(
    ("text", "kwargs", "field", "fragment"),
    [
        ("Hello", {}, "text", "at least 2 tokens"),
        ("word " * 2100, {}, "text", "at most 2,048 tokens"),
        (TEXT, {"completion_ids": (10**9,)}, "completion_ids", "outside"),
    ],
)
def test_bad_sequences_name_the_field(smollm2, text, kwargs, field, fragment):
    with pytest.raises(InputError, match=re.escape(fragment)) as caught:
        head_features(smollm2, text, **kwargs)
    assert caught.value.field == field


@pytest.mark.model
@pytest.mark.parametrize(
    ("k", "seed", "field"), [(0, 0, "k"), (9, 0, "k"), (True, 0, "k"), (4, -1, "seed")]
)
def test_bad_clustering_parameters_name_the_field(computed, k, seed, field):
    with pytest.raises(InputError) as caught:
        cluster_heads(computed[1], k=k, seed=seed)
    assert caught.value.field == field
