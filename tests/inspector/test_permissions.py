"""Who may do what with an exploration: every role × every action, through the pages, the
REST API and the websocket. A refused action must also leave everything as it was."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from channels.testing import WebsocketCommunicator
from django.utils import timezone
from rest_framework.test import APIClient

from inspector.models import Branch, Exploration, Lesson, ShareLink, Step
from tests.conftest import client_for

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"
ROLES = ["owner", "other_student", "instructor", "admin", "visitor", "share_holder"]
ACTIONS = ["view", "step", "turn", "branch", "edit", "delete", "share", "fork", "review"]
ALLOWED = {
    "owner": {"view", "step", "turn", "branch", "edit", "delete", "share", "fork"},
    "other_student": set(),
    "instructor": {"view"},  # the lesson's instructor reads a student's fork, read-only
    "admin": {"view", "fork", "review"},
    "visitor": set(),
    "share_holder": {"view", "fork"},
}
VIEWERS = {role for role, allowed in ALLOWED.items() if "view" in allowed}


@dataclass
class World:
    exploration: Exploration
    root: Branch
    link: ShareLink
    clients: dict[str, APIClient]


@pytest.fixture
def world(instructor, student, other_student, admin_user) -> World:
    """A student's chat exploration forked from an instructor's lesson, one step taken, shared
    by link (pending review), and a client per role."""
    owner = client_for(student)
    created = owner.post(
        "/api/v1/explorations/",
        {"model": SMOL, "prompt": "The capital of France is", "use_chat_template": True},
        "json",
    ).json()
    exploration = Exploration.objects.get(pk=created["id"])
    root = exploration.root
    stepped = owner.post(f"/api/v1/branches/{root.pk}/steps/", {"mode": "greedy"}, "json")
    assert stepped.status_code == 201, stepped.content
    exploration.forked_from_lesson = Lesson.objects.create(owner=instructor, title="Sampling")
    exploration.save()
    link = ShareLink.objects.create(exploration=exploration, created_by=student)
    holder = APIClient()
    assert holder.get(f"/s/{link.token}/").status_code == 302
    clients = {
        "owner": owner,
        "other_student": client_for(other_student),
        "instructor": client_for(instructor),
        "admin": client_for(admin_user),
        "visitor": APIClient(),
        "share_holder": holder,
    }
    return World(exploration, root, link, clients)


def _revoke_links(world):
    ShareLink.objects.filter(exploration=world.exploration).update(revoked_at=timezone.now())


# Each action: (API call, page call, did it take effect?). Calls get (client, world).
API = {
    "view": lambda c, w: c.get(f"/api/v1/explorations/{w.exploration.pk}/"),
    "step": lambda c, w: c.post(f"/api/v1/branches/{w.root.pk}/steps/", {"mode": "greedy"}),
    "turn": lambda c, w: c.post(f"/api/v1/branches/{w.root.pk}/turns/", {"text": "Why?"}),
    "branch": lambda c, w: c.post(
        f"/api/v1/branches/{w.root.pk}/fork/", {"at_index": 0, "token_id": 1000}
    ),
    "edit": lambda c, w: c.patch(f"/api/v1/explorations/{w.exploration.pk}/", {"title": "Mine"}),
    "delete": lambda c, w: c.delete(f"/api/v1/explorations/{w.exploration.pk}/"),
    "share": lambda c, w: c.post(f"/api/v1/explorations/{w.exploration.pk}/share/"),
    "fork": lambda c, w: c.post(f"/api/v1/explorations/{w.exploration.pk}/fork/"),
    "review": lambda c, w: c.post(
        f"/api/v1/shares/{w.link.pk}/review/", {"decision": "hide", "reason": "Off topic"}
    ),
}
PAGES = {
    "view": lambda c, w: c.get(f"/explore/{w.exploration.pk}/"),
    "step": lambda c, w: c.post(f"/branches/{w.root.pk}/step/", {"mode": "greedy"}),
    "turn": lambda c, w: c.post(f"/branches/{w.root.pk}/turn/", {"text": "Why?"}),
    "branch": lambda c, w: c.post(
        f"/branches/{w.root.pk}/fork/", {"at_index": 0, "token_id": 1000}
    ),
    "edit": lambda c, w: c.post(f"/explore/{w.exploration.pk}/rename/", {"title": "Mine"}),
    "delete": lambda c, w: c.post(f"/explore/{w.exploration.pk}/delete/"),
    "share": lambda c, w: c.post(f"/explore/{w.exploration.pk}/share/"),
    "fork": lambda c, w: c.post(f"/explore/{w.exploration.pk}/fork/"),
    "review": lambda c, w: c.post(f"/review/{w.link.pk}/hide/", {"reason": "Off topic"}),
}


def _state(world) -> dict:
    exploration = Exploration.objects.filter(pk=world.exploration.pk).first()
    return {
        "exists": exploration is not None,
        "title": exploration.title if exploration else None,
        "steps": Step.objects.filter(branch__exploration=world.exploration.pk).count(),
        "turns": Step.objects.filter(
            branch__exploration=world.exploration.pk, turn__isnull=False
        ).count(),
        "branches": Branch.objects.filter(exploration=world.exploration.pk).count(),
        "active_links": ShareLink.objects.filter(
            exploration=world.exploration.pk, revoked_at__isnull=True
        ).count(),
        "forks": Exploration.objects.filter(forked_from=world.exploration.pk).count(),
        "link_status": ShareLink.objects.get(pk=world.link.pk).status
        if ShareLink.objects.filter(pk=world.link.pk).exists()
        else None,
    }


def _took_effect(action: str, before: dict, after: dict) -> bool:
    return {
        "view": True,
        "step": after["steps"] > before["steps"],
        "turn": after["turns"] > before["turns"],
        "branch": after["branches"] > before["branches"],
        "edit": after["title"] == "Mine",
        "delete": not after["exists"],
        "share": after["active_links"] == 1,
        "fork": after["forks"] > before["forks"],
        "review": after["link_status"] == ShareLink.Status.HIDDEN,
    }[action]


def _prepare(world, role: str, action: str) -> None:
    """The owner shares an exploration whose old link was revoked (so a new one must appear);
    for anyone else the link stays, since revoking it would take away the holder's access."""
    if action == "share" and role == "owner":
        _revoke_links(world)
    if action == "turn":  # the reply has ended (its one token was all it could write)
        Exploration.objects.filter(pk=world.exploration.pk).update(max_new_tokens=1)
        Branch.objects.filter(pk=world.root.pk).update(finish_reason="max_tokens")


