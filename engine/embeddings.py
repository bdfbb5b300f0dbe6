"""What a model starts from: a token's row of the input embedding matrix, its nearest neighbours
in the vocabulary, how the model encodes positions, and a 2-D map of a prompt's embeddings.

Everything is read from the loaded model itself (its embedding module, its rotary buffers, its
config), never from a table per architecture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from engine.embedding_results import (  # split out of this module
    LearnedPositions,
    MapPoint,
    Neighbour,
    PositionInfo,
    PromptMap,
    RotaryFrequencies,
    TokenEmbedding,
)
from engine.limits import MAX_POSITIONS
from engine.loading import LoadedModel
from engine.tokenization import token_text
from engine.types import InputError, Tokenization

MAX_NEIGHBOURS = 100
LEARNED_POSITION_MODULES = ("wpe", "embed_positions", "position_embeddings")


def _embedding_matrix(loaded: LoadedModel) -> torch.Tensor:
    return loaded.model.get_input_embeddings().weight  # (rows, hidden)


def vocabulary_size(loaded: LoadedModel) -> int:
    """Ids that have both a tokenizer entry and an embedding row."""
    return min(len(loaded.tokenizer), _embedding_matrix(loaded).shape[0])


@lru_cache(maxsize=4)
def _row_norms(loaded: LoadedModel) -> torch.Tensor:
    """(vocab,) L2 norm of every embedding row, computed once per loaded model."""
    with torch.inference_mode():
        return _embedding_matrix(loaded)[: vocabulary_size(loaded)].float().norm(dim=-1)


def embed_scale(model) -> float:
    """The factor the model applies to embedding rows before the first layer."""
    for owner in (model.get_input_embeddings(), model.get_decoder(), model):
        scale = getattr(owner, "embed_scale", None)
        if scale is not None:
            return float(scale)
    return 1.0


def check_token_id(loaded: LoadedModel, token_id, field: str = "token_id") -> int:
    size = vocabulary_size(loaded)
    if isinstance(token_id, bool) or not isinstance(token_id, int) or not 0 <= token_id < size:
        raise InputError(
            f"Token id {token_id!r} is outside this model's vocabulary (0–{size - 1})", field=field
        )
    return token_id


@torch.inference_mode()
def nearest_tokens(loaded: LoadedModel, token_id: int, count: int) -> tuple[Neighbour, ...]:
    """The `count` vocabulary entries with the highest cosine to `token_id`'s row (itself
    excluded): one matrix-vector product over the whole vocabulary."""
    size = vocabulary_size(loaded)
    matrix = _embedding_matrix(loaded)[:size]  # (vocab, hidden)
    row = matrix[token_id].float()
    norms = _row_norms(loaded)
    cosines = (matrix.float() @ row) / (norms * row.norm()).clamp_min(1e-12)  # (vocab,)
    cosines[token_id] = -math.inf
    top = cosines.topk(min(count, size - 1))
    return tuple(
        Neighbour(int(index), token_text(loaded.tokenizer, int(index))[0], float(value))
        for value, index in zip(top.values.cpu(), top.indices.cpu(), strict=True)
    )


@torch.inference_mode()
def embedding_for(loaded: LoadedModel, token_id: int, *, neighbours: int = 10) -> TokenEmbedding:
    """Token `token_id`'s embedding row, its norm, the model's embedding scale and its
    `neighbours` nearest vocabulary entries by cosine."""
    check_token_id(loaded, token_id)
    if isinstance(neighbours, bool) or not isinstance(neighbours, int):
        raise InputError("neighbours must be a whole number", field="neighbours")
    if not 0 <= neighbours <= MAX_NEIGHBOURS:
        raise InputError(f"neighbours must be 0–{MAX_NEIGHBOURS}", field="neighbours")
    row = _embedding_matrix(loaded)[token_id].float().cpu()  # (hidden,)
    text, special, _partial = token_text(loaded.tokenizer, token_id)
    return TokenEmbedding(
        id=token_id,
        text=text,
        special=special,
        vector=tuple(row.tolist()),
        norm=float(row.norm()),
        scale=embed_scale(loaded.model),
        neighbours=nearest_tokens(loaded, token_id, neighbours) if neighbours else (),
    )


def _rotary_buffers(model):
    """(source, layer_type or None, module, inv_freq) of every rotary frequency buffer.

    transformers names them `inv_freq`, or `<layer_type>_inv_freq` when layer types differ
    (Gemma 3: sliding_attention_inv_freq and full_attention_inv_freq in one module).
    """
    for module_name, module in model.named_modules():
        for name, buffer in module.named_buffers(recurse=False):
            if name == "inv_freq":
                yield f"{module_name}.{name}", None, module, buffer
            elif name.endswith("_inv_freq") and not name.endswith("original_inv_freq"):
                yield f"{module_name}.{name}", name.removesuffix("_inv_freq"), module, buffer


def _rope_base(config, layer_type: str | None) -> float | None:
    parameters = getattr(config, "rope_parameters", None) or {}
    if layer_type is not None and isinstance(parameters.get(layer_type), dict):
        parameters = parameters[layer_type]
    base = parameters.get("rope_theta") or getattr(config, "rope_theta", None)
    return float(base) if base is not None else None


def _layers_using(config, layer_type: str | None) -> tuple[int, ...]:
    layer_types = getattr(config, "layer_types", None)
    if layer_type is None or not layer_types:
        return tuple(range(config.num_hidden_layers))
    return tuple(index for index, kind in enumerate(layer_types) if kind == layer_type)


def _per_type(value, layer_type: str | None, default):
    """A rotary module attribute that is a dict per layer type in multi-type modules."""
    if isinstance(value, dict):
        return value.get(layer_type, default)
    return default if value is None else value


def rotary_frequencies(model, n_positions: int) -> tuple[RotaryFrequencies, ...]:
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    found = []
    for source, layer_type, module, inv_freq in _rotary_buffers(model):
        theta = inv_freq.detach().double().cpu()  # (pairs,)
        angles = torch.arange(n_positions, dtype=torch.float64)[:, None] * theta  # (pos, pairs)
        scaling_name = f"{layer_type}_attention_scaling" if layer_type else "attention_scaling"
        found.append(
            RotaryFrequencies(
                source=source,
                layer_type=layer_type,
                base=_rope_base(config, layer_type),
                rope_type=str(_per_type(getattr(module, "rope_type", None), layer_type, "default")),
                attention_scaling=float(getattr(module, scaling_name, 1.0) or 1.0),
                head_dim=int(head_dim),
                layers=_layers_using(config, layer_type),
                inv_freq=tuple(theta.tolist()),
                wavelengths=tuple((2 * math.pi / theta).tolist()),
                angles=tuple(map(tuple, angles.remainder(2 * math.pi).round(decimals=4).tolist())),
            )
        )
    return tuple(found)


@torch.inference_mode()
def learned_positions(model, n_positions: int) -> LearnedPositions | None:
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in LEARNED_POSITION_MODULES and hasattr(module, "weight"):
            table = module.weight.float().cpu()  # (max_positions, hidden)
            return LearnedPositions(
                source=name,
                norms=tuple(table.norm(dim=-1).tolist()),
                vectors=tuple(map(tuple, table[:n_positions].round(decimals=4).tolist())),
            )
    return None


def positions_for(loaded: LoadedModel, n_positions: int = 64) -> PositionInfo:
    """How `loaded` encodes positions, as its own modules hold it: rotary frequencies with the
    angle of every dimension pair at positions 0..n_positions-1, or a learned position table."""
    if isinstance(n_positions, bool) or not isinstance(n_positions, int):
        raise InputError("n_positions must be a whole number", field="n_positions")
    if not 1 <= n_positions <= MAX_POSITIONS:
        raise InputError(f"n_positions must be 1–{MAX_POSITIONS}", field="n_positions")
    rotary = rotary_frequencies(loaded.model, n_positions)
    if rotary:
        return PositionInfo("rotary", n_positions, rotary=rotary)
    learned = learned_positions(loaded.model, n_positions)
    if learned is not None:
        return PositionInfo("learned", n_positions, learned=learned)
    return PositionInfo("none", n_positions)


@torch.inference_mode()
def prompt_map(loaded: LoadedModel, tokenization: Tokenization) -> PromptMap:
    """A 2-D PCA map of the input embeddings of `tokenization`'s tokens (one point each)."""
    from sklearn.decomposition import PCA  # imported on first use: slow to import

    ids = [token.id for token in tokenization.tokens]
    distinct = list(dict.fromkeys(ids))
    if len(distinct) < 3:
        raise InputError(
            f"A map needs at least 3 different tokens; this text has {len(distinct)}",
            field="text",
        )
    matrix = _embedding_matrix(loaded)
    pca = PCA(n_components=2).fit(matrix[distinct].double().cpu().numpy())  # (distinct, hidden)
    coordinates = pca.transform(matrix[ids].double().cpu().numpy()).round(4)  # (tokens, 2)
    points = tuple(
        MapPoint(position, token.id, token.text, float(x), float(y))
        for position, (token, (x, y)) in enumerate(
            zip(tokenization.tokens, coordinates, strict=True)
        )
    )
    ratio = pca.explained_variance_ratio_
    return PromptMap(points, (float(ratio[0]), float(ratio[1])), len(distinct))


