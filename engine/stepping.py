"""Step branches one token at a time: choose (sample, greedy or forced), record, know when to stop
(what a step is, its request and result, lives in engine.steps).

A Stepper belongs to one loaded model in one worker process. Callers describe every branch fully
(prompt ids and completion so far) on every call; the Stepper keeps key/value caches and
constraint matchers between calls only to go fast, so a cache miss costs time, never correctness.
Several branches (different prefixes, parameters, seeds, constraints) step in one batched pass.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import torch

from engine.distribution import MAX_TOP_N, Distribution, check_token_ids, summarize
from engine.forward import CachedForward, Row
from engine.kvcache import PrefixCache, scoped
from engine.limits import MAX_STOP_SEQUENCES
from engine.loading import LoadedModel
from engine.matching import ConstraintMatcher
from engine.sampling import choose, run_pipeline
from engine.steps import APPENDING_MODES, MODES, StepRequest, StepResult, StepToken
from engine.tokenization import TextJoiner
from engine.types import EngineError, InputError

_MATCHERS_KEPT = 256
_TAIL_TOKENS = 8  # a UTF-8 character spans at most 4 tokens


def eos_ids_of(loaded: LoadedModel) -> frozenset[int]:
    """End-of-sequence ids: the generation config's (int or list) and the tokenizer's."""
    ids: set[int] = set()
    generation_config = getattr(loaded.model, "generation_config", None)
    configured = getattr(generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(token_id) for token_id in configured)
    if getattr(loaded.tokenizer, "eos_token_id", None) is not None:
        ids.add(int(loaded.tokenizer.eos_token_id))
    return frozenset(ids)


class Stepper:
    """Steps branches of one loaded model; safe to call from several threads (one at a time)."""

    def __init__(self, loaded: LoadedModel, cache_budget_bytes: int):
        self.loaded = loaded
        self.cache = PrefixCache(cache_budget_bytes)
        self.forward = CachedForward(loaded.model, loaded.device, self.cache)
        self.eos_ids = eos_ids_of(loaded)
        self._matchers: OrderedDict[str, ConstraintMatcher] = OrderedDict()
        self._lock = threading.Lock()
        # The pipeline of each row (sorts, softmaxes) runs on the CPU cores side by side.
        self._pool = ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads()))

    # -- validation -------------------------------------------------------------------------

    def check(self, request: StepRequest) -> None:
        """InputError (naming the field) for anything wrong with a request."""
        if request.mode not in MODES:
            raise InputError(
                f"mode must be one of {', '.join(MODES)}, got {request.mode!r}", "mode"
            )
        if request.mode == "force" and not request.force_ids:
            raise InputError("Forcing needs a token id or some text", field="token_id")
        if request.mode == "turn":
            self._check_turn(request)
        if not request.prompt_ids:
            raise InputError("The prompt is empty", field="prompt")
        if not 1 <= request.top_n <= MAX_TOP_N:
            raise InputError(f"top_n must be between 1 and {MAX_TOP_N}", field="top_n")
        if request.max_new_tokens is not None and request.max_new_tokens < 1:
            raise InputError("max_new_tokens must be at least 1", field="max_new_tokens")
        if len(request.stop) > MAX_STOP_SEQUENCES or not all(request.stop):
            raise InputError(
                f"Give at most {MAX_STOP_SEQUENCES} non-empty stop sequences", field="stop"
            )
        check_token_ids(self.loaded, list(request.completion_ids), "completion_ids")
        check_token_ids(self.loaded, list(request.force_ids), "token_id")
        if request.max_new_tokens is not None and request.mode == "force":
            left = request.max_new_tokens - request.reply_length
            if request.n_new > left:
                raise InputError(
                    f"The forced text is {request.n_new:,} tokens; this branch has room for "
                    f"{max(left, 0):,} more (max new tokens: {request.max_new_tokens:,}). "
                    "Force a shorter text; nothing was added",
                    field="text",
                )
        room = self.loaded.info.context_length - len(request.context_ids)
        if request.n_new > room:
            raise InputError(
                f"The branch has reached the context window "
                f"({self.loaded.info.context_length:,} tokens)",
                field="completion_ids",
            )

    def _check_turn(self, request: StepRequest) -> None:
        if not request.force_ids:
            raise InputError("A user's turn needs some text", field="text")
        if request.constraint is not None:
            raise InputError(
                "This exploration has a constraint on what the model writes; it cannot go on "
                "as a conversation",
                field="text",
            )
        room = self.loaded.info.context_length - len(request.context_ids)
        if request.n_new >= room:
            raise InputError(
                f"This turn is {request.n_new:,} tokens through the chat template; the context "
                f"window ({self.loaded.info.context_length:,} tokens) has room for "
                f"{max(room - 1, 0):,} more and a reply. Nothing was added",
                field="text",
            )

    # -- constraints ----------------------------------------------------------------------------

    def _matcher(self, request: StepRequest) -> ConstraintMatcher | None:
        """The branch's matcher, moved to the end of its completion so far."""
        key = request.cache_key
        if request.constraint is None:
            self._matchers.pop(key, None)
            return None
        completion = list(request.completion_ids)
        matcher = self._matchers.pop(key, None)
        if matcher is not None and matcher.constraint == request.constraint:
            shared = 0
            for mine, theirs in zip(matcher.consumed, completion, strict=False):
                if mine != theirs:
                    break
                shared += 1
            matcher.rollback(len(matcher.consumed) - shared)
            if len(matcher.consumed) != shared:
                matcher = None
        else:
            matcher = None
        if matcher is None:
            matcher = ConstraintMatcher(
                request.constraint, self.loaded.tokenizer, self.loaded.info.vocab_size
            )
        matcher.consume(completion[len(matcher.consumed) :])
        self._matchers[key] = matcher
        while len(self._matchers) > _MATCHERS_KEPT:
            self._matchers.popitem(last=False)
        return matcher

    # -- stepping -------------------------------------------------------------------------------

    def step(self, request: StepRequest) -> StepResult:
        return self.step_many([request])[0]

    def step_many(self, requests: list[StepRequest]) -> list[StepResult]:
        """Advance every branch by one step (see step_each); the first error is raised."""
        outcomes = self.step_each(requests)
        for outcome in outcomes:
            if isinstance(outcome, EngineError):
                raise outcome
        return outcomes

    def step_each(self, requests: list[StepRequest]) -> list[StepResult | EngineError]:
        """Advance every branch by one step. Branches that append one token share one batched
        forward pass; forcing several tokens runs that branch alone (one pass for all of them).

        A request that is wrong (bad ids, a token its constraint refuses, a forced text that
        would end the branch midway) fails alone: its place in the list holds its EngineError
        and the other branches step. An error of the pass itself (out of memory) is raised."""
        if len({request.cache_key for request in requests}) != len(requests):
            raise InputError("A branch can only step once per call", field="branch")
        outcomes: dict[int, StepResult | EngineError] = {}
        with self._lock:
            prepared = {}
            for i, request in enumerate(requests):
                try:
                    self.check(request)
                    prepared[i] = (self._uncached(request), self._matcher(request))
                except EngineError as error:
                    outcomes[i] = error
            single = [i for i in prepared if requests[i].n_new == 1]
            if single:
                started = time.perf_counter()
                rows = [self._row(requests[i]) for i in single]
                logits = self.forward.last_logits(rows)  # (batch, vocab)
                elapsed = (time.perf_counter() - started) * 1000

                def finish(row_index: int, i: int) -> StepResult | EngineError:
                    row_logits = logits[row_index : row_index + 1]
                    return self._finish_or_error(requests[i], row_logits, prepared[i], elapsed)

                mapper = self._pool.map if len(single) > 1 else map
                finished = mapper(finish, range(len(single)), single)
                outcomes.update(zip(single, finished, strict=True))
            for i in prepared:
                if i not in outcomes:
                    request = requests[i]
                    started = time.perf_counter()
                    row = self._row(request, extra=request.force_ids[:-1])
                    logits = self.forward.logits(row, n_positions=request.n_new)
                    elapsed = (time.perf_counter() - started) * 1000
                    outcomes[i] = self._finish_or_error(request, logits, prepared[i], elapsed)
        return [outcomes[i] for i in range(len(requests))]

    def _finish_or_error(self, request, logits, prepared, elapsed) -> StepResult | EngineError:
        computed, matcher = prepared
        try:
            result = self._finish(request, logits, matcher, elapsed)
        except EngineError as error:
            return error
        return replace(result, computed_tokens=computed)

    def _uncached(self, request: StepRequest) -> int:
        """How many tokens this step will run through the model (its cost)."""
        appending = request.mode in APPENDING_MODES
        row = self._row(request, extra=request.force_ids[:-1] if appending else ())
        total = int(row.ids.shape[0])
        return total - min(self.cache.cached_length(row.branch, row.ids), total - 1)

    def _row(self, request: StepRequest, extra: tuple[int, ...] = ()) -> Row:
        ids = torch.tensor(request.context_ids + tuple(extra), dtype=torch.long)
        return Row(request.cache_key, ids, scoped(request.cache_scope, request.parent))

    def _finish(
        self,
        request: StepRequest,
        logits: torch.Tensor,
        matcher: ConstraintMatcher | None,
        forward_ms: float,
    ) -> StepResult:
        """Run the pipeline on each new position's logits (n_new, vocab), choose, record."""
        completion = list(request.completion_ids)
        joiner = self._joiner_over_tail(completion, request.stop, request.turn_start)
        tokens: list[StepToken] = []
        finish_reason = None
        for position in range(request.n_new):
            started = time.perf_counter()
            token, how, distribution = self._choose(request, logits[position], completion, matcher)
            completion.append(token)
            text_before = len(joiner.text)
            piece = joiner.add(token)
            elapsed = forward_ms / request.n_new + (time.perf_counter() - started) * 1000
            tokens.append(StepToken(len(completion) - 1, piece, how, distribution, elapsed))
            if request.mode == "turn":
                continue  # the reply starts after the turn; check_turn left it room
            finish_reason = self._finish_reason(
                request, completion, joiner.text, text_before, matcher
            )
            if finish_reason and position < request.n_new - 1:
                raise InputError(
                    f"The forced text would end the branch ({finish_reason.replace('_', ' ')}) "
                    f"after its token {position + 1} of {request.n_new}; force only up to "
                    "there. Nothing was added",
                    field="text",
                )
            if finish_reason:
                break
        return StepResult(request.branch, tuple(tokens), finish_reason)

    def _joiner_over_tail(
        self, completion: list[int], stop: tuple[str, ...], turn_start: int = 0
    ) -> TextJoiner:
        """A TextJoiner fed the last tokens of the completion: enough to join a character split
        over earlier tokens and to see a stop sequence end in the new ones, without re-reading
        the whole completion every step."""
        longest_stop = max((len(sequence.encode()) for sequence in stop), default=0)
        joiner = TextJoiner(self.loaded.tokenizer)
        reply = completion[turn_start:]  # a stop sequence counts within the current reply only
        for token_id in reply[-(_TAIL_TOKENS + longest_stop) :]:
            joiner.add(token_id)
        return joiner

    def _choose(
        self,
        request: StepRequest,
        logits: torch.Tensor,
        completion: list[int],
        matcher: ConstraintMatcher | None,
    ) -> tuple[int, str, Distribution]:
        step_index = len(completion)
        context = torch.tensor(list(request.prompt_ids) + completion, dtype=torch.long)
        result = run_pipeline(
            logits,
            request.params,
            context_ids=context,
            completion_ids=torch.tensor(completion, dtype=torch.long),
            valid_mask=matcher.allowed_mask() if matcher else None,
        )
        if request.mode in APPENDING_MODES:
            token = request.force_ids[step_index - len(request.completion_ids)]
            how = "forced" if request.mode == "force" else "turn"
            if not result.valid[token]:
                raise InputError(
                    f"The constraint does not allow token {token} here", field="token_id"
                )
        elif request.mode == "greedy" or request.params.is_greedy:
            token, how = int(result.p_final.argmax()), "greedy"
        else:
            token, how = choose(result, request.params, step_index), "sampled"
        if matcher is not None:
            matcher.consume([token], field="token_id")
        return token, how, summarize(result, self.loaded.tokenizer, request.top_n, token)

    def _finish_reason(
        self,
        request: StepRequest,
        completion: list[int],
        text: str,
        new_text_from: int,
        matcher: ConstraintMatcher | None,
    ) -> str | None:
        """Why the branch ends after its last token (None: it goes on). A stop sequence counts
        only where it ends in the text the new token added."""
        if completion[-1] in self.eos_ids:
            return "eos"
        for sequence in request.stop:
            if text.find(sequence, max(0, new_text_from - len(sequence) + 1)) >= 0:
                return "stop_sequence"
        if matcher is not None and matcher.is_stopped:
            return "constraint_complete"
        reply_length = len(completion) - request.turn_start
        if request.max_new_tokens is not None and reply_length >= request.max_new_tokens:
            return "max_tokens"
        if len(request.prompt_ids) + len(completion) >= self.loaded.info.context_length:
            return "context_full"
        return None

    def generate(
        self,
        request: StepRequest,
        on_step: Callable[[StepResult], bool | None] | None = None,
    ) -> list[StepResult]:
        """Step one branch (sample or greedy) until it finishes: EOS, a stop sequence,
        max_new_tokens, the context window or the constraint. on_step sees each result as it
        comes; returning False from it stops early."""
        if request.mode in APPENDING_MODES:
            raise InputError(
                "Generation samples or picks greedily; force a token with a step", "mode"
            )
        if request.max_new_tokens is None:
            raise InputError("Generating to the end needs max_new_tokens", "max_new_tokens")
        results: list[StepResult] = []
        completion = tuple(request.completion_ids)
        while True:
            result = self.step(replace(request, completion_ids=completion))
            results.append(result)
            completion += tuple(token.id for token in result.tokens)
            wanted_more = on_step(result) if on_step else None
            if result.finish_reason or wanted_more is False:
                return results
