"""The live session's websocket: who may listen, the catch-up on (re)connect, and events rendered
once per audience whatever the number of followers."""

import json
import re
from unittest import mock

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from inspector import broadcast
from inspector.live import relay
from tests.conftest import client_for
from tests.inspector.makers import browser, make_lesson
from tokenlens_site.asgi import application

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.model]


def _class(instructor, explorations):
    """A running session of a two-item lesson: (its snapshot, the presenter's browser)."""
    lesson = make_lesson(instructor, explorations=explorations, title="Live")
    teacher = browser(instructor)
    started = client_for(instructor).post(f"/api/v1/lessons/{lesson.pk}/live/", {}, "json")
    assert started.status_code == 201
    return started.json(), teacher


def _follower(code, user=None):
    client = browser(user)
    assert client.get(f"/live/{code}/").status_code == 200
    return client


async def _socket(session_id, client=None):
    headers = [(b"origin", b"http://127.0.0.1")]
    if client is not None:
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    communicator = WebsocketCommunicator(application, f"/ws/live/{session_id}/", headers=headers)
    connected, code = await communicator.connect(timeout=10)
    return communicator, connected, code


def _state(html: str) -> dict:
    found = re.search(r'id="live-state" hidden data-state="([^"]*)"', html)
    assert found, html[:500]
    return json.loads(found.group(1).replace("&quot;", '"'))


@pytest.fixture
def explorations(instructor, two_explorations):
    return two_explorations


async def test_a_follower_catches_up_at_once_and_hears_every_change(instructor, explorations):
    live, teacher = await database_sync_to_async(_class)(instructor, explorations)
    follower = await database_sync_to_async(_follower)(live["code"])
    communicator, connected, _ = await _socket(live["id"], follower)
    assert connected
    first = await communicator.receive_from(timeout=5)
    assert f'id="tokens-{live["branch"]}"' in first and _state(first)["branch"] == live["branch"]
    api = await database_sync_to_async(client_for)(instructor)
    post = database_sync_to_async(api.post)
    await post(f"/api/v1/live/{live['id']}/state/", {"selection": [1]}, "json")
    state = _state(await communicator.receive_from(timeout=5))
    assert state["selection"] == [1] and state["version"] == live["version"] + 1
    await database_sync_to_async(broadcast.branch_changed)(explorations[0].pk, live["branch"], 1)
    tokens = await communicator.receive_from(timeout=5)
    assert f'id="tail-{live["branch"]}-1"' in tokens and 'id="live-activity"' in tokens
    await post(f"/api/v1/live/{live['id']}/end/")
    assert 'data-testid="live-ended"' in await communicator.receive_from(timeout=5)
    assert (await communicator.receive_output(timeout=5))["type"] == "websocket.close"


async def test_strangers_and_sessions_not_joined_are_refused(instructor, explorations, student):
    live, _ = await database_sync_to_async(_class)(instructor, explorations)
    for client in (None, await database_sync_to_async(browser)(student)):
        _, connected, code = await _socket(live["id"], client)
        assert not connected and code == 4403


async def test_the_presenter_hears_who_joins_and_who_breaks_away(instructor, explorations):
    live, teacher = await database_sync_to_async(_class)(instructor, explorations)
    communicator, connected, _ = await _socket(live["id"], teacher)
    assert connected
    assert "Nobody has joined yet" in await communicator.receive_from(timeout=5)
    follower = await database_sync_to_async(_follower)(live["code"])
    joined = await communicator.receive_from(timeout=5)
    assert 'data-following="yes"' in joined and "Visitor 1" in joined
    await database_sync_to_async(follower.post)(f"/live/{live['code']}/break-away/")
    away = await communicator.receive_from(timeout=5)
    assert 'data-following="no"' in away and "still the same text" in away
    await communicator.disconnect()


async def test_an_event_is_rendered_once_for_all_followers(instructor, explorations):
    live, _ = await database_sync_to_async(_class)(instructor, explorations)
    sockets = []
    for _ in range(3):
        follower = await database_sync_to_async(_follower)(live["code"])
        communicator, connected, _ = await _socket(live["id"], follower)
        assert connected
        await communicator.receive_from(timeout=5)  # the catch-up
        sockets.append(communicator)
    with mock.patch.object(relay, "follower_tokens", wraps=relay.follower_tokens) as render:
        await database_sync_to_async(broadcast.branch_changed)(explorations[0].pk, live["branch"])
        for communicator in sockets:
            assert f'id="tokens-{live["branch"]}"' in await communicator.receive_from(timeout=5)
    assert render.call_count == 1
    for communicator in sockets:
        await communicator.disconnect()