@dataclass(frozen=True)
class EmbeddingsOverview:
    """The Embeddings panel: one token's embedding, the model's positions and the prompt's map.

    map is None when the text has fewer than 3 distinct tokens; map_error then says why (the
    rest of the panel still stands).
    """

    token: TokenEmbedding
    positions: PositionInfo
    map: PromptMap | None
    map_error: InputError | None

    def to_dict(self) -> dict:
        return {
            "token": self.token.to_dict(),
            "positions": self.positions.to_dict(),
            "map": self.map.to_dict() if self.map else None,
            "map_error": self.map_error.to_dict() if self.map_error else None,
        }


def embeddings_overview(
    loaded: LoadedModel,
    tokenization: Tokenization,
    *,
    token_id: int | None = None,
    n_positions: int = 64,
    neighbours: int = 10,
) -> EmbeddingsOverview:
    """embedding_for(token_id, default: the sequence's last token), positions_for and
    prompt_map of one sequence."""
    if token_id is None:
        token_id = tokenization.tokens[-1].id
    try:
        prompt, problem = prompt_map(loaded, tokenization), None
    except InputError as exc:
        prompt, problem = None, exc
    return EmbeddingsOverview(
        token=embedding_for(loaded, token_id, neighbours=neighbours),
        positions=positions_for(loaded, n_positions),
        map=prompt,
        map_error=problem,
    )
