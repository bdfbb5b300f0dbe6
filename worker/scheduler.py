"""One scheduler per model in a worker process: it owns the model and batches continuously.

Every pending single-token step of every person (page and API steps, next-token previews, the
next token of each running generate-to-end) joins the next batched forward pass; requests that
arrive during a pass join the one after it. This is the loop llama.cpp's server runs over its
slots and vLLM's scheduler over its running queue: one thread takes what is waiting between
passes, so no request holds the model for anyone else.

- A step is a future: the caller's thread (a Celery thread, or a thread of the embedded
  worker) waits for it, then saves it. Steps wait in arrival order; a pass takes up to
  max_batch of them, one per branch, so nobody's step waits more than two passes while the
  batch has room.
- A generation is scheduler state, not a thread stepping alone: it adds one token per pass,
  is not taken again before its pause is over (a not-before time), and is asked whether it
  should stop right before each token. The thread that asked for it saves each token while
  the passes go on (the database never holds up the model's thread), then hands it back.
- Analyses (attention, heads, embeddings, the lens, attribution) use hooks, switch the
  attention implementation or read the key/value cache, so they must not run beside a pass.
  They take turns with the passes instead: the loop alternates one pass and one analysis, and
  a long analysis (integrated gradients) lets a pass of waiting steps run between its chunks
  (`yield_point`). A class's steps wait behind at most one analysis chunk.

Nothing here knows about Django: saving, broadcasting and Stop are the callers' callbacks.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

from engine.stepping import Stepper, StepRequest, StepResult
from engine.types import EngineError, InputError

logger = logging.getLogger(__name__)

MAX_BATCH = 64
STATS_EVERY_SECONDS = 10
# Gathering: a pass waits for the branches that stepped lately (up to half a pass, at most
# this long) instead of running for the few that happen to be waiting: on a busy processor a
# pass costs nearly as much for one row as for ten.
ACTIVE_SECONDS = 1.0
GATHER_MAX_SECONDS = 0.05
STOPPED = "stopped"


def seconds_until(expires_at: float | None) -> float | None:
    """A deadline (time.time(), None or inf: none) as the timeout left until it."""
    if expires_at is None or expires_at == math.inf:
        return None
    return max(expires_at - time.time(), 0.001)


class TooBusy(EngineError):
    """The model could not take a request before its asker's deadline (a 503: try again)."""

    status = 503

    def to_dict(self) -> dict:
        return {**super().to_dict(), "status": self.status}


MODEL_LEFT = (
    "The model left this worker while the request waited (removed from the catalog or loaded "
    "again from elsewhere); nothing was changed. Try again"
)


@dataclass
class _PendingStep:
    request: StepRequest
    future: Future
    expires_at: float = math.inf
    queued_at: float = field(default_factory=time.monotonic)


@dataclass
class Generation:
    """A generate-to-end in progress: the request for its next token, and its callbacks.

    on_result(result) saves and announces one token, on the thread that runs generate(); it
    returns False to end the generation (or raises, which ends it with that error).
    should_stop() is asked on the model's thread before every token."""

    request: StepRequest
    on_result: Callable[[StepResult], bool | None]
    should_stop: Callable[[], bool] = lambda: False
    pause_seconds: float = 0.0
    outbox: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    not_before: float = 0.0
    busy: bool = False  # its last token is being saved
    tokens: int = 0

    def ready(self, now: float) -> bool:
        return not self.busy and now >= self.not_before


@dataclass
class _Analysis:
    run: Callable[[Callable[[], None]], object]
    future: Future


@dataclass
class SchedulerStats:
    passes: int = 0
    rows: int = 0
    largest_batch: int = 0
    analyses: int = 0

    def to_dict(self) -> dict:
        return {
            **self.__dict__,
            "mean_batch": round(self.rows / self.passes, 2) if self.passes else 0.0,
        }