CELLS = [(role, action) for role in ROLES for action in ACTIONS]


@pytest.mark.parametrize(("role", "action"), CELLS)
def test_the_api_allows_exactly_what_the_role_may_do(world, role, action):
    client = world.clients[role]
    client.default_format = "json"
    _prepare(world, role, action)
    before = _state(world)
    response = API[action](client, world)
    after = _state(world)
    if action in ALLOWED[role]:
        assert response.status_code in (200, 201, 204), response.content
        assert _took_effect(action, before, after)
    else:
        expected = (403,) if role in VIEWERS or action == "review" else (404,)
        assert response.status_code in expected, (response.status_code, response.content)
        assert "message" in response.json()["error"]
        assert before == after


@pytest.mark.parametrize(("role", "action"), CELLS)
def test_the_pages_allow_exactly_what_the_role_may_do(world, role, action):
    client = world.clients[role]
    _prepare(world, role, action)
    before = _state(world)
    response = PAGES[action](client, world)
    after = _state(world)
    if action in ALLOWED[role]:
        assert response.status_code in (200, 302), response.content[:500]
        if response.status_code == 302:
            assert "/accounts/login/" not in response["Location"]
        assert _took_effect(action, before, after)
    else:
        assert response.status_code in (302, 403, 404), response.status_code
        if response.status_code == 302:  # a visitor is sent to sign in, nothing else
            assert response["Location"].startswith("/accounts/login/")
        elif role not in VIEWERS and action != "review":
            assert response.status_code == 404
        assert before == after


def test_a_read_only_page_shows_no_controls_but_offers_a_fork(world):
    html = world.clients["share_holder"].get(f"/explore/{world.exploration.pk}/").content.decode()
    assert 'data-testid="read-only"' in html and 'data-action="fork-exploration"' in html
    for control in ('data-action="step"', 'data-action="generate"', 'data-action="undo"'):
        assert control not in html
    owner_html = world.clients["owner"].get(f"/explore/{world.exploration.pk}/").content.decode()
    assert 'data-action="step"' in owner_html and 'data-testid="read-only"' not in owner_html


def test_the_instructor_cannot_fork_a_students_work_but_sees_it(world):
    html = world.clients["instructor"].get(f"/explore/{world.exploration.pk}/").content.decode()
    assert "fork of your lesson" in html and 'data-action="fork-exploration"' not in html


def _session_cookie(client) -> str | None:
    cookie = client.cookies.get("sessionid")
    return cookie.value if cookie else None


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.parametrize("role", ROLES)
async def test_only_readers_can_follow_the_websocket(world, role):
    from channels.db import database_sync_to_async

    from tokenlens_site.asgi import application

    client = world.clients[role]
    await database_sync_to_async(client.get)("/explorations/")  # make sure a session exists
    headers = [(b"origin", b"http://127.0.0.1")]
    key = _session_cookie(client)
    if key:
        headers.append((b"cookie", f"sessionid={key}".encode()))
    communicator = WebsocketCommunicator(
        application, f"/ws/explorations/{world.exploration.pk}/", headers=headers
    )
    connected, code = await communicator.connect(timeout=10)
    assert connected == (role in VIEWERS), (role, code)
    if connected:
        await communicator.disconnect()
    else:
        assert code == 4403


@pytest.mark.parametrize(("role", "offered"), [("owner", True), ("share_holder", False)])
def test_only_the_owner_is_offered_to_branch_from_an_alternative(world, role, offered):
    html = world.clients[role].get(f"/branches/{world.root.pk}/steps/0/").content.decode()
    assert 'data-testid="alternatives"' in html
    assert ('data-action="fork"' in html) == offered
