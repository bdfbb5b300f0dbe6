"""Token attribution: which input tokens drove the model's prediction of one token.

The explained position p is a token of the sequence; the model reads tokens 0..p and its
prediction for the token after p is explained (for a generated token at index j, p = j - 1).
Two methods read attention; three differentiate the objective, the log-probability of the
target token at p, with respect to the input embeddings, the output of the model's embedding
module (so Gemma's √hidden scaling is part of them). The log-probability rather than the logit
because it is what sampling sees: raising every logit alike changes nothing.

Integrated gradients, and the path they integrate until it converges, are in
engine/integrated_gradients.py.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable

import torch

from engine.attention import capture_attention
from engine.attribution_results import Attribution, Question, Scores  # split out of this module
from engine.integrated_gradients import Objective, embeddings, integrated_gradients_scores
from engine.limits import ATTRIBUTION_METHODS as METHODS
from engine.limits import DEFAULT_STEPS, MAX_STEPS
from engine.loading import LoadedModel, Progress
from engine.precision import Bfloat16Check, autocast, bfloat16_check, check_precision
from engine.tokenization import read_model_sequence, token_text
from engine.types import InputError, TokenPiece

logger = logging.getLogger(__name__)

MAX_TOKENS = 1024  # the gradient methods keep every layer's activations of each step
CACHE_SIZE = 64


# --- Checking the request ------------------------------------------------------------------


def _check_choices(method, n_steps) -> None:
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}", field="method")
    if n_steps is None:  # adaptive
        return
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or not 1 <= n_steps <= MAX_STEPS:
        raise InputError(
            f"n_steps must be a whole number from 1 to {MAX_STEPS}, or left out to refine the "
            "path until it converges",
            field="n_steps",
        )


def _check_position(position, count: int) -> int:
    if position is None:
        return count - 1
    if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < count:
        raise InputError(
            f"position {position!r} is not a token of this sequence (0–{count - 1})",
            field="position",
        )
    return position


def _check_target(target_id, loaded: LoadedModel) -> int:
    vocab = min(loaded.info.vocab_size, len(loaded.tokenizer))
    if isinstance(target_id, bool) or not isinstance(target_id, int) or not 0 <= target_id < vocab:
        raise InputError(
            f"Token id {target_id!r} is outside this model's vocabulary (0–{vocab - 1})",
            field="target_id",
        )
    return target_id


def _read_tokens(loaded: LoadedModel, text: str, sequence_options) -> tuple[TokenPiece, ...]:
    tokens = read_model_sequence(loaded, text, **sequence_options).tokens
    if len(tokens) > MAX_TOKENS:
        raise InputError(
            f"The text is {len(tokens):,} tokens long; attributions are computed for at most "
            f"{MAX_TOKENS:,} tokens",
            field="text",
        )
    return tokens


# --- The methods ---------------------------------------------------------------------------


@torch.inference_mode()
def _log_probability(loaded: LoadedModel, question: Question) -> float:
    logits = loaded.model(
        input_ids=torch.tensor([question.ids], device=loaded.device),
        logits_to_keep=1,
        use_cache=False,
    ).logits  # (1, 1, vocab)
    return float(torch.log_softmax(logits[0, -1].float(), -1)[question.target_id])


def _attention_scores(loaded: LoadedModel, question: Question, progress: Progress) -> Scores:
    progress("Attention: reading the last layer")
    last = loaded.info.n_layers - 1
    captured = capture_attention(  # the explained row, averaged over heads: (keys,)
        loaded, list(question.ids), (last,), reduce=lambda maps: maps[:, -1].float().mean(0).cpu()
    )
    return Scores(captured[last], _log_probability(loaded, question))


def _rollout_scores(loaded: LoadedModel, question: Question, progress: Progress) -> Scores:
    """Abnar & Zuidema (2020): R = Â_L ··· Â_1 with Â = rows-normalized(mean-over-heads A + I);
    only the explained row is needed, so a row vector is carried down from the top layer."""
    progress("Attention rollout: reading every layer")
    layers = tuple(range(loaded.info.n_layers))
    means = capture_attention(  # {layer: (n, n)} on the model's device
        loaded, list(question.ids), layers, reduce=lambda maps: maps.float().mean(0)
    )
    identity = torch.eye(len(question.ids), device=loaded.device)
    row = identity[-1]  # (n,)
    for layer in reversed(layers):
        mixed = means[layer] + identity
        row = row @ (mixed / mixed.sum(-1, keepdim=True))
    return Scores(row.cpu(), _log_probability(loaded, question))


def _gradient_scores(loaded: LoadedModel, question: Question, progress: Progress) -> Scores:
    """Saliency (the gradient's L2 norm over the hidden dimension) or input × gradient (summed
    over it), from one forward and backward pass."""
    from captum.attr import InputXGradient, Saliency

    label = "Saliency" if question.method == "saliency" else "Input × gradient"
    progress(f"{label}: one backward pass")
    inputs = embeddings(loaded, question.ids)
    objective = Objective(loaded.model, question.target_id, inputs)
    if question.method == "saliency":
        scores = Saliency(objective).attribute(inputs, abs=False)[0].norm(dim=-1)  # (n,)
    else:
        scores = InputXGradient(objective).attribute(inputs)[0].sum(-1)  # (n,)
    return Scores(scores.detach().cpu(), objective.at_input)


SCORERS: dict[str, Callable[[LoadedModel, Question, Progress], Scores]] = {
    "attention": _attention_scores,
    "rollout": _rollout_scores,
    "saliency": _gradient_scores,
    "input_x_gradient": _gradient_scores,
    "integrated_gradients": integrated_gradients_scores,
}


def _score(loaded: LoadedModel, question: Question, progress: Progress) -> Scores:
    """Gradients must flow even when a caller works under inference_mode; the model's weights
    get no .grad (Captum asks torch.autograd.grad for the embeddings' gradients only)."""
    with (
        torch.inference_mode(False),
        torch.enable_grad(),
        autocast(loaded.device, question.precision),
    ):
        return SCORERS[question.method](loaded, question, progress)


CALIBRATION_TEXT = (
    "The lighthouse keeper climbed the stairs every evening and wrote the weather in a book "
    "that nobody ever read, until one winter a ship"
)


def calibration_scores(loaded: LoadedModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(float32, bfloat16) integrated-gradients scores (16 steps) explaining
    CALIBRATION_TEXT's last token: what the bfloat16 check correlates."""
    ids = [t.id for t in read_model_sequence(loaded, CALIBRATION_TEXT).tokens]
    scores = []
    for precision in ("float32", "bfloat16"):
        question = Question(
            ids=tuple(ids[:-1]),
            special=(True,) + (False,) * (len(ids) - 2),
            target_id=ids[-1],
            method="integrated_gradients",
            n_steps=16,
            precision=precision,
        )
        scores.append(_score(loaded, question, lambda _stage: None).scores)
    return scores[0], scores[1]


def bfloat16_for(loaded: LoadedModel) -> Bfloat16Check:
    """Whether bfloat16 is offered for this model on its device (engine/precision.py)."""
    return bfloat16_check(loaded, loaded.device, lambda: calibration_scores(loaded))


def _check_bfloat16(loaded: LoadedModel, method: str, precision: str) -> Bfloat16Check | None:
    """The model's bfloat16 check when bfloat16 is asked for a gradient method (InputError
    naming why when it is not offered); None for float32 and the attention methods."""
    if precision != "bfloat16" or method in ("attention", "rollout"):
        return None
    found = bfloat16_for(loaded)
    if not found.offered:
        raise InputError(f"bfloat16 is not offered here: {found.reason}", field="precision")
    return found


# --- Device fallback and cache -------------------------------------------------------------

_cpu_copies: weakref.WeakKeyDictionary[LoadedModel, LoadedModel] = weakref.WeakKeyDictionary()
_cpu_copies_lock = threading.Lock()


def cpu_copy(loaded: LoadedModel) -> LoadedModel:
    """A CPU twin of a model (made once per LoadedModel), for work its GPU could not do.

    Built from the config and a CPU copy of the weights: copy.deepcopy would first duplicate
    the weights on the GPU that just ran out of memory."""
    with _cpu_copies_lock:
        if loaded not in _cpu_copies:
            cpu = torch.device("cpu")
            with cpu:
                twin = type(loaded.model)(copy.deepcopy(loaded.model.config))
            twin.load_state_dict({k: v.to(cpu) for k, v in loaded.model.state_dict().items()})
            info = dataclasses.replace(loaded.info, device="cpu")
            _cpu_copies[loaded] = dataclasses.replace(
                loaded, model=twin.eval(), device=cpu, info=info
            )
        return _cpu_copies[loaded]


def _score_with_fallback(loaded: LoadedModel, *args) -> tuple[Scores, str]:
    """(scores, device used): a method that fails on a CUDA device runs again on CPU."""
    try:
        return _score(loaded, *args), loaded.device.type
    except RuntimeError as exc:  # CUDA out of memory, launch failures, unsupported kernels
        if loaded.device.type != "cuda":
            raise
        logger.warning("Attribution failed on %s (%s); retrying on CPU", loaded.device, exc)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return _score(cpu_copy(loaded), *args), "cpu"


_cache: OrderedDict[tuple, Attribution] = OrderedDict()
_cache_lock = threading.Lock()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _cached(key: tuple, compute: Callable[[], Attribution]) -> Attribution:
    """The result for key from a small in-process LRU, computed on a miss."""
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    result = compute()
    with _cache_lock:
        _cache[key] = result
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def attribute(
    loaded: LoadedModel,
    text: str,
    *,
    target_id: int,
    method: str,
    position: int | None = None,
    n_steps: int | None = DEFAULT_STEPS,
    progress: Progress | None = None,
    cache_scope: str = "",
    precision: str = "float32",
    **sequence_options,
) -> Attribution:
    """Score every token 0..position of `text` (+ sequence_options: system_prompt,
    use_chat_template, completion_ids) by how much it drove `target_id` as the next token
    after `position` (default: the last token). n_steps is used by integrated_gradients only:
    None refines the path until its delta is at most AUTO_TOLERANCE of the change.
    precision: "bfloat16" runs the gradient methods under bfloat16 autocast where it is
    offered (bfloat16_for). Results are cached in-process per cache_scope (one person's), so
    asking again is instant for them and tells nobody else what was asked."""
    _check_choices(method, n_steps)
    bfloat16 = _check_bfloat16(loaded, method, check_precision(precision))
    tokens = _read_tokens(loaded, text, sequence_options)
    position = _check_position(position, len(tokens))
    target_id = _check_target(target_id, loaded)
    tokens = tokens[: position + 1]
    question = Question(
        ids=tuple(token.id for token in tokens),
        special=tuple(token.special for token in tokens),
        target_id=target_id,
        method=method,
        n_steps=n_steps if method == "integrated_gradients" else 0,
        precision="bfloat16" if bfloat16 else "float32",
    )

    def compute() -> Attribution:
        found, device = _score_with_fallback(loaded, question, progress or (lambda _stage: None))
        return Attribution(
            method=method,
            position=position,
            tokens=tokens,
            scores=tuple(float(score) for score in found.scores.tolist()),
            target_id=target_id,
            target_text=token_text(loaded.tokenizer, target_id)[0],
            target_probability=math.exp(found.log_probability),
            device=device,
            path=found.path,
            bfloat16=bfloat16,
        )

    return _cached((loaded.spec.key, cache_scope, question), compute)
