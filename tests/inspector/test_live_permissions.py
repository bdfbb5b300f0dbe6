"""The permission matrix of live sessions: each role against each action, through the API, the
pages and the websocket. Only the lesson's instructors present and read the record; whoever
joined with the code follows; nobody else learns the session exists."""

from dataclasses import dataclass

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from tests.conftest import make_person
from tests.inspector.makers import browser, make_exploration, make_lesson
from tokenlens_site.asgi import application

pytestmark = [pytest.mark.django_db, pytest.mark.model]

ROLES = ["instructor", "co_instructor", "student", "visitor", "stranger", "nobody", "admin"]
# What each role gets: the snapshot, a change of state, the record page, opening a poll.
EXPECTED = {
    "instructor": {"snapshot": 200, "change": 200, "record": 200, "poll": 200},
    "co_instructor": {"snapshot": 200, "change": 409, "record": 200, "poll": 422},
    "student": {"snapshot": 200, "change": 403, "record": 403, "poll": 403},
    "visitor": {"snapshot": 200, "change": 403, "record": 403, "poll": 403},
    "stranger": {"snapshot": 404, "change": 404, "record": 404, "poll": 404},
    "nobody": {"snapshot": 404, "change": 404, "record": 404, "poll": 404},
    "admin": {"snapshot": 404, "change": 404, "record": 404, "poll": 404},
}
AUDIENCE = {"instructor": "presenter", "co_instructor": "presenter", "student": "follower"}
AUDIENCE |= {"visitor": "follower"}


@dataclass
class Room:
    session: dict
    clients: dict


def _room(instructor) -> Room:
    from tests.conftest import client_for

    exploration = make_exploration(client_for(instructor), "The capital of France is", "C", 1)
    lesson = make_lesson(instructor, explorations=[exploration])
    co = make_person("olga", "Instructor")
    lesson.co_instructors.add(co)
    started = browser(instructor).post(f"/api/v1/lessons/{lesson.pk}/live/", {})
    session = started.json()
    clients = {
        "instructor": browser(instructor),
        "co_instructor": browser(co),
        "student": browser(make_person("stu", "Student")),
        "visitor": browser(),
        "stranger": browser(make_person("otto", "Student")),
        "nobody": browser(),
        "admin": browser(make_person("ada", staff=True)),
    }
    for role in ("student", "visitor"):
        assert clients[role].get(f"/live/{session['code']}/").status_code == 200
    return Room(session, clients)


@pytest.fixture
def room(instructor) -> Room:
    return _room(instructor)


def _status(room: Room, role: str, action: str) -> int:
    client, live = room.clients[role], room.session
    if action == "snapshot":
        return client.get(f"/api/v1/live/{live['id']}/").status_code
    if action == "change":
        body = {"selection": [0]}
        url = f"/api/v1/live/{live['id']}/state/"
        return client.post(url, body, content_type="application/json").status_code
    if action == "record":
        return client.get(f"/live/{live['id']}/record/").status_code
    return client.post(f"/live/{live['id']}/poll/", HTTP_HX_REQUEST="true").status_code


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ["snapshot", "change", "record", "poll"])
def test_each_role_gets_exactly_what_it_may(room, role, action):
    assert _status(room, role, action) == EXPECTED[role][action]


@pytest.mark.parametrize("role", ROLES)
def test_only_the_instructors_end_it(room, role):
    status = room.clients[role].post(f"/api/v1/live/{room.session['id']}/end/").status_code
    assert status == {"instructor": 200, "co_instructor": 200}.get(role, EXPECTED[role]["change"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.parametrize("role", ROLES)
async def test_the_websocket_lets_in_exactly_the_class(instructor, role):
    room = await database_sync_to_async(_room)(instructor)
    client = room.clients[role]
    cookie = client.cookies.get("sessionid")
    headers = [(b"origin", b"http://127.0.0.1")]
    if cookie is not None:
        headers.append((b"cookie", f"sessionid={cookie.value}".encode()))
    url = f"/ws/live/{room.session['id']}/"
    communicator = WebsocketCommunicator(application, url, headers=headers)
    connected, code = await communicator.connect(timeout=10)
    if role not in AUDIENCE:
        assert not connected and code == 4403
        return
    assert connected
    first = await communicator.receive_from(timeout=5)
    marker = 'id="live-class"' if AUDIENCE[role] == "presenter" else 'id="live-state"'
    assert marker in first
    await communicator.disconnect()
