"""Helpers the inspector tests share: explorations recorded through the API with the real
SmolLM2, their export files, lessons, and counting rows (fixtures over them: conftest.py)."""

import copy
import json

from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from inspector.models import Branch, Exploration, Lesson, LessonItem, Step
from inspector.transfer import services as transfer

SMOL = "smollm2-135m-instruct"
PROMPT = "The capital of France is"
IMPORT = "/api/v1/explorations/import/"
SMOL_VOCABULARY = 49152  # SmolLM2's config.vocab_size

_made_once: dict[str, dict] = {}


def step(api, branch_id, **payload):
    response = api.post(f"/api/v1/branches/{branch_id}/steps/", payload, "json")
    assert response.status_code == 201, response.content
    return response.json()["steps"]


def fork(api, branch_id, at_index, token_id):
    response = api.post(
        f"/api/v1/branches/{branch_id}/fork/", {"at_index": at_index, "token_id": token_id}, "json"
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def record_exploration(api) -> Exploration:
    """main: greedy, sampled, sampled, greedy; "branch 2" forks main at 1 with its second
    choice, then samples; "branch 3" forks branch 2 at 2."""
    created = api.post(
        "/api/v1/explorations/",
        {"model": SMOL, "prompt": PROMPT, "params": {"temperature": 0.8, "seed": 3}},
        "json",
    ).json()
    main = created["branches"][0]["id"]
    steps = [
        *step(api, main, mode="greedy"),
        *step(api, main),
        *step(api, main),
        *step(api, main, mode="greedy"),
    ]
    child = fork(api, main, 1, steps[1]["distribution"]["tokens"][1]["id"])
    step(api, child)
    fork(api, child, 2, 13)
    return Exploration.objects.get(pk=created["id"])


def export_once(name: str, make) -> dict:
    """A real export made once per test session (stepping takes seconds); tests get a copy."""
    if name not in _made_once:
        exploration = make(APIClient())
        _made_once[name] = transfer.export_exploration(exploration)
        exploration.delete()
    return copy.deepcopy(_made_once[name])


def without_ids(data: dict) -> dict:
    """The export with branch ids replaced by positions and no exported_at (what must match)."""
    data = copy.deepcopy(data)
    data.pop("exported_at")
    positions = {branch["id"]: position for position, branch in enumerate(data["branches"])}
    for branch in data["branches"]:
        branch["id"] = positions[branch["id"]]
        branch["parent"] = positions.get(branch["parent"])
    return data


def branch_lines(exploration: Exploration) -> list[list[int]]:
    return [branch.token_ids() for branch in exploration.branches.order_by("created_at")]


def file_lines(data: dict) -> list[list[int]]:
    """Every branch's whole token ids, read from an export file."""
    lines: dict[str, list[int]] = {}
    for branch in data["branches"]:
        inherited = lines[branch["parent"]][: branch["fork_index"]] if branch["parent"] else []
        lines[branch["id"]] = inherited + [step["token_id"] for step in branch["steps"]]
    return list(lines.values())


def row_counts() -> tuple[int, int, int]:
    return Exploration.objects.count(), Branch.objects.count(), Step.objects.count()


def request_as(user=None):
    """A request as the views see it: a user (or a visitor) with a browser session."""
    request = RequestFactory().post("/")
    request.user = user or AnonymousUser()
    request.session = SessionStore()
    return request


def small_recording(api) -> Exploration:
    """main has 2 steps, "branch 2" starts at its end with one forced token."""
    created = api.post("/api/v1/explorations/", {"model": SMOL, "prompt": PROMPT}, "json")
    main = created.json()["branches"][0]["id"]
    step(api, main, mode="greedy")
    step(api, main)
    fork(api, main, 2, 13)
    return Exploration.objects.get(pk=created.json()["id"])


def make_exploration(api, prompt: str, title: str, steps: int = 2) -> Exploration:
    """An exploration made through the API, stepped greedily `steps` times."""
    body = {"model": SMOL, "prompt": prompt, "title": title, "params": {"temperature": 0}}
    response = api.post("/api/v1/explorations/", body, "json")
    assert response.status_code == 201, response.content
    exploration = Exploration.objects.get(pk=response.json()["id"])
    for _ in range(steps):
        step(api, exploration.root.pk, mode="greedy")
    return exploration


def explore_in_page(client: Client, **fields) -> Branch:
    """Through the new-exploration form (as a page posts it, no chat template): the main branch
    of an exploration of the real SmolLM2 with plain sampling and seed 4."""
    made = client.post(
        "/explore/new/",
        {
            "model": "smollm2-135m-instruct",
            "prompt": "The capital of France is",
            "temperature": 1,
            "top_k": 0,
            "top_p": 1,
            "min_p": 0,
            "repetition_penalty": 1,
            "presence_penalty": 0,
            "frequency_penalty": 0,
            "seed": 4,
            "max_new_tokens": 20,
            **fields,
        },
    )
    assert made.status_code == 302, made.content.decode()[:2000]
    return Branch.objects.get(exploration_id=made.url.rstrip("/").split("/")[-1])


def browser(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def make_lesson(owner, visibility=Lesson.Visibility.PRIVATE, explorations=(), **fields):
    lesson = Lesson.objects.create(
        owner=owner, title=fields.pop("title", "Greedy decoding"), visibility=visibility, **fields
    )
    for position, exploration in enumerate(explorations):
        LessonItem.objects.create(lesson=lesson, exploration=exploration, position=position)
    return lesson


def item_titles(lesson: Lesson) -> list[str]:
    return [item.exploration.title for item in lesson.items.order_by("position")]


def upload(data) -> SimpleUploadedFile:
    content = data if isinstance(data, bytes) else json.dumps(data).encode()
    return SimpleUploadedFile("exploration.json", content, "application/json")
