"""API steps through the ASGI app (as daphne serves them): queued with the request's own reply
channel, the request's thread ends, and the answer is built when the worker sends it
(inspector.explorations.answered_later). Same bodies and errors as a step waited for in a view."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inspector.compute import dispatch
from inspector.explorations import answered_later
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


def _headers(key: str, body: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-length", str(len(body)).encode()),
        (b"host", b"testserver"),
        (b"authorization", f"Token {key}".encode()),
        (b"content-type", b"application/json"),
    ]


async def _post(path: str, key: str, payload: dict, timeout: float = 120):
    body = json.dumps(payload).encode()
    headers = _headers(key, body)
    communicator = HttpCommunicator(application, "POST", path, body=body, headers=headers)
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
    await _assert_branch_given_back(branch_id)


async def _assert_branch_given_back(branch_id) -> None:
    """As after a step waited for in a view: the next one is not refused as "under way"."""
    branch = await database_sync_to_async(Branch.objects.get)(pk=branch_id)
    release_branch(branch_id, await database_sync_to_async(hold_branch)(branch))


async def test_a_client_gone_before_the_answer_is_sent_nothing_and_the_branch_is_free(
    settings, monkeypatch
):
    key, branch_id = await database_sync_to_async(_student_with_branch)()
    never_answers = lambda *args, **kwargs: None  # noqa: E731
    monkeypatch.setattr(dispatch, "send", never_answers)
    body = b"{}"
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": f"/api/v1/branches/{branch_id}/steps/",
        "query_string": b"",
        "headers": _headers(key, body),
    }
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": body})
    await asyncio.sleep(1.5)  # the step is queued and Django's part has ended
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(timeout=10)  # the request ends at once, not at the timeout
    await _assert_branch_given_back(branch_id)


def _session_of(key: str) -> str:
    client = Client()
    client.force_login(Token.objects.get(key=key).user)
    return client.cookies["sessionid"].value


async def test_a_page_open_on_the_exploration_does_not_hold_up_the_api_answer(settings):
    """With channels_redis, one process reads one channel prefix at a time: the API's answer
    and the page's events share the layer's prefix, so neither waits behind the other."""
    settings.TOKENLENS_TASK_TIMEOUT = 30
    key, branch_id = await database_sync_to_async(_student_with_branch)()
    branch = await database_sync_to_async(Branch.objects.get)(pk=branch_id)
    session = await database_sync_to_async(_session_of)(key)
    page = WebsocketCommunicator(
        application,
        f"/ws/explorations/{branch.exploration_id}/",
        headers=[(b"origin", b"http://127.0.0.1"), (b"cookie", f"sessionid={session}".encode())],
    )
    connected, _ = await page.connect(timeout=10)
    assert connected
    assert 'id="reply-to"' in await page.receive_from(timeout=5)
    status, body, _ = await _post(f"/api/v1/branches/{branch_id}/steps/", key, {}, timeout=60)
    assert status == 201, body
    assert branch_id in await page.receive_from(timeout=10)  # the page heard the new token
    await page.disconnect()


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


async def test_switched_off_an_api_step_waits_in_a_thread_with_the_same_answer(settings):
    settings.TOKENLENS_API_ANSWERED_LATER = False
    key, branch_id = await database_sync_to_async(_student_with_branch)()
    status, body, _ = await _post(f"/api/v1/branches/{branch_id}/steps/", key, {"mode": "greedy"})
    assert status == 201 and [step["index"] for step in body["steps"]] == [0], body
