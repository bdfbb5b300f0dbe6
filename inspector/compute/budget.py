"""A compute budget for all model work, per person and per minute.

Every computation that reaches a worker (tokenize, previews, steps, generation, attention,
heads, lens, attribution, jobs) is priced before it is queued, in *token passes*: roughly how
many tokens go through the whole model (an integrated-gradients run of 32 steps over 100
tokens is 32 × 100 × 2, forward and backward; one left to refine its path is charged its
first 32 steps up front and the steps it added once it has run). A request dearer than a
whole minute's budget is a 400 naming what makes it dear; a person over their minute's
budget gets a 429 saying when it refills. Visitors (not signed in) get a smaller budget;
visitors without a session cookie are counted by address, so a script cannot get a fresh
budget with every request, and all visitors behind one address share a cap (a classroom
behind one router fits under it).

The request is known through a context variable set by BudgetMiddleware, so the services
that dispatch work charge it without every front door having to pass the person along; work
started by the worker itself (no request) is not charged.
"""

from __future__ import annotations

import math
import time
from contextvars import ContextVar

from django.conf import settings
from django.core.cache import cache

from engine.limits import AUTO_FIRST_STEPS
from inspector.accounts import access
from inspector.errors import ServiceError
from inspector.protocol import COST_KEY

_current_request: ContextVar = ContextVar("tokenlens_budget_request", default=None)
WINDOW_SECONDS = 60
BYTES_PER_TOKEN = 3  # a conservative guess before the tokenizer has read the text


class BudgetMiddleware:
    """Makes the request available to charge() for as long as it is being answered."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            _current_request.reset(token)


def estimated_tokens(params: dict) -> int:
    text = params.get("text") or params.get("prompt") or ""
    system = params.get("system_prompt") or ""
    text_bytes = len(text.encode("utf-8", "replace")) + len(system.encode("utf-8", "replace"))
    return max(1, math.ceil(text_bytes / BYTES_PER_TOKEN)) + len(params.get("completion_ids") or ())


def price(kind: str, params: dict) -> tuple[int, str]:
    """(token passes, what they are made of, in words) for one computation."""
    if kind in ("tokenize", "vocabulary"):
        return 1, "a tokenization"
    tokens = estimated_tokens(params)
    about = f"a text of about {tokens:,} tokens"
    if kind == "attribution":
        integrated = params.get("method") == "integrated_gradients"
        steps = int(params.get("n_steps") or AUTO_FIRST_STEPS) if integrated else 1
        return tokens * steps * 2, f"{about} × n_steps {steps} × forward and backward"
    if kind in ACTUAL_COST:  # priced by what the worker ran (charge_actual); 1 to start
        return 1, "a reading from cached states"
    if kind == "attention":
        layers = len(set(params.get("layers") or ())) or 1
        return tokens + tokens * layers // 4, f"{about} and {layers} layers of maps"
    if kind == "attention_graph":  # priced as the maps it reads, though it sends only edges
        layers = _graph_layers(params)
        return tokens + tokens * layers // 4, f"{about} and {layers} layers of maps"
    return tokens, about


def _graph_layers(params: dict) -> int:
    """The layers an attention graph reads; all of them (the model's count, known only to a
    worker) when last_layer is left out: priced as 32."""
    first, last = params.get("first_layer") or 0, params.get("last_layer")
    return max(1, (32 if last is None else last + 1) - first)


def _lens_cost(result: dict) -> int:
    return max(1, int(result.get("position", 0)) + 1 - int(result.get("cached_tokens", 0)))


def _stepped_cost(result: dict) -> int:
    return int(result.pop(COST_KEY, 1) or 1)


# Kinds whose cost depends on what the worker had cached: (its result → tokens it ran).
def _refined_path_cost(result: dict) -> int:
    """1 + the passes an adaptive integrated-gradients path ran beyond the first round that
    price() charged (every other attribution: 1, nothing more)."""
    path = result.get("integrated_gradients") or {}
    if not path.get("adaptive"):
        return 1
    return 1 + max(0, path["n_steps"] - AUTO_FIRST_STEPS) * int(result["n_tokens"]) * 2


ACTUAL_COST = {
    "distribution": _stepped_cost,
    "branch_step": _stepped_cost,
    "logit_lens": _lens_cost,
    "attribution": _refined_path_cost,
}


def charge_actual(kind: str, result: dict, charged_to: list[str] | None = None) -> None:
    """After a computation: count what it really ran beyond what was charged up front (a step
    whose branch was no longer cached reads its whole context). It is not refused now, it has
    run; a person it takes over budget is refused on their next request. `charged_to`: the
    counters of the request that asked (payers()), for work finished after that request."""
    cost = ACTUAL_COST.get(kind)
    if cost is None:
        result.pop(COST_KEY, None)
        return
    extra = cost(result) - 1
    for name in payers() if charged_to is None else charged_to:
        if extra > 0:
            _spend(name, extra)


def payers() -> list[str]:
    """The counters the current request's work counts against: the person's, and a visitor's
    address's too (none outside a request)."""
    request = _current_request.get()
    if request is None:
        return []
    name, signed_in = _identity(request)
    return [name] if signed_in else [name, f"address:{_address(request)}"]


