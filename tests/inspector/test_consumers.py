"""The websocket consumers: who may follow a page or an exploration, and what they receive."""

import re
import uuid
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from inspector import broadcast
from inspector.models import Job
from tokenlens_site.asgi import application

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def _done_job(page_id):
    return Job.objects.create(
        kind="tokenize",
        model_key="smollm2-135m-instruct",
        page_id=page_id,
        status=Job.Status.DONE,
        result={
            "count": 1,
            "used_chat_template": False,
            "tokens": [{"id": 1, "text": "hi", "start": 0, "end": 2, "special": False}],
        },
    )


def _session_and_page() -> tuple[str, str]:
    """A visitor's browser session and the id of a Tokens page it opened."""
    from django.contrib.sessions.backends.db import SessionStore

    from inspector.accounts.access import VISITOR_KEY, new_page_id

    session = SessionStore()
    session[VISITOR_KEY] = "visitor-" + uuid.uuid4().hex
    session.create()
    page_id = new_page_id(SimpleNamespace(session=session))
    return session.session_key, str(page_id)


async def _open_page_socket(page_id, session_key):
    headers = [(b"origin", b"http://127.0.0.1")]
    if session_key:
        headers.append((b"cookie", f"sessionid={session_key}".encode()))
    communicator = WebsocketCommunicator(application, f"/ws/pages/{page_id}/", headers=headers)
    connected, code = await communicator.connect(timeout=10)
    return communicator, connected, code


async def _connect():
    """(a connected page socket, its page id)."""
    session_key, page_id = await database_sync_to_async(_session_and_page)()
    communicator, connected, _ = await _open_page_socket(page_id, session_key)
    assert connected
    return communicator, page_id


async def test_only_the_session_that_opened_a_page_may_follow_it():
    _owner, page_id = await database_sync_to_async(_session_and_page)()
    other_session, _ = await database_sync_to_async(_session_and_page)()
    for session_key in ("", other_session):
        communicator, connected, code = await _open_page_socket(page_id, session_key)
        assert not connected and code == 4403
    guessed = str(uuid.uuid4())  # a well-formed id no session made
    communicator, connected, code = await _open_page_socket(guessed, other_session)
    assert not connected and code == 4403


async def test_a_job_update_arrives_as_html_for_that_page_only():
    (mine, page_id), (theirs, _) = await _connect(), await _connect()
    job = await database_sync_to_async(_done_job)(page_id)
    await database_sync_to_async(broadcast.job_updated)(page_id, job.pk)
    html = await mine.receive_from(timeout=5)
    assert f'id="job-{job.pk}"' in html and "1 token" in html
    assert await theirs.receive_nothing(timeout=0.3)
    await mine.disconnect()
    await theirs.disconnect()


async def test_messages_from_the_page_get_a_notice_not_an_error():
    communicator, _ = await _connect()
    await communicator.send_to(text_data="{not json")
    assert "only delivers updates" in await communicator.receive_from(timeout=5)
    await communicator.disconnect()


async def test_a_foreign_origin_is_refused():
    communicator = WebsocketCommunicator(
        application, f"/ws/pages/{uuid.uuid4()}/", headers=[(b"origin", b"http://evil.test")]
    )
    connected, _ = await communicator.connect(timeout=10)
    assert not connected


def _exploration_with_steps():
    from django.contrib.sessions.backends.db import SessionStore

    from inspector.models import Branch, Exploration, Step

    session = SessionStore()
    session.create()
    exploration = Exploration.objects.create(
        session_key=session.session_key, model_key="smollm2-135m-instruct", prompt="Hello"
    )
    branch = Branch.objects.create(exploration=exploration, label="main")
    Step.objects.create(
        branch=branch,
        index=0,
        token_id=11,
        text=" there",
        mode="sampled",
        p_base=0.9,
        p_final=0.95,
        rank=1,
        distribution={"tokens": [], "chosen": None},
    )
    return session.session_key, exploration, branch


async def _connect_exploration(exploration_id, session_key=None):
    headers = [(b"origin", b"http://127.0.0.1")]
    if session_key:
        headers.append((b"cookie", f"sessionid={session_key}".encode()))
    communicator = WebsocketCommunicator(
        application, f"/ws/explorations/{exploration_id}/", headers=headers
    )
    connected, code = await communicator.connect(timeout=10)
    return communicator, connected, code


