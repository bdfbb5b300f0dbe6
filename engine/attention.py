"""Attention weights of chosen layers and heads, packed compactly for the browser.

Only the requested layers are captured (a hook on each one's attention module), the causal
upper triangle (always 0) is left out, values are quantized to uint8 (max error 1/510) or
float16, and the bytes are deflate-compressed and base64-encoded. One SmolLM2 layer at 512
tokens is 33 MB as JSON floats; this way it is a few hundred kB.

Switching layers on the same text reuses the first pass: the attention panel's first request
for a sequence runs the whole pass and keeps what each decoder layer received (its hidden
states, mask and position embeddings: LayerInputs), so any later layer of that sequence costs
that one layer's forward pass instead of a pass through every layer below it.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from engine.architecture import attention_of, decoder_layers
from engine.limits import ENCODINGS, MAX_CELLS
from engine.loading import LoadedModel
from engine.tokenization import read_model_sequence
from engine.types import InputError, TokenPiece

MAX_TOKENS = 2048  # eager attention forms (heads, n, n) per layer: keep it bounded
# What the kept layer inputs may hold in all (SmolLM2 at 512 tokens: 30 × 1.2 MB + the mask).
LAYER_INPUTS_BYTES = 512 * 2**20


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


def read_attended(loaded: LoadedModel, text: str, system_prompt, use_chat_template, completion_ids):
    """The text (and any generated tokens) as the model reads it, refused past MAX_TOKENS:
    eager attention forms (heads, n, n) per layer."""
    tokenization = read_model_sequence(
        loaded,
        text,
        system_prompt=system_prompt,
        use_chat_template=use_chat_template,
        completion_ids=completion_ids,
    )
    if tokenization.count > MAX_TOKENS:
        raise InputError(
            f"The text is {tokenization.count:,} tokens long; attention is drawn for at most "
            f"{MAX_TOKENS:,} tokens",
            field="text",
        )
    return tokenization


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


def _hooked_layers(loaded: LoadedModel, layers, captured: dict, reduce, stop_after_all: bool):
    """Forward hooks on the chosen layers' attention modules that fill captured[layer]."""
    handles = []
    layer_modules = decoder_layers(loaded.model)
    for index in layers:

        def keep(_module, _inputs, output, index=index):
            weights = output[1][0]  # (heads, queries, keys)
            captured[index] = reduce(weights) if reduce else weights.float().cpu()
            if stop_after_all and len(captured) == len(layers):
                raise _AllCaptured  # the layers above the last one asked for are not needed

        handles.append(attention_of(layer_modules[index]).register_forward_hook(keep))
    return handles


@dataclass(frozen=True)
class LayerInputs:
    """What each decoder layer received in one eager forward pass over one sequence: calls[i]
    = (args, kwargs) of layer i (hidden states, mask, position embeddings…). Running layer i
    on them alone gives its attention exactly as the whole pass did."""

    calls: tuple[tuple[tuple, dict], ...]
    nbytes: int


class LayerInputCache:
    """The LayerInputs of recent sequences, per model and person (scope), least recently used
    first out once they hold more than max_bytes."""

    def __init__(self, max_bytes: int = LAYER_INPUTS_BYTES):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple, LayerInputs] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> LayerInputs | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: tuple, inputs: LayerInputs) -> None:
        """Keep inputs for key (not when larger than the whole budget), then evict the least
        recently used down to the budget."""
        with self._lock:
            self._entries.pop(key, None)
            if inputs.nbytes <= self.max_bytes:
                self._entries[key] = inputs
            while self._entries and self.nbytes > self.max_bytes:
                self._entries.popitem(last=False)

    @property
    def nbytes(self) -> int:
        return sum(entry.nbytes for entry in self._entries.values())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _tensor_bytes(values, seen: set[int]) -> int:
    """Bytes of the distinct tensors among values (nested tuples and dicts): layers share
    their mask and position embeddings."""
    total = 0
    for value in values:
        if isinstance(value, torch.Tensor) and id(value) not in seen:
            seen.add(id(value))
            total += value.numel() * value.element_size()
        elif isinstance(value, (tuple, list)):
            total += _tensor_bytes(value, seen)
        elif isinstance(value, dict):
            total += _tensor_bytes(value.values(), seen)
    return total