class ModelScheduler:
    """The one thread that runs one model's forward passes in this process."""

    def __init__(self, stepper: Stepper, max_batch: int = MAX_BATCH):
        self.stepper = stepper
        self.max_batch = max_batch
        self.stats = SchedulerStats()
        self._stats_logged_at, self._stats_logged = time.monotonic(), (0, 0)
        self._stepped_at: dict[str | None, float] = {}  # branch → when it last asked
        self._last_pass_seconds = 0.0
        self._steps: deque[_PendingStep] = deque()
        self._analyses: deque[_Analysis] = deque()
        self._generations: list[Generation] = []
        self._changed = threading.Condition()
        self._closed = False
        self._loop_thread = threading.Thread(
            target=self._loop, daemon=True, name=f"scheduler {stepper.loaded.spec.key}"
        )
        self._loop_thread.start()

    # -- what callers hand in -------------------------------------------------------------

    def submit(self, request: StepRequest, expires_at: float = math.inf) -> Future:
        """A future of the request's StepResult (or its EngineError). A future cancelled
        before its pass, or whose expires_at passed while it waited, is never computed."""
        pending = _PendingStep(request, Future(), expires_at)
        with self._changed:
            if self._closed:
                pending.future.set_exception(TooBusy(MODEL_LEFT))
                return pending.future
            self._stepped_at[request.cache_key] = pending.queued_at
            self._steps.append(pending)
            self._changed.notify()
        return pending.future

    def step(self, request: StepRequest, timeout: float | None = None) -> StepResult:
        """Step one branch in the next pass that has room. Not taken within `timeout` s: it
        never will be (TooBusy). Already in a pass by then: its result, once the pass ends."""
        expires_at = time.time() + timeout if timeout else math.inf
        future = self.submit(request, expires_at)
        try:
            return future.result(timeout)
        except TimeoutError:
            if not future.cancel():
                return future.result()
            message = (
                f"The model was busy with other people's work for {timeout:.0f} s and could "
                "not take this in time; nothing was changed. Try again in a moment"
            )
            raise TooBusy(message) from None

    def generate(self, generation: Generation) -> str:
        """Run a generation to its end, one token per pass, saving each token on this thread
        (generation.on_result) while the model serves everyone else; returns the finish
        reason, or "stopped". An error of a pass or of on_result ends it and is raised."""
        if generation.request.max_new_tokens is None:
            raise InputError("Generating to the end needs max_new_tokens", "max_new_tokens")
        with self._changed:
            if self._closed:
                raise TooBusy(MODEL_LEFT)
            self._generations.append(generation)
            self._changed.notify()
        try:
            while True:
                outcome = generation.outbox.get()
                if isinstance(outcome, BaseException):
                    raise outcome
                if outcome == STOPPED:
                    return STOPPED
                go_on = generation.on_result(outcome)
                if outcome.finish_reason or go_on is False:
                    return outcome.finish_reason or STOPPED
                self._resume(generation, outcome)
        finally:
            with self._changed:
                if generation in self._generations:
                    self._generations.remove(generation)

    def _resume(self, generation: Generation, outcome: StepResult) -> None:
        """The token is saved: the generation may take its next after its pause."""
        completion = generation.request.completion_ids + tuple(t.id for t in outcome.tokens)
        with self._changed:
            generation.request = replace(generation.request, completion_ids=completion)
            generation.not_before = time.monotonic() + generation.pause_seconds
            generation.busy = False
            self._changed.notify()

    def analysis(self, run: Callable[[Callable[[], None]], object]) -> Future:
        """Run `run(yield_point)` on the model between two passes; a future of what it returns.
        Calling yield_point() inside it lets one pass of waiting steps run (between chunks)."""
        item = _Analysis(run, Future())
        with self._changed:
            if self._closed:
                item.future.set_exception(TooBusy(MODEL_LEFT))
                return item.future
            self._analyses.append(item)
            self._changed.notify()
        return item.future

    def close(self) -> None:
        """End the model's thread once the work handed in so far is done (the model left
        this worker: removed from the catalog, or loaded again from elsewhere)."""
        with self._changed:
            self._closed = True
            self._changed.notify()

    # -- the loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        while self._wait_for_work():
            try:
                self._one_pass()
                self._one_analysis()
            except Exception:  # never let the model's thread die; callers got their error
                logger.exception("Scheduler pass failed")

    def _wait_for_work(self) -> bool:
        """True when there is work for a pass; False once closed with nothing left to do."""
        with self._changed:
            while True:
                now = time.monotonic()
                if self._analyses:
                    return True
                if self._steps:
                    gather = self._gather_seconds(now)
                    if gather <= 0:
                        return True
                    self._changed.wait(gather)
                    continue
                if self._closed and not self._generations:
                    return False
                waiting = [g.not_before for g in self._generations if not g.busy]
                if any(when <= now for when in waiting):
                    return True
                self._changed.wait(min(waiting) - now if waiting else None)

    def _gather_seconds(self, now: float) -> float:
        """How much longer the next pass waits for more rows (0: run it now). It waits only
        while fewer rows wait than branches stepped in the last ACTIVE_SECONDS, and never
        keeps the first waiting step more than half a pass (GATHER_MAX_SECONDS at most): one
        student alone never waits, a class fills its passes. Called with the lock held."""
        for key, when in list(self._stepped_at.items()):
            if now - when > ACTIVE_SECONDS:
                del self._stepped_at[key]
        rows = len(self._steps) + sum(g.ready(now) for g in self._generations)
        if rows >= min(self.max_batch, len(self._stepped_at)):
            return 0.0
        limit = min(self._last_pass_seconds / 2, GATHER_MAX_SECONDS)
        return limit - (now - self._steps[0].queued_at)

    def _take(self) -> tuple[list[_PendingStep], list[Generation]]:
        """What the next pass runs: ready generations, then waiting steps in arrival order, at
        most one row per branch and max_batch rows."""
        now = time.monotonic()
        with self._changed:
            generations = [g for g in self._generations if g.ready(now)][: self.max_batch]
            for generation in generations:
                generation.busy = True
            branches = {g.request.cache_key for g in generations}
            steps, later = [], deque()
            while self._steps and len(generations) + len(steps) < self.max_batch:
                pending = self._steps.popleft()
                if pending.request.cache_key in branches:
                    later.append(pending)
                    continue
                if time.time() > pending.expires_at:
                    pending.future.cancel()
                if pending.future.set_running_or_notify_cancel():
                    branches.add(pending.request.cache_key)
                    steps.append(pending)
            self._steps.extendleft(reversed(later))
        return steps, self._not_stopped(generations)

    def _not_stopped(self, generations: list[Generation]) -> list[Generation]:
        going = []
        for generation in generations:
            try:
                stop = generation.should_stop()
            except Exception as exc:  # e.g. Redis away: stop rather than run blind
                stop = exc
            if stop:
                self._drop(generation)
                generation.outbox.put(STOPPED if stop is True else stop)
            else:
                going.append(generation)
        return going

    def _one_pass(self) -> None:
        steps, generations = self._take()
        requests = [g.request for g in generations] + [s.request for s in steps]
        if not requests:
            return
        started = time.monotonic()
        try:
            outcomes = self.stepper.step_each(requests)
        except Exception as exc:  # the pass itself failed: everyone in it hears why
            outcomes = [exc] * len(requests)
        self._last_pass_seconds = time.monotonic() - started
        self.stats.passes += 1
        self.stats.rows += len(requests)
        self.stats.largest_batch = max(self.stats.largest_batch, len(requests))
        self._log_stats()
        for generation, outcome in zip(generations, outcomes, strict=False):
            generation.outbox.put(outcome)  # its own thread saves it
        for pending, outcome in zip(steps, outcomes[len(generations) :], strict=True):
            if isinstance(outcome, BaseException):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)

    def _log_stats(self) -> None:
        """Every STATS_EVERY_SECONDS while it runs: how full its passes were (the worker's log)."""
        now = time.monotonic()
        if now - self._stats_logged_at < STATS_EVERY_SECONDS:
            return
        passes, rows = self.stats.passes, self.stats.rows
        last_passes, last_rows = self._stats_logged
        self._stats_logged_at, self._stats_logged = now, (passes, rows)
        logger.info(
            "Scheduler %s: %d passes, %.1f rows a pass in the last %d s; since it started %s",
            self.stepper.loaded.spec.key,
            passes - last_passes,
            (rows - last_rows) / max(passes - last_passes, 1),
            STATS_EVERY_SECONDS,
            self.stats.to_dict(),
        )

    def yield_point(self) -> None:
        """Called by an analysis between its chunks (only ever on the loop's own thread)."""
        if threading.current_thread() is self._loop_thread:
            self._one_pass()

    def _one_analysis(self) -> None:
        with self._changed:
            item = self._analyses.popleft() if self._analyses else None
        if item is None or not item.future.set_running_or_notify_cancel():
            return
        self.stats.analyses += 1
        try:
            item.future.set_result(item.run(self.yield_point))
        except BaseException as exc:
            item.future.set_exception(exc)

    # -- generations ----------------------------------------------------------------------

    def _drop(self, generation: Generation) -> None:
        with self._changed:
            if generation in self._generations:
                self._generations.remove(generation)

    def running_generations(self) -> int:
        with self._changed:
            return len(self._generations)
