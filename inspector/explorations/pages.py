"""What every exploration view shares: the templates, reading an exploration or branch the
request may use (a refusal becomes the page's 403/404), the branch panel and the whole page."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from engine.params import PRESETS, SamplingParams
from inspector.accounts import access
from inspector.compute import services
from inspector.errors import ServiceError, page_refusal
from inspector.explorations import charts
from inspector.explorations import services as explorations
from inspector.explorations.conversation import REPLY_ENDINGS, messages_of
from inspector.explorations.forms import SLIDERS
from inspector.models import Branch

DEFAULTS = SamplingParams().to_dict()
LIST = "inspector/explorations.html"
PAGE = "inspector/exploration.html"


def usable_branch(request: HttpRequest, branch_id, need: str = "change") -> Branch:
    """The branch if the request may `need` it: 404 for strangers, 403 for read-only readers."""
    try:
        return explorations.get_branch(request, branch_id, need)
    except ServiceError as error:
        raise page_refusal(error) from None


def usable_exploration(request: HttpRequest, exploration_id, need: str = "view"):
    try:
        return explorations.get_exploration(request, exploration_id, need)
    except ServiceError as error:
        raise page_refusal(error) from None


def go_to(request: HttpRequest, url: str) -> HttpResponse:
    """A redirect htmx follows as a whole page (or a plain one without JavaScript)."""
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def branch_url(branch: Branch) -> str:
    return reverse("exploration", args=[branch.exploration_id]) + f"?branch={branch.pk}"


def viewer_of(request: HttpRequest, branch: Branch) -> access.Access:
    return access.exploration_access(request, branch.exploration)


def branch_context(branch: Branch, viewer: access.Access, **extra) -> dict:
    """What the branch panel needs; `viewer` (what the reader may do) hides the controls of a
    read-only reader."""
    steps = branch.sequence(with_candidates=False)
    return {
        "access": viewer,
        "conversation": messages_of(branch.exploration, steps),
        "reply_ended": branch.finish_reason in REPLY_ENDINGS,
        "exploration": branch.exploration,
        "branch": branch,
        "steps": steps,
        "surprisal": charts.surprisal(steps),
        "entropy": charts.entropy_line(steps),
        "generating": explorations.is_generating(branch),
        **extra,
    }


def inside_context(exploration) -> dict:
    """What the "Inside the model" panels need to call the API about this exploration's text."""
    models = services.catalog_entries()
    facts = next((entry for entry in models if entry["key"] == exploration.model_key), {})
    return {
        "model": exploration.model_key,
        "prompt": exploration.prompt,
        "system_prompt": exploration.system_prompt,
        "use_chat_template": exploration.use_chat_template,
        "params": exploration.params,
        "constraint": exploration.constraint,
        "facts": {name: facts.get(name) for name in ("n_layers", "n_heads", "n_kv_heads")},
        "models": [{"key": entry["key"], "label": entry["label"]} for entry in models],
    }


def whole_page(request: HttpRequest, branch: Branch, status: int = 200, **extra) -> HttpResponse:
    """The whole exploration page on `branch` (`extra`: e.g. the error of a form posted
    without JavaScript)."""
    exploration = branch.exploration
    sliders = [
        (name, label, low, high, step, exploration.params.get(name, DEFAULTS[name]))
        for name, label, low, high, step in SLIDERS
    ]
    presets = [
        (name, json.dumps({key: value for key, value in preset.to_dict().items() if key != "seed"}))
        for name, preset in PRESETS.items()
    ]
    context = branch_context(
        branch,
        access.exploration_access(request, exploration),
        tree=explorations.branch_tree(exploration),
        top_n_choices=explorations.TOP_N_CHOICES,
        sliders=sliders,
        presets=presets,
        inside=inside_context(exploration),
        **extra,
    )
    return render(request, PAGE, context, status=status)


def branch_panel(
    request: HttpRequest,
    branch: Branch,
    error: ServiceError | None = None,
    stepping: bool = False,
    status: int = 200,
):
    """The branch panel after an action (htmx), or the whole page (no JavaScript): redirected
    to after a success, shown with the error (and its status, 400 for bad input) after one.
    `stepping`: a pushed step is on its way (its outcome comes over the websocket)."""
    if not request.htmx:
        if error:
            return whole_page(request, branch, status=error.status, error=error)
        return redirect(branch_url(branch))
    context = branch_context(branch, viewer_of(request, branch), error=error, stepping=stepping)
    if stepping:
        context["stepping_fallback_s"] = settings.TOKENLENS_TASK_TIMEOUT + 15
    return render(request, f"{PAGE}#branch-view", context, status=422 if error else status)
