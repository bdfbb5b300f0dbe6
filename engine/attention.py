"""Attention weights of chosen layers and heads, packed compactly for the browser.

Only the requested layers are captured (a hook on each one's attention module), the causal
upper triangle (always 0) is left out, values are quantized to uint8 (max error 1/510) or
float16, and the bytes are deflate-compressed and base64-encoded. One SmolLM2 layer at 512
tokens is 33 MB as JSON floats; this way it is a few hundred kB.
"""

from __future__ import annotations

import base64
import contextlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from engine.limits import ENCODINGS, MAX_CELLS
from engine.loading import LoadedModel
from engine.tokenization import read_model_sequence
from engine.types import InputError, TokenPiece

MAX_TOKENS = 2048  # eager attention forms (heads, n, n) per layer: keep it bounded


@dataclass(frozen=True)
class AttentionResult:
    """Attention of `layers` × `heads` over `tokens`.

    data: the lower triangles (row by row, keys 0..query) of every (layer, head) map in that
    order, as `encoding` values (uint8: value = byte / 255), deflated, base64. kv_head_of[h]:
    the key/value head query head h reads (grouped-query attention).
    """

    tokens: tuple[TokenPiece, ...]
    layers: tuple[int, ...]
    heads: tuple[int, ...]
    kv_head_of: tuple[int, ...]
    encoding: str
    data: str
    raw_bytes: int

    def to_dict(self) -> dict:
        return {
            "tokens": [token.to_dict() for token in self.tokens],
            "n_tokens": len(self.tokens),
            "layers": list(self.layers),
            "heads": list(self.heads),
            "kv_head_of": list(self.kv_head_of),
            "encoding": self.encoding,
            "packing": "lower-triangle rows, layer-major then head; deflate; base64",
            "data": self.data,
            "raw_bytes": self.raw_bytes,
        }


def _check_indices(values, count: int, field: str) -> tuple[int, ...]:
    values = tuple(values)
    if not values:
        raise InputError(f"Choose at least one of the {count} {field}", field=field)
    for value in values:
        if not isinstance(value, int) or not 0 <= value < count:
            raise InputError(
                f"{field[:-1].capitalize()} {value!r} does not exist: this model has {count} "
                f"{field} (0–{count - 1})",
                field=field,
            )
    return tuple(dict.fromkeys(values))