async def _reply_channel(communicator) -> str:
    """The first message of an exploration's socket: its channel, which steps answer to."""
    message = await communicator.receive_from(timeout=5)
    assert 'id="reply-to"' in message and 'hx-swap-oob="true"' in message, message
    return re.search(r'value="([^"]+)"', message).group(1)


async def test_an_open_exploration_follows_its_branches_live():
    key, exploration, branch = await database_sync_to_async(_exploration_with_steps)()
    communicator, connected, _ = await _connect_exploration(exploration.pk, key)
    assert connected
    assert broadcast.is_reply_channel(await _reply_channel(communicator))
    await database_sync_to_async(broadcast.branch_changed)(exploration.pk, branch.pk)
    html = await communicator.receive_from(timeout=5)
    assert f'id="tokens-{branch.pk}"' in html and 'hx-swap-oob="true"' in html
    assert "there" in html and "gen b0" in html
    await database_sync_to_async(broadcast.generation_done)(exploration.pk, branch.pk, "stopped")
    html = await communicator.receive_from(timeout=5)
    assert 'id="branch-actions"' in html and "Generation stopped." in html
    await communicator.disconnect()


async def test_someone_else_cannot_follow_an_exploration():
    _key, exploration, _branch = await database_sync_to_async(_exploration_with_steps)()
    communicator, connected, code = await _connect_exploration(exploration.pk)
    assert not connected and code == 4403


def _visitor_with_exploration():
    """A visitor's browser (a test client with its session) and the main branch of an
    exploration of the real model it made."""
    from django.test import Client

    from tests.inspector.makers import explore_in_page

    client = Client()
    return client, explore_in_page(client)


async def _push_step(client, branch, reply_to, **form):
    post = database_sync_to_async(client.post)
    return await post(
        f"/branches/{branch.pk}/step/",
        {"mode": "greedy", "reply_to": reply_to, **form},
        HTTP_HX_REQUEST="true",
    )


async def _answer(communicator) -> str:
    """Messages until the answer to a pushed step (other pages' updates come too)."""
    while "data-answered" not in (message := await communicator.receive_from(timeout=60)):
        pass
    return message


@pytest.mark.model
async def test_a_step_pushed_by_the_page_is_answered_on_its_socket():
    client, branch = await database_sync_to_async(_visitor_with_exploration)()
    key = client.cookies["sessionid"].value
    communicator, connected, _ = await _connect_exploration(branch.exploration_id, key)
    assert connected
    reply_to = await _reply_channel(communicator)
    response = await _push_step(client, branch, reply_to)
    html = response.content.decode()
    assert response.status_code == 202 and 'data-testid="stepping"' in html, html[:2000]
    answer = await _answer(communicator)
    assert f'data-answered="{response["TokenLens-Step"]}"' in answer
    assert 'data-action="step"' in answer and 'role="alert"' not in answer
    assert f'id="tokens-{branch.pk}"' in answer and "gen b" in answer
    assert await database_sync_to_async(branch.steps.count)() == 1
    # The worker gave the branch back: the next step is not refused as busy.
    response = await _push_step(client, branch, reply_to)
    assert response.status_code == 202
    await _answer(communicator)
    assert await database_sync_to_async(branch.steps.count)() == 2
    await communicator.disconnect()


@pytest.mark.model
async def test_a_pushed_step_that_fails_in_the_worker_says_why_and_frees_the_branch():
    client, branch = await database_sync_to_async(_visitor_with_exploration)()
    key = client.cookies["sessionid"].value
    communicator, _, _ = await _connect_exploration(branch.exploration_id, key)
    reply_to = await _reply_channel(communicator)
    response = await _push_step(client, branch, reply_to, mode="force", token_id=10**7)
    assert response.status_code == 202
    answer = await _answer(communicator)
    assert 'role="alert"' in answer and "10000000" in answer.replace(",", ""), answer
    assert await database_sync_to_async(branch.steps.count)() == 0
    assert (await _push_step(client, branch, reply_to)).status_code == 202
    assert 'role="alert"' not in await _answer(communicator)
    await communicator.disconnect()


@pytest.mark.model
async def test_a_step_without_a_live_socket_waits_for_its_answer_as_before():
    client, branch = await database_sync_to_async(_visitor_with_exploration)()
    for reply_to in ("", "not a channel!", "x" * 200):
        response = await _push_step(client, branch, reply_to)
        assert response.status_code == 200 and "TokenLens-Step" not in response
    assert await database_sync_to_async(branch.steps.count)() == 3