def _eager_pass(loaded: LoadedModel, ids: list[int], handles: list) -> None:
    """One eager forward pass over ids with `handles` hooked (removed afterwards); a hook may
    end it early by raising _AllCaptured."""
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


def _pass_keeping_inputs(loaded: LoadedModel, ids: list[int], layers, reduce) -> tuple:
    """(captured, LayerInputs): a whole eager pass that captures the chosen layers' attention
    and keeps every decoder layer's inputs."""
    captured: dict[int, Any] = {}
    layer_modules = decoder_layers(loaded.model)
    calls: list = [None] * len(layer_modules)

    def keep_inputs(index):
        def hook(_module, args, kwargs):
            calls[index] = (tuple(args), dict(kwargs))

        return hook

    handles = _hooked_layers(loaded, layers, captured, reduce, stop_after_all=False)
    handles += [
        layer.register_forward_pre_hook(keep_inputs(index), with_kwargs=True)
        for index, layer in enumerate(layer_modules)
    ]
    _eager_pass(loaded, ids, handles)
    return captured, LayerInputs(tuple(calls), _tensor_bytes(calls, set()))


def _layers_alone(loaded: LoadedModel, inputs: LayerInputs, layers, reduce) -> dict:
    """The chosen layers' attention, each layer run alone on its kept inputs."""
    captured: dict[int, Any] = {}
    layer_modules = decoder_layers(loaded.model)
    handles = _hooked_layers(loaded, layers, captured, reduce, stop_after_all=False)
    try:
        with _eager_attention(loaded.model):
            for index in layers:
                args, kwargs = inputs.calls[index]
                layer_modules[index](*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return captured


@torch.inference_mode()
def capture_attention(
    loaded: LoadedModel,
    ids: list[int],
    layers: tuple[int, ...],
    reduce: Callable[[torch.Tensor], Any] | None = None,
    reuse: tuple[LayerInputCache, str] | None = None,
):
    """{layer: (heads, queries, keys) float32 CPU} for the chosen layers only.

    With `reduce`, {layer: reduce(weights)} instead: it is called inside each layer's hook on
    that layer's (heads, queries, keys) weights, still on the model's device, so only its
    (small) result is kept and no more than one layer's maps exist at a time.

    With `reuse` = (cache, scope), a sequence seen before costs one layer's forward pass per
    layer asked for; the first time, the pass runs through every layer and keeps what each
    received. Without it, the pass stops after the last layer asked for."""
    if reuse is not None:
        cache, scope = reuse
        key = (loaded.spec.key, id(loaded.model), scope, tuple(ids))
        kept = cache.get(key)
        if kept is not None:
            return _layers_alone(loaded, kept, layers, reduce)
        captured, kept = _pass_keeping_inputs(loaded, ids, layers, reduce)
        cache.put(key, kept)
        return captured
    captured: dict[int, Any] = {}
    _eager_pass(loaded, ids, _hooked_layers(loaded, layers, captured, reduce, stop_after_all=True))
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
    reuse: tuple[LayerInputCache, str] | None = None,
) -> AttentionResult:
    """The attention maps of the chosen layers and heads (all heads when heads is None) over
    `text` followed by any generated tokens (`completion_ids`). Refused before the forward
    pass when the maps captured (every head of each chosen layer, tokens × tokens) would be
    more than max_cells values. `reuse` = (cache, scope): see capture_attention."""
    info = loaded.info
    if encoding not in ENCODINGS:
        raise InputError(f"encoding must be one of {', '.join(ENCODINGS)}", field="encoding")
    layers = _check_indices(layers, info.n_layers, "layers")
    heads = _check_indices(range(info.n_heads) if heads is None else heads, info.n_heads, "heads")
    tokenization = read_attended(loaded, text, system_prompt, use_chat_template, completion_ids)
    ids = [token.id for token in tokenization.tokens]
    check_cells(len(layers), info.n_heads, len(ids), max_cells)
    captured = capture_attention(loaded, ids, layers, reuse=reuse)
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