def generation_price(tokens_left: int) -> tuple[int, str]:
    return max(1, tokens_left), f"generating up to {tokens_left:,} tokens"


def identity(request) -> str:
    """Whose budget a request counts against (see _identity)."""
    return _identity(request)[0]


def _identity(request) -> tuple[str, bool]:
    """(whose budget, signed in?). A visitor without a session is counted by address."""
    user = access.user_of(request)
    if user is not None:
        return f"user:{user.pk}", True
    session = getattr(request, "session", None)
    came_with_cookie = settings.SESSION_COOKIE_NAME in request.COOKIES
    if came_with_cookie and session is not None and access.VISITOR_KEY in session:
        return f"visitor:{session[access.VISITOR_KEY]}", False
    return f"no-session:{_address(request)}", False


def _address(request) -> str:
    return request.META.get("REMOTE_ADDR") or "unknown"


def _counter(name: str) -> str:
    return f"tokenlens:budget:{name}:{int(time.time()) // WINDOW_SECONDS}"


def _check_room(name: str, units: int, budget: int, who: str) -> None:
    """ServiceError 429 when units do not fit in what is left of name's minute."""
    spent = cache.get(_counter(name), 0)
    if spent + units > budget:
        wait = WINDOW_SECONDS - int(time.time()) % WINDOW_SECONDS
        raise ServiceError(
            f"{who} used this minute's compute budget ({spent:,} of {budget:,} token passes; "
            f"this request needs {units:,}). It refills in {wait} s; nothing you made was lost.",
            field="rate_limit",
            status=429,
        )


def _spend(name: str, units: int) -> None:
    """Add units to name's counter for this minute (concurrent requests may overshoot by one
    request: the check and the addition are two cache calls)."""
    key = _counter(name)
    if cache.add(key, units, WINDOW_SECONDS * 2):
        return
    try:
        cache.incr(key, units)
    except ValueError:  # expired between add and incr
        cache.set(key, units, WINDOW_SECONDS * 2)


def charge(kind: str, params: dict, priced: tuple[int, str] | None = None) -> None:
    """Count this computation against the current request's person (nothing outside a request).
    ServiceError 400 when it costs more than a whole budget, 429 when over the budget now."""
    request = _current_request.get()
    if request is None:
        return
    units, what = priced or price(kind, params)
    name, signed_in = _identity(request)
    budget = settings.TOKENLENS_COMPUTE_BUDGET if signed_in else settings.TOKENLENS_VISITOR_BUDGET
    if units > budget:
        raise ServiceError(
            f"This request costs about {units:,} token passes ({what}); the most one request "
            f"may cost is {budget:,}. {HINTS.get(kind, HINTS['text'])}",
            field=_dear_field(kind, params),
        )
    counters = [(name, budget, "You have")]
    if not signed_in:
        shared = budget * settings.TOKENLENS_VISITORS_PER_ADDRESS
        counters.append((f"address:{_address(request)}", shared, "Visitors from your address have"))
    for counter, limit, who in counters:
        _check_room(counter, units, limit, who)
    for counter, _, _ in counters:
        _spend(counter, units)


HINTS = {
    "generate": "Lower the exploration's max new tokens, or step one token at a time.",
    "attribution": "Use fewer steps, a cheaper method or a shorter text.",
    "text": "Use a shorter text.",
}


def _dear_field(kind: str, params: dict) -> str:
    if kind == "generate":
        return "max_new_tokens"
    if kind == "attribution" and params.get("method") == "integrated_gradients":
        return "n_steps"
    return "prompt" if "prompt" in params and "text" not in params else "text"