def check_cells(n_layers: int, n_heads: int, n_tokens: int, max_cells: int) -> None:
    """InputError naming `layers` when the maps would hold more than max_cells values."""
    cells = n_layers * n_heads * n_tokens * n_tokens
    if cells > max_cells:
        fitting = max(1, max_cells // (n_heads * n_tokens * n_tokens))
        raise InputError(
            f"{n_layers} layers × {n_heads} heads × {n_tokens:,}² tokens is {cells:,} attention "
            f"values ({cells * 4 / 2**30:.1f} GiB); one request may hold {max_cells:,}. Ask "
            f"for at most {fitting} layer{'s' if fitting > 1 else ''} at this length, or a "
            "shorter text",
            field="layers",
        )


def kv_heads(n_heads: int, n_kv_heads: int) -> tuple[int, ...]:
    """The key/value head each query head reads (grouped-query attention: consecutive query
    heads share one)."""
    group = max(1, n_heads // max(1, n_kv_heads))
    return tuple(head // group for head in range(n_heads))


def _decoder_layers(model) -> list:
    return list(model.get_decoder().layers)


@contextlib.contextmanager
def _eager_attention(model):
    """Attention weights exist only in the eager implementation (sdpa never forms them)."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


class _AllCaptured(Exception):
    """Raised from the last hook to stop the forward pass early."""


@torch.inference_mode()
def capture_attention(
    loaded: LoadedModel,
    ids: list[int],
    layers: tuple[int, ...],
    reduce: Callable[[torch.Tensor], Any] | None = None,
):
    """{layer: (heads, queries, keys) float32 CPU} for the chosen layers only.

    With `reduce`, {layer: reduce(weights)} instead: it is called inside each layer's hook on
    that layer's (heads, queries, keys) weights, still on the model's device, so only its
    (small) result is kept and no more than one layer's maps exist at a time."""
    captured: dict[int, Any] = {}
    handles = []
    decoder_layers = _decoder_layers(loaded.model)
    for index in layers:

        def keep(_module, _inputs, output, index=index):
            weights = output[1][0]  # (heads, queries, keys)
            captured[index] = reduce(weights) if reduce else weights.float().cpu()
            if len(captured) == len(layers):
                raise _AllCaptured  # the layers above the last one asked for are not needed

        handles.append(decoder_layers[index].self_attn.register_forward_hook(keep))
    try:
        with _eager_attention(loaded.model), contextlib.suppress(_AllCaptured):
            loaded.model(
                input_ids=torch.tensor([ids], device=loaded.device),
                logits_to_keep=1,
                use_cache=False,
            )
    finally:
        for handle in handles:
            handle.remove()
    return captured


def pack(maps: torch.Tensor, encoding: str) -> tuple[str, int]:
    """maps (..., n, n) → (base64 of deflated lower triangles, raw byte count)."""
    n = maps.shape[-1]
    rows, cols = torch.tril_indices(n, n)
    triangles = maps[..., rows, cols]  # (..., n(n+1)/2)
    if encoding == "uint8":
        values = (triangles.clamp(0, 1) * 255).round().to(torch.uint8)
    else:
        values = triangles.to(torch.float16)
    raw = values.contiguous().numpy().tobytes()
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii"), len(raw)


def unpack(data: str, encoding: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The inverse of pack: (..., n, n) float32 with zeros above the diagonal."""
    raw = zlib.decompress(base64.b64decode(data))
    dtype = torch.uint8 if encoding == "uint8" else torch.float16
    *outer, n, _ = shape
    values = torch.frombuffer(bytearray(raw), dtype=dtype).float()
    if encoding == "uint8":
        values = values / 255
    rows, cols = torch.tril_indices(n, n)
    maps = torch.zeros(*outer, n, n)
    maps[..., rows, cols] = values.reshape(*outer, -1)
    return maps


def attention_for(
    loaded: LoadedModel,
    text: str,
    *,
    layers,
    heads=None,
    encoding: str = "uint8",
    system_prompt: str | None = None,
    use_chat_template: bool = False,
    completion_ids=(),
    max_cells: int = MAX_CELLS,
) -> AttentionResult:
    """The attention maps of the chosen layers and heads (all heads when heads is None) over
    `text` followed by any generated tokens (`completion_ids`). Refused before the forward
    pass when the maps captured (every head of each chosen layer, tokens × tokens) would be
    more than max_cells values."""
    info = loaded.info
    if encoding not in ENCODINGS:
        raise InputError(f"encoding must be one of {', '.join(ENCODINGS)}", field="encoding")
    layers = _check_indices(layers, info.n_layers, "layers")
    heads = _check_indices(range(info.n_heads) if heads is None else heads, info.n_heads, "heads")
    tokenization = read_model_sequence(
        loaded,
        text,
        system_prompt=system_prompt,
        use_chat_template=use_chat_template,
        completion_ids=completion_ids,
    )
    ids = [token.id for token in tokenization.tokens]
    if len(ids) > MAX_TOKENS:
        raise InputError(
            f"The text is {len(ids):,} tokens long; attention maps are drawn for at most "
            f"{MAX_TOKENS:,} tokens",
            field="text",
        )
    check_cells(len(layers), info.n_heads, len(ids), max_cells)
    captured = capture_attention(loaded, ids, layers)
    maps = torch.stack([captured[layer][list(heads)] for layer in layers])  # (L, H, n, n)
    data, raw_bytes = pack(maps, encoding)
    kv_head_of_all = kv_heads(info.n_heads, info.n_kv_heads)
    return AttentionResult(
        tokens=tokenization.tokens,
        layers=layers,
        heads=heads,
        kv_head_of=tuple(kv_head_of_all[head] for head in heads),
        encoding=encoding,
        data=data,
        raw_bytes=raw_bytes,
    )
