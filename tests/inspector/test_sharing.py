"""Share links, their review by admins and the activity log: pages, API and Django admin
(tasks run inline, real SmolLM2 for the exploration)."""

import pytest
from rest_framework.test import APIClient

from inspector.models import AuditEvent, Exploration, ShareLink
from tests.conftest import client_for

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"
PROMPT = "The capital of France is"
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def owner(student):
    return client_for(student)


@pytest.fixture
def admin(admin_user):
    return client_for(admin_user)


@pytest.fixture
def exploration(owner):
    response = owner.post(
        "/api/v1/explorations/", {"model": SMOL, "prompt": PROMPT, "title": "Capitals"}, "json"
    )
    assert response.status_code == 201, response.content
    return Exploration.objects.get(pk=response.json()["id"])


@pytest.fixture
def link(owner, exploration):
    response = owner.post(f"/explore/{exploration.pk}/share/")
    assert response.status_code == 302
    assert response.url == f"/explore/{exploration.pk}/"
    return ShareLink.objects.get(exploration=exploration)


@pytest.fixture(params=["visitor", "other_student"])
def reader(request, other_student):
    """Someone who only has the link: a visitor, or another signed-in student."""
    return APIClient() if request.param == "visitor" else client_for(other_student)


def _open(client, link):
    return client.get(f"/s/{link.token}/")


def _hide(admin, link, reason="Personal data in the prompt", **extra):
    return admin.post(f"/review/{link.pk}/hide/", {"reason": reason}, **extra)


def test_sharing_makes_one_pending_link_and_shows_it_in_the_box(owner, exploration, student):
    response = owner.post(f"/explore/{exploration.pk}/share/", **HTMX)
    link = ShareLink.objects.get(exploration=exploration)
    html = response.content.decode()
    assert link.status == ShareLink.Status.PENDING and link.created_by == student
    assert f'value="http://testserver/s/{link.token}/"' in html
    assert "Waiting for review" in html and "Copy" in html
    assert f'hx-post="/shares/{link.pk}/revoke/"' in html
    owner.post(f"/explore/{exploration.pk}/share/")
    assert ShareLink.objects.filter(exploration=exploration).count() == 1
    event = AuditEvent.objects.get(action="share.create")
    assert (event.actor, event.target_id) == (student, str(link.pk))
    page = owner.get(f"/explore/{exploration.pk}/").content.decode()
    assert 'id="share-box"' in page and f"/s/{link.token}/" in page


def test_the_box_offers_a_link_when_there_is_none(owner, exploration, link):
    html = owner.post(f"/shares/{link.pk}/revoke/", **HTMX).content.decode()
    assert "Share a read-only link" in html
    assert f'action="/explore/{exploration.pk}/share/"' in html and link.token not in html


def test_the_link_opens_the_exploration_read_only(reader, exploration, link):
    assert reader.get(f"/explore/{exploration.pk}/").status_code == 404
    response = _open(reader, link)
    assert response.status_code == 302 and response.url == f"/explore/{exploration.pk}/"
    page = reader.get(response.url)
    assert page.status_code == 200 and PROMPT in page.content.decode()
    assert 'id="share-box"' not in page.content.decode()
    root = exploration.root
    assert reader.post(f"/branches/{root.pk}/step/", {"mode": "sample"}).status_code in (403, 404)
    api_step = reader.post(f"/api/v1/branches/{root.pk}/steps/", {}, "json")
    assert api_step.status_code == 403
    assert root.steps.count() == 0


def test_a_link_holder_cannot_share_or_revoke(reader, exploration, link):
    _open(reader, link)
    assert reader.post(f"/explore/{exploration.pk}/share/").status_code == 403
    assert reader.post(f"/shares/{link.pk}/revoke/").status_code == 403
    assert reader.post(f"/api/v1/explorations/{exploration.pk}/share/").status_code == 403
    assert reader.delete(f"/api/v1/shares/{link.pk}/").status_code == 403
    link.refresh_from_db()
    assert link.revoked_at is None and ShareLink.objects.count() == 1


def test_a_stranger_cannot_tell_the_link_exists(other_student, link):
    stranger = client_for(other_student)
    assert stranger.post(f"/shares/{link.pk}/revoke/").status_code == 404
    assert stranger.delete(f"/api/v1/shares/{link.pk}/").status_code == 404
    assert _open(stranger, ShareLink(token="not-a-token")).status_code == 404


