"""The exploration pages: thin views over inspector.explorations.services (the same use-cases
as the API)."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from engine.params import PRESETS, SamplingParams
from inspector import broadcast
from inspector.accounts import access
from inspector.api.errors import first_error
from inspector.api.serializers import SamplingParamsSerializer
from inspector.compute import limits, services
from inspector.errors import ServiceError, page_refusal
from inspector.explorations import charts
from inspector.explorations import services as explorations
from inspector.explorations.examples import EXAMPLES
from inspector.explorations.forms import SLIDERS, ExplorationForm
from inspector.explorations.serializers import ExplorationSerializer, StepRequestSerializer
from inspector.models import Branch

DEFAULTS = SamplingParams().to_dict()
LIST = "inspector/explorations.html"
PAGE = "inspector/exploration.html"


def _branch(request: HttpRequest, branch_id, need: str = "change") -> Branch:
    """The branch if the request may `need` it: 404 for strangers, 403 for read-only readers."""
    try:
        return explorations.get_branch(request, branch_id, need)
    except ServiceError as error:
        raise page_refusal(error) from None


def _exploration(request: HttpRequest, exploration_id, need: str = "view"):
    try:
        return explorations.get_exploration(request, exploration_id, need)
    except ServiceError as error:
        raise page_refusal(error) from None


def _list(request: HttpRequest, form: ExplorationForm, status: int = 200) -> HttpResponse:
    mine = explorations.explorations_for(request)
    return render(request, LIST, {"form": form, "explorations": mine}, status=status)


@require_GET
def exploration_list(request: HttpRequest) -> HttpResponse:
    return _list(request, ExplorationForm())


@require_POST
def exploration_create(request: HttpRequest) -> HttpResponse:
    form = ExplorationForm(request.POST)
    if form.is_valid():
        serializer = ExplorationSerializer(data=form.payload())
        if serializer.is_valid():
            try:
                data = dict(serializer.validated_data)
                exploration = explorations.create_exploration(request, data)
                url = reverse("exploration", args=[exploration.pk])
                return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
            except ServiceError as error:
                form.add_api_error(error.field, error.message)
        else:
            form.add_api_error(*first_error(serializer.errors))
    status = 422 if request.htmx else 400
    if request.htmx:
        return render(request, f"{LIST}#exploration-form", {"form": form}, status=status)
    return _list(request, form, status=status)


@require_POST
def example_start(request: HttpRequest, key: str) -> HttpResponse:
    """A first visit's one click: an example exploration, already writing (¼ s a token)."""
    example = EXAMPLES.get(key)
    if example is None:
        raise Http404("No such example")
    serializer = ExplorationSerializer(data=example.request())
    serializer.is_valid(raise_exception=True)
    try:
        exploration = explorations.create_exploration(request, dict(serializer.validated_data))
        limits.check_generation_rate(request)
        explorations.start_generation(exploration.root, 250)
    except ServiceError as error:  # no worker, over budget: said beside the examples
        status = 422 if request.htmx else error.status
        return render(request, "inspector/home.html#example-error", {"error": error}, status=status)
    url = reverse("exploration", args=[exploration.pk])
    if request.POST.get("tour"):
        url += "?tour=1"
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def branch_context(branch: Branch, viewer: access.Access, **extra) -> dict:
    """What the branch panel needs; `viewer` (what the reader may do) hides the controls of a
    read-only reader."""
    steps = branch.sequence(with_candidates=False)
    return {
        "access": viewer,
        "exploration": branch.exploration,
        "branch": branch,
        "steps": steps,
        "surprisal": charts.surprisal(steps),
        "entropy": charts.entropy_line(steps),
        "generating": explorations.is_generating(branch),
        **extra,
    }


@require_GET
def exploration_page(request: HttpRequest, exploration_id) -> HttpResponse:
    exploration = _exploration(request, exploration_id)
    branch_id = request.GET.get("branch")
    branch = _branch(request, branch_id, "view") if branch_id else exploration.root
    if branch.exploration_id != exploration.pk:
        raise Http404("That branch belongs to another exploration")
    return _page(request, branch)


def _page(request: HttpRequest, branch: Branch, status: int = 200, **extra) -> HttpResponse:
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


def _viewer(request: HttpRequest, branch: Branch) -> access.Access:
    return access.exploration_access(request, branch.exploration)


