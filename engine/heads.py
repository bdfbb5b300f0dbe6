"""Head clustering: five numbers per attention head over a text, mapped to 2-D and grouped.

Every head of every layer is described by how it spreads its attention over the text (see
FEATURE_NAMES). Each layer's features are computed inside that layer's forward hook, so only
one layer's (heads, n, n) maps exist at a time: SmolLM2's 270 maps at 1024 tokens would be
over 1 GB. The features are standardized, laid out in 2-D with UMAP and grouped with k-means
on that layout; each group is named after what its mean features show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.attention import MAX_TOKENS, capture_attention, kv_heads
from engine.limits import MAX_CLUSTERS, MAX_SEED
from engine.loading import LoadedModel
from engine.tokenization import read_model_sequence
from engine.types import InputError

FEATURE_NAMES = ("entropy", "distance", "previous", "sink", "self")
MIN_HEADS = 4  # UMAP's spectral layout needs at least 4 points
UMAP_NEIGHBORS = 15
UMAP_MIN_DIST = 0.1


@dataclass(frozen=True)
class HeadFeatures:
    """Features of every head of every layer over one sequence of `tokens` tokens.

    values[layer * n_heads + head] holds one value per FEATURE_NAMES entry, all averaged over
    the query rows 1..n-1 (row 0 can only attend to itself):
      entropy: the row's entropy in bits divided by log2(row length), so 0 is one key and 1
        is even attention over every earlier token, whatever the row's length (a
        sliding-window layer's rows longer than its window cannot reach 1);
      distance: how many tokens back the attention reaches on average, Σ_j a_ij·(i−j);
      previous: a_{i,i−1}; sink: a_{i,0} (the first token); self: a_{i,i}.
    kv_head_of[head]: the key/value head a query head reads (grouped-query attention).
    """

    tokens: int
    n_layers: int
    n_heads: int
    kv_head_of: tuple[int, ...]
    values: tuple[tuple[float, ...], ...]

    def matrix(self) -> np.ndarray:
        """(layers * heads, features) float64."""
        return np.array(self.values, dtype=np.float64)

    def head_rows(self) -> list[dict]:
        return [
            {
                "layer": index // self.n_heads,
                "head": index % self.n_heads,
                "kv_head": self.kv_head_of[index % self.n_heads],
                "features": dict(zip(FEATURE_NAMES, row, strict=True)),
            }
            for index, row in enumerate(self.values)
        ]

    def to_dict(self) -> dict:
        return {
            "tokens": self.tokens,
            "feature_names": list(FEATURE_NAMES),
            "heads": self.head_rows(),
        }


@dataclass(frozen=True)
class HeadCluster:
    """One group of heads: its unique label, what such heads do, and its mean features."""

    id: int
    label: str
    description: str
    size: int
    mean_features: dict[str, float]

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "label": self.label,
            "description": self.description,
            "size": self.size,
            "mean_features": dict(self.mean_features),
        }


@dataclass(frozen=True)
class HeadClusters:
    """The heads of `features` laid out in 2-D (xy, one (x, y) per head in the same order as
    features.values) and grouped into k clusters (cluster[i] is head i's cluster id; ids are
    ordered by cluster size, largest first)."""

    features: HeadFeatures
    xy: tuple[tuple[float, float], ...]
    cluster: tuple[int, ...]
    clusters: tuple[HeadCluster, ...]
    k: int
    n_neighbors: int
    min_dist: float

    def to_dict(self) -> dict:
        heads = self.features.head_rows()
        for row, (x, y), cluster in zip(heads, self.xy, self.cluster, strict=True):
            row.update(x=x, y=y, cluster=cluster)
        return {
            "tokens": self.features.tokens,
            "feature_names": list(FEATURE_NAMES),
            "heads": heads,
            "clusters": [cluster.to_dict() for cluster in self.clusters],
            "k": self.k,
            "umap": {"n_neighbors": self.n_neighbors, "min_dist": self.min_dist},
        }


def layer_features(maps: torch.Tensor) -> torch.Tensor:
    """(heads, n, n) attention of one layer (n ≥ 2) → (heads, len(FEATURE_NAMES)) float32,
    on the maps' device. Row i's length is i + 1 keys."""
    maps = maps.float()
    _heads, n, _ = maps.shape
    rows = maps[:, 1:, :]  # (heads, n-1, n): the query rows that have a choice
    positions = torch.arange(n, dtype=torch.float32, device=maps.device)
    query = positions[1:]  # (n-1,)
    entropy_nats = -torch.special.xlogy(rows, rows).sum(-1)  # (heads, n-1)
    entropy = entropy_nats / torch.log(query + 1)  # bits / log2(row length): nats cancel
    distance = query * rows.sum(-1) - rows @ positions  # Σ_j a_ij (i - j), (heads, n-1)
    previous = maps.diagonal(offset=-1, dim1=1, dim2=2)  # a_{i,i-1}, (heads, n-1)
    sink = rows[..., 0]
    itself = maps.diagonal(dim1=1, dim2=2)[:, 1:]
    per_row = (entropy, distance, previous, sink, itself)  # same order as FEATURE_NAMES
    return torch.stack([feature.mean(-1) for feature in per_row], dim=-1)


def sequence_ids(loaded: LoadedModel, text: str, **sequence_options) -> list[int]:
    """The ids of text (+ chat template, + completion_ids) that fit the attention limit."""
    tokenization = read_model_sequence(loaded, text, **sequence_options)
    ids = [token.id for token in tokenization.tokens]
    if len(ids) > MAX_TOKENS:
        raise InputError(
            f"The text is {len(ids):,} tokens long; heads are compared over at most "
            f"{MAX_TOKENS:,} tokens",
            field="text",
        )
    if len(ids) < 2:
        raise InputError(
            "Heads are compared by how they attend to earlier tokens: type a text of at "
            "least 2 tokens",
            field="text",
        )
    return ids


def head_features(loaded: LoadedModel, text: str, **sequence_options) -> HeadFeatures:
    """Features (HeadFeatures) of every head of `loaded` over `text` followed by any
    generated tokens; sequence_options: system_prompt, use_chat_template, completion_ids."""
    ids = sequence_ids(loaded, text, **sequence_options)
    info = loaded.info
    layers = tuple(range(info.n_layers))
    per_layer = capture_attention(
        loaded, ids, layers, reduce=lambda maps: layer_features(maps).cpu()
    )
    values = torch.cat([per_layer[layer] for layer in layers])  # (layers * heads, features)
    return HeadFeatures(
        tokens=len(ids),
        n_layers=info.n_layers,
        n_heads=info.n_heads,
        kv_head_of=kv_heads(info.n_heads, info.n_kv_heads),
        values=tuple(tuple(float(value) for value in row) for row in values.tolist()),
    )


def check_k(k, n_heads: int) -> int:
    """k must be 1..MAX_CLUSTERS and leave at least one head more than clusters."""
    if n_heads < MIN_HEADS:
        raise InputError(f"This model has only {n_heads} heads: too few to map", field="model")
    highest = min(MAX_CLUSTERS, n_heads - 1)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= highest:
        raise InputError(f"k must be a whole number from 1 to {highest}; got {k!r}", field="k")
    return k


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InputError(f"seed must be a whole number from 0 to {MAX_SEED}", field="seed")
    return seed


def prepare_head_maps() -> None:
    """Import UMAP now (~2 s, and numba's cached machine code with it) instead of in the first
    head map's request."""
    import umap  # noqa: F401


def cluster_heads(features: HeadFeatures, k: int = 4, seed: int = 0) -> HeadClusters:
    """Lay the heads out in 2-D (UMAP over standardized features, random_state=seed, so the
    same seed gives the same map) and group them with k-means on that layout.

    umap is imported here, not at module import: the import takes ~2 s, and the first fit in
    a process ~10 s more unless numba's cache holds UMAP's machine code (engine.jit_cache).
    """
    import umap
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    matrix = features.matrix()  # (heads, features)
    count = len(matrix)
    k, seed = check_k(k, count), check_seed(seed)
    n_neighbors = min(UMAP_NEIGHBORS, count - 1)
    standardized = StandardScaler().fit_transform(matrix)
    reducer = umap.UMAP(
        n_neighbors=n_neighbors, min_dist=UMAP_MIN_DIST, random_state=seed, n_jobs=1
    )
    xy = reducer.fit_transform(standardized)  # (heads, 2)
    found = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(xy)
    cluster = _ids_by_size(found)
    return HeadClusters(
        features=features,
        xy=tuple((float(x), float(y)) for x, y in xy),
        cluster=tuple(int(c) for c in cluster),
        clusters=describe_clusters(matrix, cluster, features.tokens),
        k=k,
        n_neighbors=n_neighbors,
        min_dist=UMAP_MIN_DIST,
    )


def _ids_by_size(found: np.ndarray) -> np.ndarray:
    """Renumber k-means' arbitrary ids: 0 is the largest cluster (ties: the earliest head)."""
    order = sorted(set(found.tolist()), key=lambda c: (-np.sum(found == c), np.argmax(found == c)))
    renumber = {old: new for new, old in enumerate(order)}
    return np.array([renumber[c] for c in found.tolist()])


# --- Naming clusters ------------------------------------------------------------------------
#
# A cluster's strength in a trait is its mean feature over the trait's threshold (for
# "local", the threshold over its mean distance): 1 or more means it clearly has the trait.
# Attending to one particular token (previous, sink, self) is more specific than a shape
# (local, broad), so those are tried first; a cluster with no trait ≥ 1 is "mixed".

PREVIOUS_MIN = 0.25  # a quarter of every row on the previous token (even attention: ~1/i)
SINK_MIN = 0.5  # half of every row on the first token
SELF_MIN = 0.25
BROAD_MIN = 0.6  # normalized entropy: 1 is even attention over all earlier tokens
LOCAL_SHARE = 0.25  # mean distance ≤ a quarter of even attention's (n/4), at least 2 tokens
TIERS = (("previous", "sink", "self"), ("local", "broad"))

KINDS = {
    "previous": (
        "previous-token heads",
        "They attend mostly to the token just before the current one, passing each word's "
        "predecessor along (a building block of copying patterns such as induction).",
    ),
    "sink": (
        "first-token sink heads",
        "They park most of their attention on the first token, a resting place that lets a "
        "head do almost nothing when nothing in the text concerns it.",
    ),
    "self": (
        "self heads",
        "They attend mostly to the current token itself, keeping its own information rather "
        "than gathering context.",
    ),
    "local": (
        "local heads",
        "They read the last few tokens, the nearby words and phrase around the current one.",
    ),
    "broad": (
        "broad heads",
        "They spread their attention over much of the earlier text, gathering context from "
        "far back.",
    ),
    "mixed": (
        "mixed heads",
        "They show no single strong pattern over this text: where they look depends on "
        "what the tokens say.",
    ),
}

RANK_WORDS = {
    2: ("strong", "mild"),
    3: ("strong", "moderate", "mild"),
    4: ("very strong", "strong", "moderate", "mild"),
    5: ("very strong", "strong", "moderate", "mild", "weak"),
    6: ("strongest", "very strong", "strong", "moderate", "mild", "weak"),
    7: ("strongest", "very strong", "strong", "moderate", "mild", "weak", "very weak"),
    8: ("strongest", "very strong", "strong", "moderate", "mild", "weak", "very weak", "faint"),
}


def trait_strengths(mean: dict[str, float], tokens: int) -> dict[str, float]:
    """How clearly mean features show each trait (≥ 1: clearly)."""
    local_max = max(2.0, LOCAL_SHARE * tokens / 4)
    return {
        "previous": mean["previous"] / PREVIOUS_MIN,
        "sink": mean["sink"] / SINK_MIN,
        "self": mean["self"] / SELF_MIN,
        "local": local_max / max(mean["distance"], 1e-6),
        "broad": mean["entropy"] / BROAD_MIN,
    }


def kind_of(strengths: dict[str, float]) -> str:
    for tier in TIERS:
        best = max(tier, key=strengths.__getitem__)
        if strengths[best] >= 1:
            return best
    return "mixed"


def cluster_labels(means: list[dict[str, float]], tokens: int) -> list[tuple[str, str]]:
    """(label, description) for each cluster's mean features; labels are unique.

    Clusters of the same kind are told apart by how strong their trait is ("first-token sink
    heads (strong)", "... (mild)"); mixed ones by the trait they lean to, then by strength."""
    strengths = [trait_strengths(mean, tokens) for mean in means]
    kinds = [kind_of(strength) for strength in strengths]
    qualifiers: list[list[str]] = [[] for _ in means]
    scores = []
    for index, (kind, strength) in enumerate(zip(kinds, strengths, strict=True)):
        leaning = max(strength, key=strength.__getitem__)
        if kind == "mixed":
            qualifiers[index].append(f"leaning {KINDS[leaning][0].removesuffix(' heads')}")
        scores.append(strength[leaning if kind == "mixed" else kind])
    _rank_duplicates(kinds, qualifiers, scores)
    labels = []
    for kind, words in zip(kinds, qualifiers, strict=True):
        name, description = KINDS[kind]
        labels.append((f"{name} ({', '.join(words)})" if words else name, description))
    return labels


def _rank_duplicates(kinds, qualifiers, scores) -> None:
    """Append a strength word ("strong", "mild", ...) to clusters whose labels would clash."""
    groups: dict[tuple, list[int]] = {}
    for index, kind in enumerate(kinds):
        groups.setdefault((kind, *qualifiers[index]), []).append(index)
    for members in groups.values():
        if len(members) < 2:
            continue
        ranked = sorted(members, key=lambda index: -scores[index])
        for index, word in zip(ranked, RANK_WORDS[len(ranked)], strict=True):
            qualifiers[index].append(word)


def describe_clusters(matrix: np.ndarray, cluster: np.ndarray, tokens: int):
    """HeadCluster for each cluster id 0..k-1 (matrix: (heads, features), cluster: (heads,))."""
    ids = range(int(cluster.max()) + 1)
    means = [
        dict(zip(FEATURE_NAMES, matrix[cluster == c].mean(0).tolist(), strict=True)) for c in ids
    ]
    labels = cluster_labels(means, tokens)
    return tuple(
        HeadCluster(c, label, description, int(np.sum(cluster == c)), mean)
        for c, (label, description), mean in zip(ids, labels, means, strict=True)
    )