def test_an_admin_approves(admin, admin_user, link):
    response = admin.post(f"/review/{link.pk}/approve/")
    assert response.status_code == 302 and response.url == "/review/"
    link.refresh_from_db()
    assert link.status == ShareLink.Status.APPROVED and link.reviewed_by == admin_user
    assert link.reviewed_at is not None
    assert "Approved the link" in admin.get("/review/").content.decode()


def test_a_hidden_link_stops_opening_and_its_read_access_ends(
    reader, owner, admin, admin_user, exploration, link
):
    _open(reader, link)
    assert reader.get(f"/explore/{exploration.pk}/").status_code == 200
    row = _hide(admin, link, **HTMX)
    assert row.status_code == 200 and "Personal data in the prompt" in row.content.decode()
    link.refresh_from_db()
    assert link.status == ShareLink.Status.HIDDEN and link.reviewed_by == admin_user
    assert link.reason == "Personal data in the prompt"
    assert _open(reader, link).status_code == 404
    assert reader.get(f"/explore/{exploration.pk}/").status_code == 404
    for allowed in (owner, admin):
        assert _open(allowed, link).status_code == 302
        assert allowed.get(f"/explore/{exploration.pk}/").status_code == 200
    box = owner.post(f"/explore/{exploration.pk}/share/", **HTMX).content.decode()
    assert "Hidden by an admin: Personal data in the prompt" in box


@pytest.mark.parametrize("reason", ["", "   ", "x" * 1001])
def test_hiding_needs_a_reason(admin, link, reason):
    page = _hide(admin, link, reason)
    assert page.status_code == 400
    row = _hide(admin, link, reason, **HTMX)
    assert row.status_code == 422 and 'role="alert"' in row.content.decode()
    api = admin.post(f"/api/v1/shares/{link.pk}/review/", {"decision": "hide", "reason": reason})
    assert api.status_code == 400 and api.json()["error"]["field"] == "reason"
    expected = "keep it to 1000" if reason.strip() else "Give a reason"
    for message in (page.content.decode(), row.content.decode(), api.json()["error"]["message"]):
        assert expected in message
    link.refresh_from_db()
    assert link.status == ShareLink.Status.PENDING and link.reviewed_by is None
    assert not AuditEvent.objects.filter(action="share.hide").exists()


@pytest.mark.parametrize("through", ["page", "api"])
def test_revoking_closes_the_link_for_everyone(
    through, owner, admin, other_student, exploration, link
):
    reader = client_for(other_student)
    _open(reader, link)
    if through == "page":
        assert owner.post(f"/shares/{link.pk}/revoke/").status_code == 302
    else:
        assert owner.delete(f"/api/v1/shares/{link.pk}/").status_code == 204
    link.refresh_from_db()
    assert link.revoked_at is not None
    for client in (reader, APIClient(), owner, admin):
        assert _open(client, link).status_code == 404
    assert reader.get(f"/explore/{exploration.pk}/").status_code == 404
    assert AuditEvent.objects.filter(action="share.revoke", target_id=str(link.pk)).count() == 1


def test_only_staff_review(owner, other_student, link):
    assert APIClient().get("/review/").status_code == 302
    assert "login" in APIClient().get("/review/").url
    for client in (owner, client_for(other_student)):
        assert client.get("/review/").status_code == 404
        assert client.get("/review/activity/").status_code == 404
        assert client.post(f"/review/{link.pk}/approve/").status_code == 404
        assert client.post(f"/review/{link.pk}/hide/", {"reason": "mine"}).status_code == 404
        api = client.post(f"/api/v1/shares/{link.pk}/review/", {"decision": "approve"})
        assert api.status_code == 403
        assert api.json()["error"]["message"] == "Only admins review shared explorations"
        assert client.get("/api/v1/activity/").status_code == 403
    link.refresh_from_db()
    assert link.status == ShareLink.Status.PENDING


def test_the_api_shares_lists_and_reviews(owner, admin, other_student, student, exploration):
    created = owner.post(f"/api/v1/explorations/{exploration.pk}/share/")
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "pending"
    assert body["url"] == f"http://testserver/s/{body['token']}/"
    again = owner.post(f"/api/v1/explorations/{exploration.pk}/share/")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert [item["id"] for item in owner.get("/api/v1/shares/").json()] == [body["id"]]
    assert client_for(other_student).get("/api/v1/shares/").json() == []
    reviewed = admin.post(
        f"/api/v1/shares/{body['id']}/review/", {"decision": "hide", "reason": "Off topic"}
    )
    assert reviewed.status_code == 200
    assert reviewed.json()["status"] == "hidden" and reviewed.json()["reason"] == "Off topic"
    approved = admin.post(f"/api/v1/shares/{body['id']}/review/", {"decision": "approve"})
    assert approved.json()["status"] == "approved" and approved.json()["reviewed_by"] == "ada"


