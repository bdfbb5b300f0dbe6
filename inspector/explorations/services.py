"""Use-cases of explorations, branches and steps, shared by the API, the pages and the consumer.

Who may see an exploration: its owner when signed in, else the browser session that made it.
Model work (validating the prompt, stepping) runs in the worker through services.compute_now;
the worker writes the steps (worker.generation) so every front door sees the same rows.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from inspector.accounts import access, audit
from inspector.compute.services import compute_now, hold_in_catalog
from inspector.errors import ServiceError
from inspector.explorations.branches import (  # noqa: F401  (the use-cases' one front door)
    BRANCH_BUSY,
    GENERATING,
    add_turn,
    branch_route,
    fork,
    generation_outcome,
    hold_branch,
    is_generating,
    one_operation,
    push_step,
    release_branch,
    start_generation,
    step,
    stop_generation,
    undo,
)
from inspector.explorations.conversation import turns_of
from inspector.models import Branch, Exploration


def explorations_for(request) -> QuerySet[Exploration]:
    """The explorations the request's user (or visitor session) owns."""
    return Exploration.objects.filter(access.owned_by(request))


def authorize(request, exploration: Exploration, need: str) -> access.Access:
    """The request's access to the exploration, if it allows `need` (view, change, own, fork,
    review). A stranger gets 404 (nothing tells them it exists); a reader who asks to change
    gets 403 with what they can do instead."""
    granted = access.exploration_access(request, exploration)
    if not granted.view:
        raise ServiceError("No such exploration", field="exploration", status=404)
    if not getattr(granted, need):
        message = {
            "change": "This exploration is read-only for you; fork it to make a copy of your own",
            "own": "Only the exploration's owner may rename, delete or share it",
            "fork": "You may read this exploration but not fork it",
            "review": "Only admins review shared explorations",
        }[need]
        raise ServiceError(message, field="exploration", status=403)
    return granted


def get_exploration(request, exploration_id, need: str = "change") -> Exploration:
    """The exploration, if the request may `need` it (see authorize)."""
    try:
        explorations = Exploration.objects.select_related("forked_from_lesson")
        exploration = explorations.get(pk=exploration_id)
    except (Exploration.DoesNotExist, ValueError, TypeError, ValidationError):
        raise ServiceError("No such exploration", field="exploration", status=404) from None
    authorize(request, exploration, need)
    return exploration


def get_branch(request, branch_id, need: str = "change") -> Branch:
    """The branch, if the request may `need` its exploration (see authorize)."""
    try:
        branch = Branch.objects.select_related("exploration__forked_from_lesson").get(pk=branch_id)
    except (Branch.DoesNotExist, ValueError, TypeError, ValidationError):
        raise ServiceError("No such branch", field="branch", status=404) from None
    try:
        authorize(request, branch.exploration, need)
    except ServiceError as error:
        if error.status == 404:
            error.field, error.message = "branch", "No such branch"
        raise
    return branch


def create_exploration(request, data: dict) -> Exploration:
    """Check the prompt with the model's tokenizer (empty, too long, no chat template), then
    save the exploration with its root branch (refused if its model, one added from the
    Models page, was removed meanwhile: compute.services.hold_in_catalog)."""
    try:
        compute_now(
            "tokenize",
            {
                "model": data["model_key"],
                "text": data["prompt"],
                "system_prompt": data.get("system_prompt") or None,
                "use_chat_template": data.get("use_chat_template", False),
            },
        )
    except ServiceError as error:
        if error.field == "text":
            error.field = "prompt"
        raise
    owner = request.user if request.user.is_authenticated else None
    with transaction.atomic():
        exploration = Exploration.objects.create(
            owner=owner, session_key="" if owner else access.visitor_key(request), **data
        )
        Branch.objects.create(exploration=exploration, label="main")
        hold_in_catalog(exploration.model_key)
    return exploration


def rename(exploration: Exploration, title: str) -> None:
    """A new title (trimmed, at most 200 characters); an empty one falls back to the prompt."""
    exploration.title = title.strip()[:200]
    exploration.save(update_fields=["title", "updated_at"])


def delete_exploration(request, exploration: Exploration) -> None:
    audit.record(request, "exploration.delete", exploration, f"deleted {exploration}")
    exploration.delete()


def delete_branch(branch: Branch) -> None:
    if branch.parent_id is None:
        raise ServiceError("The main branch cannot be deleted", field="branch")
    branch.delete()


def branch_tree(exploration: Exploration) -> list[tuple[Branch, int]]:
    """Every branch with its depth, parents before children (for an indented tree)."""
    children: dict = {}
    for branch in exploration.branches.order_by("created_at"):
        children.setdefault(branch.parent_id, []).append(branch)
    ordered: list[tuple[Branch, int]] = []

    def walk(parent_id, depth):
        for branch in children.get(parent_id, []):
            ordered.append((branch, depth))
            walk(branch.pk, depth + 1)

    walk(None, 0)
    return ordered


TOP_N_CHOICES = (10, 20, 50, 100)


def conversation_of(branch: Branch) -> list:
    """The branch's conversation (conversation.turns_of; [] without the chat template)."""
    return turns_of(branch.exploration, branch.sequence(with_candidates=False))


def next_distribution(branch: Branch, params: dict, top_n: int = 20) -> dict:
    """The distribution of the branch's next token under `params` (nothing is saved): what
    the sliders show before anyone steps. It says which position it is for: `after` (the
    branch's last step, None right after the prompt) and `completion_ids` (every token it
    follows), so a page can tell when it no longer describes the branch."""
    if is_generating(branch):
        raise ServiceError("The preview pauses while this branch is generating", field="branch")
    if top_n not in TOP_N_CHOICES:
        choices = ", ".join(map(str, TOP_N_CHOICES[:-1])) + f" or {TOP_N_CHOICES[-1]}"
        raise ServiceError(f"The panel shows {choices} candidates", field="top_n")
    exploration = branch.exploration
    steps = branch.sequence(with_candidates=False)
    completion_ids = [done.token_id for done in steps]
    distribution = compute_now(
        "distribution",
        {
            "model": exploration.model_key,
            "prompt": exploration.prompt,
            "system_prompt": exploration.system_prompt,
            "use_chat_template": exploration.use_chat_template,
            "completion_ids": completion_ids,
            "params": params,
            "constraint": exploration.constraint,
            "top_n": top_n,
            "cache_branch": str(branch.pk),
            "affinity": str(exploration.pk),
            "cache_scope": access.exploration_principal(exploration),
        },
    )
    after = steps[-1] if steps else None
    return {**distribution, "completion_ids": completion_ids, "after": after}


def set_params(exploration: Exploration, params: dict) -> None:
    """Use these sampling parameters for the next steps (each step records those in force)."""
    exploration.params = params
    exploration.save(update_fields=["params", "updated_at"])


def prompt_tokens(exploration: Exploration) -> dict:
    """Tokenization.to_dict() of the prompt as the model reads it."""
    return compute_now(
        "tokenize",
        {
            "model": exploration.model_key,
            "text": exploration.prompt,
            "system_prompt": exploration.system_prompt or None,
            "use_chat_template": exploration.use_chat_template,
        },
    )
