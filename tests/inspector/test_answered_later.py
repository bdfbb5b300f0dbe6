"""API steps through the ASGI app (as daphne serves them): queued with the request's own reply
channel, the request's thread ends, and the answer is built when the worker sends it
(inspector.api.answered_later). Same bodies and errors as a step waited for in a view."""

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import HttpCommunicator
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inspector.api import answered_later
from inspector.compute import dispatch
from inspector.explorations.branches import hold_branch, release_branch
from inspector.models import Branch, Step
from tests.conftest import make_person
from tokenlens_site.asgi import application

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]
SMOL = "smollm2-135m-instruct"


def _student_with_branch(**fields) -> tuple[str, str]:
    """(an API token's key, the main branch of a new exploration of that student)."""
    student = make_person("stu", "Student")
    key = Token.objects.create(user=student).key
    api = APIClient(HTTP_AUTHORIZATION=f"Token {key}")
    answer = api.post(
        "/api/v1/explorations/",
        {"model": SMOL, "prompt": "The capital of France is", "seed": 3, **fields},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    return key, answer.json()["branches"][0]["id"]


async def _post(path: str, key: str, payload: dict, timeout: float = 120):
    body = json.dumps(payload).encode()
    communicator = HttpCommunicator(
        application,
        "POST",
        path,
        body=body,
        headers=[
            (b"content-length", str(len(body)).encode()),
            (b"host", b"testserver"),
            (b"authorization", f"Token {key}".encode()),
            (b"content-type", b"application/json"),
        ],
    )
    response = await communicator.get_response(timeout=timeout)
    headers = {name.lower(): value for name, value in response["headers"]}
    return response["status"], json.loads(response["body"] or b"null"), headers


async def test_an_api_step_is_answered_by_the_worker_with_the_saved_steps():
    key, branch_id = await database_sync_to_async(_student_with_branch)()
    status, body, headers = await _post(f"/api/v1/branches/{branch_id}/steps/", key, {})
    assert status == 201, body
    assert answered_later.LATER_HEADER.lower().encode() not in headers
    assert headers[b"content-type"] == b"application/json"
    assert int(headers[b"content-length"]) > 0
    saved = await database_sync_to_async(
        lambda: list(Step.objects.filter(branch_id=branch_id).values_list("index", "token_id"))
    )()
    assert [(s["index"], s["token_id"]) for s in body["steps"]] == saved
    assert body["finish_reason"] is None

    status, body, _ = await _post(
        f"/api/v1/branches/{branch_id}/steps/", key, {"mode": "force", "text": " Paris and"}
    )
    assert status == 201 and [s["index"] for s in body["steps"]] == [1, 2], body


async def test_the_answer_matches_a_step_waited_for_in_the_view():
    """Same seed, same prefix: the answered-later step and the waited-for one agree."""
    key, later_branch = await database_sync_to_async(_student_with_branch)()
    _, body, _ = await _post(f"/api/v1/branches/{later_branch}/steps/", key, {})

    def waited():
        api = APIClient(HTTP_AUTHORIZATION=f"Token {key}")
        made = api.post(
            "/api/v1/explorations/",
            {"model": SMOL, "prompt": "The capital of France is", "seed": 3},
            format="json",
        ).json()
        return api.post(f"/api/v1/branches/{made['branches'][0]['id']}/steps/", {}, format="json")

    answer = await database_sync_to_async(waited)()
    assert answer.status_code == 201
    (later,), (waited,) = body["steps"], answer.json()["steps"]
    same = ("index", "token_id", "text", "piece", "mode", "rank")
    assert {k: later[k] for k in same} == {k: waited[k] for k in same}
    # The second run reads the prompt from the model's prefix cache: within the engine's 1e-4.
    assert later["p_base"] == pytest.approx(waited["p_base"], rel=1e-4)
    assert set(later) == set(waited)


async def test_a_worker_refusal_keeps_its_status_and_saves_nothing(settings):
    key, branch_id = await database_sync_to_async(_student_with_branch)()
    settings.TOKENLENS_MAX_STEPS_PER_BRANCH = 2
    status, body, _ = await _post(
        f"/api/v1/branches/{branch_id}/steps/", key, {"mode": "force", "text": " Paris, of course"}
    )
    assert status == 400 and "room" in body["error"]["message"], body
    assert set(body["error"]) == {"field", "message"}
    assert await database_sync_to_async(Step.objects.filter(branch_id=branch_id).count)() == 0


async def test_refusals_before_queueing_pass_through_unchanged():
    key, branch_id = await database_sync_to_async(_student_with_branch)()
    status, body, _ = await _post(f"/api/v1/branches/{branch_id}/steps/", key, {"mode": "fly"})
    assert status == 400 and body["error"]["field"] == "mode", body

    branch = await database_sync_to_async(Branch.objects.get)(pk=branch_id)
    token = await database_sync_to_async(hold_branch)(branch)
    try:
        status, body, _ = await _post(f"/api/v1/branches/{branch_id}/steps/", key, {})
    finally:
        release_branch(branch_id, token)
    assert status == 409 and "still under way" in body["error"]["message"], body

    status, body, _ = await _post(f"/api/v1/branches/{branch_id}/steps/", "not-a-key", {})
    assert status == 403 and "token" in body["error"]["message"].lower(), body


async def test_no_answer_in_time_is_a_503_naming_the_wait(settings, monkeypatch):
    key, branch_id = await database_sync_to_async(_student_with_branch)()
    settings.TOKENLENS_TASK_TIMEOUT = 1
    monkeypatch.setattr(answered_later, "ANSWER_GRACE_SECONDS", 0.5)
    never_answers = lambda *args, **kwargs: None  # noqa: E731  (a worker that never answers)
    monkeypatch.setattr(dispatch, "send", never_answers)
    status, body, _ = await _post(f"/api/v1/branches/{branch_id}/steps/", key, {}, timeout=30)
    assert status == 503 and "No worker answered within 1 s" in body["error"]["message"], body


async def test_a_conversation_turn_is_answered_later_with_its_turns():
    key, branch_id = await database_sync_to_async(_student_with_branch)(
        use_chat_template=True, max_new_tokens=2
    )
    for _ in range(2):
        status, body, _ = await _post(f"/api/v1/branches/{branch_id}/steps/", key, {})
        assert status == 201, body
    status, body, _ = await _post(f"/api/v1/branches/{branch_id}/turns/", key, {"text": "Why?"})
    assert status == 201, body
    assert [turn["role"] for turn in body["turns"]][-2:] == ["assistant", "user"]
    assert body["turns"][-1]["text"] == "Why?"
    assert body["steps"] and all(step["mode"] == "turn" for step in body["steps"])