def test_the_queue_puts_waiting_links_first(admin, student, link):
    older = Exploration.objects.create(owner=student, model_key=SMOL, prompt="Older")
    reviewed = ShareLink.objects.create(exploration=older, status=ShareLink.Status.APPROVED)
    newest = Exploration.objects.create(owner=student, model_key=SMOL, prompt="Newest")
    waiting = ShareLink.objects.create(exploration=newest)
    gone = ShareLink.objects.create(exploration=older, revoked_at="2024-01-01T00:00Z")
    ids = [item["id"] for item in admin.get("/api/v1/shares/").json()]
    assert ids == [waiting.pk, link.pk, reviewed.pk] and gone.pk not in ids
    html = admin.get("/review/").content.decode()
    assert html.index(f'id="share-{waiting.pk}"') < html.index(f'id="share-{reviewed.pk}"')


def test_every_action_is_logged_and_shown(owner, admin, student, admin_user, exploration, link):
    admin.post(f"/review/{link.pk}/approve/")
    _hide(admin, link, "Spam")
    owner.post(f"/shares/{link.pk}/revoke/")
    events = AuditEvent.objects.order_by("pk")
    assert [(event.action, event.actor) for event in events] == [
        ("share.create", student),
        ("share.approve", admin_user),
        ("share.hide", admin_user),
        ("share.revoke", student),
    ]
    assert events.get(action="share.hide").detail["reason"] == "Spam"
    html = admin.get("/review/activity/").content.decode()
    for action in ("share.create", "share.approve", "share.hide", "share.revoke"):
        assert f'<td class="mono">{action}</td>' in html
    assert html.index("share.revoke</td>") < html.index("share.create</td>")
    only = admin.get("/review/activity/", {"action": "share.hide"}).content.decode()
    assert "share.hide</td>" in only and "share.create</td>" not in only
    api = admin.get("/api/v1/activity/", {"action": "share.approve"}).json()
    assert api["count"] == 1 and api["results"][0]["actor_label"] == "ada"


def test_the_activity_page_shows_fifty_events_a_page(admin, link):
    for number in range(60):
        AuditEvent.objects.create(
            actor_label="ada",
            action="lesson.create",
            target_type="lesson",
            target_id=str(number),
            summary=f"event {number}",
        )
    first = admin.get("/review/activity/").content.decode()
    assert first.count("<tr>") == 51 and "Page 1 of 2" in first
    assert admin.get("/review/activity/", {"page": 2}).content.decode().count("<tr>") == 12


@pytest.fixture
def superuser_admin(admin_user):
    admin_user.is_superuser = True
    admin_user.save()
    return client_for(admin_user)


def _admin_action(client, link, action, reason=""):
    data = {"action": action, "_selected_action": [link.pk], "reason": reason, "index": 0}
    return client.post("/admin/inspector/sharelink/", data, follow=True)


def test_the_django_admin_hides_only_with_a_reason(superuser_admin, admin_user, link):
    refused = _admin_action(superuser_admin, link, "hide_links")
    assert "Give a reason" in refused.content.decode()
    link.refresh_from_db()
    assert link.status == ShareLink.Status.PENDING
    hidden = _admin_action(superuser_admin, link, "hide_links", "Copyrighted text")
    assert "Hid 1 link" in hidden.content.decode()
    link.refresh_from_db()
    assert (link.status, link.reason) == (ShareLink.Status.HIDDEN, "Copyrighted text")
    _admin_action(superuser_admin, link, "approve_links")
    link.refresh_from_db()
    assert link.status == ShareLink.Status.APPROVED and link.reviewed_by == admin_user
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))
    assert actions == ["share.create", "share.hide", "share.approve"]


def test_the_activity_log_is_read_only_in_the_django_admin(superuser_admin, link):
    event = AuditEvent.objects.get()
    assert superuser_admin.get("/admin/inspector/auditevent/").status_code == 200
    assert superuser_admin.get("/admin/inspector/auditevent/add/").status_code == 403
    url = f"/admin/inspector/auditevent/{event.pk}"
    assert superuser_admin.post(f"{url}/change/", {}).status_code == 403
    assert superuser_admin.post(f"{url}/delete/").status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_user_text_is_inert_on_the_review_page(admin, exploration, link):
    Exploration.objects.filter(pk=exploration.pk).update(title="<script>alert(1)</script>")
    _hide(admin, link, '<img src=x onerror="alert(2)">')
    html = admin.get("/review/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "&lt;img src=x" in html and "<img src=x" not in html
