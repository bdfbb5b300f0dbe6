"""The logit lens: what the model would predict at one position if it stopped after each layer.

The residual stream at the position is captured after every decoder layer (forward hooks on
the layers' outputs, plus the embeddings entering layer 0 as depth 0) and each of those
vectors goes through the model's own final norm, its unembedding (lm_head) and any final logit
softcapping its config names, exactly as the model treats its last layer's output. Hooks are
used rather than `output_hidden_states`, whose last element already has the final norm applied.

Only the tokens up to the position go through the decoder (later ones cannot change it),
logits are computed for those (layers + 1) vectors alone, in one matmul, and with a worker's
PrefixCache the prefix's key/value states are read from it, so only the uncached tokens run.
The first lens of each loaded model checks once that this output path reproduces the model's
own logits (check_output_path), so a model with a final step the lens does not know fails
loudly instead of showing wrong rows.
"""

from __future__ import annotations

import hashlib
import math
import threading
import weakref

import torch

from engine.architecture import decoder_layers, final_norm
from engine.distribution import next_token_logits
from engine.forward import cache_from, layers_of
from engine.kvcache import PrefixCache, scoped
from engine.lens_checks import (  # split out of this module
    check_ids,
    check_position,
    check_top_k,
    resolve_token,
)
from engine.lens_results import (  # split out of this module
    Contrast,
    ContrastToken,
    LayerLogits,
    LensRow,
    LensToken,
    LogitLens,
    TokenTrace,
)
from engine.loading import LoadedModel
from engine.output import OUTPUT_PATH_TOLERANCE, output_logits, relative_gap, softcapping
from engine.tokenization import read_model_sequence, token_text
from engine.types import EngineError, InputError

# --- The model's own output path -----------------------------------------------------------------


def layer_logits(model, residuals: torch.Tensor) -> torch.Tensor:
    """(depths, hidden) residual vectors → (depths, vocab) float32 logits, through the model's
    own final norm, lm_head and softcapping: every depth in one matmul."""
    normed = final_norm(model)(residuals.unsqueeze(0))[0]  # (depths, hidden)
    return output_logits(model, normed).float()


def usable_vocab(loaded: LoadedModel) -> int:
    """Ids with both an output row and a tokenizer entry."""
    return min(len(loaded.tokenizer), loaded.model.get_output_embeddings().weight.shape[0])


# --- Capturing the residual stream ---------------------------------------------------------------