def _branch_view(
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
            return _page(request, branch, status=error.status, error=error)
        url = reverse("exploration", args=[branch.exploration_id]) + f"?branch={branch.pk}"
        return redirect(url)
    context = branch_context(branch, _viewer(request, branch), error=error, stepping=stepping)
    if stepping:
        context["stepping_fallback_s"] = settings.TOKENLENS_TASK_TIMEOUT + 15
    return render(request, f"{PAGE}#branch-view", context, status=422 if error else status)


ASKED_HEADER = "TokenLens-Step"  # a pushed step's id (static/tokenlens/app.js)


@require_POST
def branch_step(request: HttpRequest, branch_id) -> HttpResponse:
    """One step (sample, greedy or force), the form checked by the API's serializer."""
    branch = _branch(request, branch_id)

    reply_to = request.POST.get("reply_to", "")
    pushed = bool(request.htmx) and broadcast.is_reply_channel(reply_to)
    asked = ""

    def step():
        nonlocal asked
        serializer = StepRequestSerializer(data=request.POST)
        if not serializer.is_valid():
            raise ServiceError(*reversed(first_error(serializer.errors)))
        limits.check_generation_rate(request)
        data = serializer.validated_data
        mode, token_id, text = data["mode"], data.get("token_id"), data.get("text") or None
        if pushed:  # the page's websocket hears the outcome: nothing waits here
            asked = explorations.push_step(branch, mode, token_id, text, reply_to)
        else:
            explorations.step(branch, mode, token_id, text)

    try:
        step()
    except ServiceError as error:
        return _branch_view(request, branch, error)
    if pushed:
        response = _branch_view(request, branch, stepping=True, status=202)
        response[ASKED_HEADER] = asked  # a page that already heard the answer keeps it
        return response
    return _branch_view(request, branch)


def _after(request: HttpRequest, branch: Branch, action) -> HttpResponse:
    """Run an action on the branch, then show the branch (with the error, if any)."""
    try:
        action()
    except ServiceError as error:
        return _branch_view(request, branch, error)
    return _branch_view(request, branch)


@require_POST
def branch_undo(request: HttpRequest, branch_id) -> HttpResponse:
    branch = _branch(request, branch_id)
    return _after(request, branch, lambda: explorations.undo(branch))


@require_POST
def branch_generate(request: HttpRequest, branch_id) -> HttpResponse:
    branch = _branch(request, branch_id)
    delay_ms = request.POST.get("delay_ms", "0")

    def generate():
        limits.check_generation_rate(request)
        explorations.start_generation(branch, delay_ms)

    return _after(request, branch, generate)


@require_POST
def branch_stop(request: HttpRequest, branch_id) -> HttpResponse:
    branch = _branch(request, branch_id)
    explorations.stop_generation(branch)
    return _branch_view(request, branch)


@require_POST
def branch_fork(request: HttpRequest, branch_id) -> HttpResponse:
    branch = _branch(request, branch_id)
    try:
        at_index, token_id = int(request.POST["at_index"]), int(request.POST["token_id"])
        limits.check_generation_rate(request)
        child = explorations.fork(branch, at_index, token_id)
    except (KeyError, ValueError):
        return _branch_view(request, branch, ServiceError("Choose a token to branch with"))
    except ServiceError as error:
        return _branch_view(request, branch, error)
    url = reverse("exploration", args=[branch.exploration_id]) + f"?branch={child.pk}"
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_POST
def branch_rename(request: HttpRequest, branch_id) -> HttpResponse:
    branch = _branch(request, branch_id)
    label = request.POST.get("label", "").strip()[:100]
    if label:
        Branch.objects.filter(pk=branch.pk).update(label=label)
    url = reverse("exploration", args=[branch.exploration_id]) + f"?branch={branch.pk}"
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_POST
def branch_delete(request: HttpRequest, branch_id) -> HttpResponse:
    branch = _branch(request, branch_id)
    url = reverse("exploration", args=[branch.exploration_id])
    try:
        explorations.delete_branch(branch)
    except ServiceError as error:
        return _branch_view(request, branch, error)
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_GET
def step_alternatives(request: HttpRequest, branch_id, index: int) -> HttpResponse:
    branch = _branch(request, branch_id, "view")
    steps = branch.sequence()
    if index >= len(steps):
        raise Http404("This branch has no token at that position")
    step = steps[index]
    candidates = list(step.distribution["tokens"])
    chosen = step.distribution.get("chosen")
    if chosen and all(candidate["id"] != step.token_id for candidate in candidates):
        candidates.append(chosen)  # a sampled token from outside the top-N
    viewer = _viewer(request, branch)
    context = {"branch": branch, "step": step, "candidates": candidates, "access": viewer}
    return render(request, f"{PAGE}#alternatives", context)


def _slider_params(query) -> dict:
    """Sampling params from the sliders, validated as the API validates them."""
    names = [name for name, *_ in SLIDERS] + ["seed"]
    raw = {name: query[name] for name in names if query.get(name, "") != ""}
    serializer = SamplingParamsSerializer(data=raw)
    if not serializer.is_valid():
        raise ServiceError(*reversed(first_error(serializer.errors)))
    return serializer.validated_data


@require_GET
def branch_next(request: HttpRequest, branch_id) -> HttpResponse:
    """The next token's distribution under the sliders' settings; nothing is generated."""
    branch = _branch(request, branch_id, "view")
    if explorations.is_generating(branch):
        return render(request, f"{PAGE}#next-distribution", {"generating": True})
    try:
        params = {**branch.exploration.params, **_slider_params(request.GET)}
        top_n = _whole_number(request.GET.get("top_n", "20"), "top_n")
        distribution = explorations.next_distribution(branch, params, top_n)
    except ServiceError as error:
        return render(request, f"{PAGE}#next-distribution", {"error": error})
    viewer = _viewer(request, branch)
    if viewer.change:  # a presenter's preview is the live class's too
        broadcast.tell(
            broadcast.preview_shown,
            request=request,
            branch=branch,
            distribution=distribution,
            params=params,
        )
    context = {"distribution": distribution, "branch": branch, "access": viewer}
    return render(request, f"{PAGE}#next-distribution", context)


def _whole_number(text: str, field: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ServiceError(f"{field} must be a whole number, not {text[:20]!r}", field) from None


@require_POST
def exploration_params(request: HttpRequest, branch_id) -> HttpResponse:
    """Keep the sliders' settings for the next steps of this exploration."""
    branch = _branch(request, branch_id)
    try:
        params = {**branch.exploration.params, **_slider_params(request.POST)}
    except ServiceError as error:
        return render(request, f"{PAGE}#next-distribution", {"error": error}, status=422)
    explorations.set_params(branch.exploration, params)
    if request.htmx:  # the page stays; it says what the next steps use
        context = {"params": params, "kept_json": json.dumps(params)}
        return render(request, f"{PAGE}#params-kept", context)
    url = reverse("exploration", args=[branch.exploration_id]) + f"?branch={branch.pk}"
    return redirect(url)


@require_GET
def branch_view(request: HttpRequest, branch_id) -> HttpResponse:
    """The branch panel as the database has it now (polling fallback, websocket reconnects)."""
    branch = _branch(request, branch_id, "view")
    context = branch_context(branch, _viewer(request, branch))
    if request.GET.get("was_generating") and not context["generating"]:
        context["notice"] = explorations.generation_outcome(branch)
    return render(request, f"{PAGE}#branch-view", context)


@require_GET
def branch_tree(request: HttpRequest, branch_id) -> HttpResponse:
    """The Branches panel as the database has it now, with `branch` as the current one (the
    page re-reads it when a branch ends or goes on again)."""
    branch = _branch(request, branch_id, "view")
    context = {
        "access": _viewer(request, branch),
        "exploration": branch.exploration,
        "branch": branch,
        "tree": explorations.branch_tree(branch.exploration),
    }
    return render(request, f"{PAGE}#branch-tree", context)


@require_GET
def branch_compare(request: HttpRequest, exploration_id) -> HttpResponse:
    """Two branches side by side from where they diverge, with their log-probabilities."""
    exploration = _exploration(request, exploration_id)
    sides = []
    for key in ("a", "b"):
        branch_id = request.GET.get(key)
        branch = _branch(request, branch_id, "view") if branch_id else exploration.root
        if branch.exploration_id != exploration.pk:
            raise Http404("That branch belongs to another exploration")
        sides.append((branch, branch.sequence(with_candidates=False)))
    shared = charts.divergence(sides[0][1], sides[1][1])
    columns = [
        {
            "branch": branch,
            "after": steps[shared:],
            "score": charts.sequence_score(steps),
            "score_after": charts.sequence_score(steps[shared:]),
        }
        for branch, steps in sides
    ]
    context = {
        "exploration": exploration,
        "shared_steps": sides[0][1][:shared],
        "columns": columns,
        "branches": exploration.branches.all(),
    }
    return render(request, "inspector/compare.html", context)


@require_POST
def exploration_rename(request: HttpRequest, exploration_id) -> HttpResponse:
    exploration = _exploration(request, exploration_id, "change")
    explorations.rename(exploration, request.POST.get("title", ""))
    url = reverse("exploration", args=[exploration.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_POST
def exploration_delete(request: HttpRequest, exploration_id) -> HttpResponse:
    exploration = _exploration(request, exploration_id, "change")
    explorations.delete_exploration(request, exploration)
    url = reverse("explorations")
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_GET
def prompt_tokens(request: HttpRequest, exploration_id) -> HttpResponse:
    """The prompt as the model reads it (chat template applied), token by token."""
    exploration = _exploration(request, exploration_id)
    try:
        tokens = explorations.prompt_tokens(exploration)
    except ServiceError as error:
        return render(request, f"{PAGE}#prompt-tokens", {"error": error})
    return render(request, f"{PAGE}#prompt-tokens", {"tokenization": tokens})
