"""What the embeddings panel is given: a token's vector and neighbours, the position encoding
(rotary frequencies or learned positions) and a map of the text (frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass

ROTARY_FORMULA = (
    "θ_i = base^(−2i/d) for i = 0…d/2−1 (d = rotary_dim); angle(p, i) = p·θ_i radians; "
    "query/key dimensions i and i + d/2 of every head are rotated together by angle(p, i)"
)


@dataclass(frozen=True)
class Neighbour:
    """A vocabulary entry close to another one; cosine in [-1, 1]."""

    id: int
    text: str
    cosine: float

    def to_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "cosine": self.cosine}


@dataclass(frozen=True)
class TokenEmbedding:
    """One token's row of the input embedding matrix.

    vector: the row's hidden_size components as stored (before `scale`).
    norm: its L2 norm. scale: what the model multiplies the row by before the first layer
      (Gemma: sqrt(hidden_size); 1.0 for most models), so the first layer sees norm × scale.
    neighbours: the nearest other vocabulary entries by cosine similarity, closest first.
    """

    id: int
    text: str
    special: bool
    vector: tuple[float, ...]
    norm: float
    scale: float
    neighbours: tuple[Neighbour, ...]

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "text": self.text,
            "special": self.special,
            "hidden_size": len(self.vector),
            "vector": list(self.vector),
            "norm": self.norm,
            "scale": self.scale,
            "scaled_norm": self.norm * self.scale,
            "neighbours": [neighbour.to_dict() for neighbour in self.neighbours],
        }


@dataclass(frozen=True)
class RotaryFrequencies:
    """One set of rotary frequencies and the layers that use it.

    source: the module buffer they were read from ("model.rotary_emb.inv_freq").
    layer_type: the config's layer type they belong to ("sliding_attention"), or None when
      every layer shares them. base: rope_theta from the config.
    inv_freq[i]: θ_i, radians per position of dimension pair i (rotary_dim / 2 values).
    wavelengths[i]: 2π/θ_i, positions per full turn.
    angles[p][i]: p·θ_i mod 2π, for positions p = 0..n_positions-1, rounded to 4 decimals.
    """

    source: str
    layer_type: str | None
    base: float | None
    rope_type: str
    attention_scaling: float
    head_dim: int
    layers: tuple[int, ...]
    inv_freq: tuple[float, ...]
    wavelengths: tuple[float, ...]
    angles: tuple[tuple[float, ...], ...]

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "layer_type": self.layer_type,
            "base": self.base,
            "rope_type": self.rope_type,
            "attention_scaling": self.attention_scaling,
            "head_dim": self.head_dim,
            "rotary_dim": 2 * len(self.inv_freq),
            "layers": list(self.layers),
            "inv_freq": list(self.inv_freq),
            "wavelengths": list(self.wavelengths),
            "angles": [list(row) for row in self.angles],
        }


@dataclass(frozen=True)
class LearnedPositions:
    """A learned absolute position table (GPT-2's wpe), added to the token embeddings.

    norms[p]: L2 norm of position p's vector, for every position the model has.
    vectors[p]: the vector of position p for p < n_positions, rounded to 4 decimals.
    """

    source: str
    norms: tuple[float, ...]
    vectors: tuple[tuple[float, ...], ...]

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "max_positions": len(self.norms),
            "hidden_size": len(self.vectors[0]) if self.vectors else 0,
            "norms": list(self.norms),
            "vectors": [list(row) for row in self.vectors],
        }


@dataclass(frozen=True)
class PositionInfo:
    """How the model encodes positions: kind is "rotary", "learned" or "none"."""

    kind: str
    n_positions: int
    rotary: tuple[RotaryFrequencies, ...] = ()
    learned: LearnedPositions | None = None

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "n_positions": self.n_positions,
            "formula": ROTARY_FORMULA if self.kind == "rotary" else None,
            "angle_unit": "radians, mod 2π" if self.kind == "rotary" else None,
            "rotary": [frequencies.to_dict() for frequencies in self.rotary],
            "learned": self.learned.to_dict() if self.learned else None,
        }


@dataclass(frozen=True)
class MapPoint:
    """A token of the prompt on the 2-D map (position: its index in the sequence)."""

    position: int
    id: int
    text: str
    x: float
    y: float

    def to_dict(self) -> dict:
        return {
            "position": self.position,
            "id": self.id,
            "text": self.text,
            "x": self.x,
            "y": self.y,
        }


@dataclass(frozen=True)
class PromptMap:
    """The prompt's input embeddings projected on their first two principal components
    (fitted on the distinct tokens, so a repeated token does not pull the axes).

    explained_variance[k]: the share of the distinct rows' variance along axis k.
    """

    points: tuple[MapPoint, ...]
    explained_variance: tuple[float, float]
    n_distinct: int

    def to_dict(self) -> dict:
        return {
            "points": [point.to_dict() for point in self.points],
            "explained_variance": list(self.explained_variance),
            "n_distinct": self.n_distinct,
            "method": "PCA of the raw embedding rows (before the scale)",
        }