def _hidden_of(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output  # (batch, pos, hidden)


class _ResidualRecorder:
    """Forward hooks that keep the last position's residual vector entering layer 0 and
    leaving every layer. Only the calling thread's forward is recorded: the model is shared
    with other work in the worker."""

    def __init__(self, model):
        self.layers = decoder_layers(model)
        self.thread = threading.get_ident()
        self.vectors: dict[int, torch.Tensor] = {}  # depth → (hidden,)
        self.handles = []

    def _keep(self, depth: int, hidden: torch.Tensor) -> None:
        if threading.get_ident() == self.thread:
            self.vectors[depth] = hidden[0, -1].clone()

    def __enter__(self) -> _ResidualRecorder:
        def entering(_module, args, kwargs):
            self._keep(0, args[0] if args else kwargs["hidden_states"])

        self.handles.append(self.layers[0].register_forward_pre_hook(entering, with_kwargs=True))
        for index, layer in enumerate(self.layers):

            def leaving(_module, _inputs, output, depth=index + 1):
                self._keep(depth, _hidden_of(output))

            self.handles.append(layer.register_forward_hook(leaving))
        return self

    def __exit__(self, *_exc) -> None:
        for handle in self.handles:
            handle.remove()

    def stacked(self) -> torch.Tensor:
        """(depths, hidden): depth 0 (embeddings) to depth n_layers (the last layer's output)."""
        return torch.stack([self.vectors[depth] for depth in range(len(self.layers) + 1)])


def _cache_key(ids: list[int]) -> str:
    return "lens:" + hashlib.sha256(repr(ids).encode()).hexdigest()[:16]


@torch.inference_mode()
def read_residuals(
    loaded: LoadedModel,
    ids: list[int],
    position: int,
    kv_cache: PrefixCache | None = None,
    cache_branch: str | None = None,
    cache_scope: str = "",
) -> tuple[torch.Tensor, int]:
    """(residuals (depths, hidden), cached token count) at `position` of `ids`. Only
    ids[:position + 1] go through the decoder (later tokens cannot change the position), and
    no logits are computed: the lens makes its own.

    With kv_cache, the longest cached prefix is reused (looked for under this sequence's lens
    key, then cache_branch, then every entry of cache_scope, never another scope's). At the last
    position the sequence's states are stored under its lens key, so the lens at any other
    position of it then runs one token; other positions store nothing (they would crop it)."""
    upto = torch.tensor(ids[: position + 1], dtype=torch.long)
    cached, past = 0, None
    if kv_cache is not None:
        key = scoped(cache_scope, _cache_key(ids))
        branch = scoped(cache_scope, cache_branch)
        cached, states = kv_cache.lookup(key, upto, position, branch)
        past = cache_from(states)
    with _ResidualRecorder(loaded.model) as recorder:
        loaded.model.get_decoder()(
            input_ids=upto[cached:].unsqueeze(0).to(loaded.device),
            cache=past,
            use_cache=past is not None,
        )
    if past is not None and position == len(ids) - 1:
        kv_cache.store(key, upto, layers_of(past))
    return recorder.stacked(), cached


# --- Building the lens ---------------------------------------------------------------------------


def depth_labels(n_layers: int) -> tuple[str, ...]:
    return ("embeddings", *(f"layer {index}" for index in range(n_layers)))


def output_path_gap(loaded: LoadedModel, ids: list[int]) -> float:
    """How far the lens's output path (final norm, lm_head, softcapping) applied to the last
    layer's output at the end of `ids` is from the model's own logits there, relative to
    their size: float rounding (~1e-6) when the lens reproduces the model."""
    residuals, _cached = read_residuals(loaded, ids, len(ids) - 1)
    with torch.inference_mode():
        ours = layer_logits(loaded.model, residuals[-1:])[0].cpu()
    theirs = next_token_logits(loaded, ids)
    return relative_gap(ours, theirs)


_checked_models: weakref.WeakSet = weakref.WeakSet()


def check_output_path(loaded: LoadedModel) -> None:
    """Once per loaded model: EngineError if the lens cannot reproduce the model's own logits
    (it transforms them in a way the lens does not know), since every row would be off."""
    if loaded in _checked_models:
        return
    gap = output_path_gap(loaded, loaded.tokenizer("The logit lens checks itself").input_ids)
    if not gap <= OUTPUT_PATH_TOLERANCE:
        raise EngineError(
            f"The logit lens cannot reproduce this model's own logits (off by {gap:.3g} of "
            "their size): it transforms its final logits in a way the lens does not know",
            field="model",
        )
    _checked_models.add(loaded)


def read_layers(loaded: LoadedModel, residuals: torch.Tensor) -> LayerLogits:
    """LayerLogits of captured residuals (depths, hidden)."""
    with torch.inference_mode():
        logits = layer_logits(loaded.model, residuals).cpu()  # (depths, vocab)
    log_normalizer, entropy = normalizer_and_entropy(logits)
    return LayerLogits(
        tokenizer=loaded.tokenizer,
        labels=depth_labels(residuals.shape[0] - 1),
        logits=logits,
        log_normalizer=log_normalizer,
        entropy=entropy,
        usable_vocab=usable_vocab(loaded),
    )


def normalizer_and_entropy(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logsumexp, entropy in bits) of each row of finite logits (rows, vocab), from one exp
    pass: with s = logit - max and Z = Σ exp(s), H = log Z - Σ exp(s)·s / Z. A quarter of the
    time of logsumexp plus a separate entropy over 19 × 262k Gemma logits."""
    peak = logits.amax(-1, keepdim=True)
    shifted = logits - peak
    weights = shifted.exp()
    total = weights.sum(-1, keepdim=True)
    log_total = total.log()
    entropy_nats = log_total - (weights * shifted).sum(-1, keepdim=True) / total
    return (peak + log_total)[:, 0], entropy_nats[:, 0] / math.log(2)


def lens_rows(readout: LayerLogits, top_k: int) -> tuple[LensRow, ...]:
    top = readout.logits.topk(top_k, dim=-1)  # values, indices: (depths, top_k)
    probabilities = (top.values - readout.log_normalizer[:, None]).exp()
    rows = []
    for depth, label in enumerate(readout.labels):
        tokens = tuple(
            _lens_token(readout.tokenizer, token_id, probability, logit)
            for token_id, probability, logit in zip(
                top.indices[depth].tolist(),
                probabilities[depth].tolist(),
                top.values[depth].tolist(),
                strict=True,
            )
        )
        layer = depth - 1 if depth else None
        rows.append(LensRow(depth, layer, label, float(readout.entropy[depth]), tokens))
    return tuple(rows)


def _lens_token(tokenizer, token_id: int, probability: float, logit: float) -> LensToken:
    text, special, _partial = token_text(tokenizer, token_id)
    return LensToken(token_id, text, special, probability, logit)


def trace_token(readout: LayerLogits, token_id: int, reasons: tuple[str, ...]) -> TokenTrace:
    """One token's probability, rank and logit at every depth."""
    text, special, _partial = token_text(readout.tokenizer, token_id)
    return TokenTrace(
        id=token_id,
        text=text,
        special=special,
        reasons=reasons,
        probabilities=tuple(readout.probabilities(token_id).tolist()),
        ranks=tuple(readout.ranks(token_id).tolist()),
        logits=tuple(readout.logits[:, token_id].tolist()),
    )


def chosen_reasons(
    asked: tuple[int, ...], next_id: int | None, final_top: int
) -> dict[int, tuple[str, ...]]:
    """{token id: why it is followed}: the ids asked for, or by default the next token of the
    sequence and the last layer's top-1."""
    if asked:
        return dict.fromkeys(asked, ("asked",))
    reasons: dict[int, tuple[str, ...]] = {}
    if next_id is not None:
        reasons[next_id] = ("next_token",)
    reasons[final_top] = (*reasons.get(final_top, ()), "final_top")
    return reasons


# --- Public entry points -------------------------------------------------------------------------


def contrast(lens_or_readout: LogitLens | LayerLogits, token_a, token_b) -> Contrast:
    """Token a against token b at every depth of a lens (or of its LayerLogits). Each token is
    an id or a text (see resolve_token); InputError (field "contrast") for an empty text or an
    id outside the vocabulary."""
    readout = getattr(lens_or_readout, "readout", lens_or_readout)
    resolved, notes = [], []
    for given in (token_a, token_b):
        token_id, note = resolve_token(readout.tokenizer, given, readout.usable_vocab)
        text, special, _partial = token_text(readout.tokenizer, token_id)
        resolved.append(ContrastToken(token_id, text, special, given))
        notes.extend([note] if note else [])
    a, b = resolved
    return Contrast(
        a=a,
        b=b,
        labels=readout.labels,
        logits_a=tuple(readout.logits[:, a.id].tolist()),
        logits_b=tuple(readout.logits[:, b.id].tolist()),
        p_a=tuple(readout.probabilities(a.id).tolist()),
        p_b=tuple(readout.probabilities(b.id).tolist()),
        note="; ".join(notes) or None,
    )


def check_contrast(pair, tokenizer, vocab: int) -> tuple:
    """The two tokens of a contrast, checked before any model work (() when there is none)."""
    if pair is None:
        return ()
    if not isinstance(pair, list | tuple) or len(pair) != 2:
        raise InputError("contrast takes two tokens: [a, b]", field="contrast")
    for token in pair:
        resolve_token(tokenizer, token, vocab)
    return tuple(pair)


def logit_lens(
    loaded: LoadedModel,
    text: str,
    *,
    position: int | None = None,
    top_k: int = 10,
    chosen_ids=(),
    contrast_tokens=None,
    kv_cache: PrefixCache | None = None,
    cache_branch: str | None = None,
    cache_scope: str = "",
    **sequence_options,
) -> LogitLens:
    """The logit lens (LogitLens) at `position` of `text` followed by any generated tokens
    (sequence_options: system_prompt, use_chat_template, completion_ids).

    position: default the last token; negative counts from the end. top_k: tokens listed per
    depth (1..50). chosen_ids: tokens to follow through every depth (default: the token that
    follows the position, and the last layer's top-1). contrast_tokens: optional [a, b], ids
    or texts (see contrast()). kv_cache / cache_branch / cache_scope: see read_residuals."""
    vocab = usable_vocab(loaded)
    top_k, asked = check_top_k(top_k), check_ids(chosen_ids, vocab, "chosen_ids")
    pair = check_contrast(contrast_tokens, loaded.tokenizer, vocab)
    tokenization = read_model_sequence(loaded, text, **sequence_options)
    ids = [token.id for token in tokenization.tokens]
    position = check_position(position, len(ids))
    check_output_path(loaded)
    residuals, cached = read_residuals(loaded, ids, position, kv_cache, cache_branch, cache_scope)
    readout = read_layers(loaded, residuals)
    after = position + 1
    next_id = ids[after] if after < len(ids) and ids[after] < vocab else None
    final_top = int(readout.logits[-1].argmax())
    reasons = chosen_reasons(asked, next_id, final_top)
    return LogitLens(
        tokens=tokenization.tokens,
        position=position,
        top_k=top_k,
        vocab_size=int(readout.logits.shape[-1]),
        softcapping=softcapping(loaded.model),
        rows=lens_rows(readout, top_k),
        chosen=tuple(trace_token(readout, token_id, why) for token_id, why in reasons.items()),
        contrast=contrast(readout, *pair) if pair else None,
        cached_tokens=cached,
        readout=readout,
    )
