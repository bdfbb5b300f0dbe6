"""Lessons through the REST API: building, ordering, permissions, and lessons as files
(real users, explorations stepped by the real SmolLM2; tasks run inline)."""

import pytest

from inspector.models import AuditEvent, Exploration, Lesson, LessonItem
from tests.conftest import client_for
from tests.inspector.makers import item_titles, make_exploration, make_lesson

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"


# --- the API ----------------------------------------------------------------------------------


def test_the_api_builds_a_lesson(instructor, student, two_explorations):
    api = client_for(instructor)
    capitals, stories = two_explorations
    created = api.post("/api/v1/lessons/", {"title": " Greedy ", "goals": ["a", " ", "b"]}, "json")
    assert created.status_code == 201, created.content
    lesson_id = created.json()["id"]
    assert created.json()["title"] == "Greedy" and created.json()["goals"] == ["a", "b"]
    items = []
    for exploration in (capitals, stories):
        added = api.post(
            f"/api/v1/lessons/{lesson_id}/items/",
            {"exploration": str(exploration.pk), "suggested_prompts": ["Try this "]},
            "json",
        )
        assert added.status_code == 201, added.content
        assert added.json()["suggested_prompts"] == ["Try this"]
        items.append(added.json()["id"])
    ordered = api.post(f"/api/v1/lessons/{lesson_id}/order/", {"items": items[::-1]}, "json")
    assert ordered.status_code == 200
    assert [item["title"] for item in ordered.json()["items"]] == ["Stories", "Capitals"]
    assert [item["position"] for item in ordered.json()["items"]] == [0, 1]
    patched = api.patch(f"/api/v1/lessons/{lesson_id}/", {"visibility": "link"}, "json")
    assert patched.json()["link"].endswith(f"/lessons/link/{Lesson.objects.get().link_token}/")
    changed = api.patch(
        f"/api/v1/lessons/{lesson_id}/items/{items[0]}/", {"note": "*Look*"}, "json"
    )
    assert changed.status_code == 200 and changed.json()["note"] == "*Look*"

    exported = api.get(f"/api/v1/lessons/{lesson_id}/export/").json()
    assert exported["lesson"]["title"] == "Greedy"
    assert [item["exploration"]["exploration"]["title"] for item in exported["items"]] == [
        "Stories",
        "Capitals",
    ]
    removed = api.delete(f"/api/v1/lessons/{lesson_id}/items/{items[1]}/")
    assert removed.status_code == 204 and LessonItem.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": []}, "items"),
        ({"items": "nope"}, "items"),
    ],
)
def test_a_new_order_must_name_every_item_once(instructor, two_explorations, body, field):
    lesson = make_lesson(instructor, explorations=two_explorations)
    response = client_for(instructor).post(f"/api/v1/lessons/{lesson.pk}/order/", body, "json")
    assert response.status_code == 400 and response.json()["error"]["field"] == field
    ids = list(lesson.items.values_list("pk", flat=True))
    twice = client_for(instructor).post(
        f"/api/v1/lessons/{lesson.pk}/order/", {"items": [ids[0], ids[0]]}, "json"
    )
    assert twice.status_code == 400 and "once" in twice.json()["error"]["message"]
    assert item_titles(lesson) == ["Capitals", "Stories"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"title": ""}, "title", "Give the lesson a title"),
        ({"title": "x" * 201}, "title", "at most 200"),
        ({"title": "ok", "goals": [f"g{n}" for n in range(21)]}, "goals", "At most 20 goals"),
        ({"title": "ok", "visibility": "everyone"}, "visibility", "not a valid choice"),
        ({"title": 12}, "title", "not a number"),
        ({"title": "ok", "notes": ["x"]}, "notes", "not a list"),
        ({"title": "ok", "goals": [1]}, "goals[0]", "not a number"),
    ],
)
def test_the_api_refuses_bad_lessons(instructor, body, field, message):
    response = client_for(instructor).post("/api/v1/lessons/", body, "json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert message in response.json()["error"]["message"]
    assert not Lesson.objects.exists()


def test_the_api_refuses_someone_elses_exploration_and_too_many_prompts(
    instructor, student, two_explorations
):
    lesson = make_lesson(instructor)
    theirs = make_exploration(client_for(student), "Hi", "Theirs", steps=0)
    api = client_for(instructor)
    url = f"/api/v1/lessons/{lesson.pk}/items/"
    refused = api.post(url, {"exploration": str(theirs.pk)}, "json")
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "exploration"
    body = {"exploration": str(two_explorations[0].pk), "suggested_prompts": ["p"] * 21}
    too_many = api.post(url, body, "json")
    assert too_many.status_code == 400
    assert too_many.json()["error"] == {
        "field": "suggested_prompts",
        "message": "At most 20 suggested prompts (21 given)",
    }
    assert not lesson.items.exists()


def test_api_permissions(instructor, student, other_student, two_explorations, api):
    private = make_lesson(instructor, "private", two_explorations, title="Private")
    published = make_lesson(instructor, "published", two_explorations, title="Published")
    linked = make_lesson(instructor, "link", two_explorations, title="Linked")
    reader = client_for(student)

    refused = reader.post("/api/v1/lessons/", {"title": "Mine"}, "json")
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "Only instructors create lessons"
    assert {lesson["title"] for lesson in reader.get("/api/v1/lessons/").json()} == {"Published"}
    assert {
        lesson["title"] for lesson in client_for(instructor).get("/api/v1/lessons/").json()
    } == {
        "Private",
        "Published",
        "Linked",
    }
    for lesson in (private, linked):
        assert reader.get(f"/api/v1/lessons/{lesson.pk}/").status_code == 404
        assert (
            reader.patch(f"/api/v1/lessons/{lesson.pk}/", {"title": "x"}, "json").status_code == 404
        )
    assert reader.get(f"/api/v1/lessons/{published.pk}/").json()["link"] is None
    assert (
        reader.patch(f"/api/v1/lessons/{published.pk}/", {"title": "x"}, "json").status_code == 403
    )
    assert reader.delete(f"/api/v1/lessons/{published.pk}/").status_code == 403
    item = published.items.first()
    assert (
        reader.post(
            f"/api/v1/lessons/{published.pk}/order/", {"items": [item.pk]}, "json"
        ).status_code
        == 403
    )
    assert reader.get(f"/api/v1/lessons/{private.pk}/export/").status_code == 404

    forked = reader.post(f"/api/v1/lessons/{published.pk}/fork/", {"item": item.pk}, "json")
    assert forked.status_code == 201, forked.content
    copy = Exploration.objects.get(pk=forked.json()["id"])
    assert forked.json()["url"].endswith(f"/explore/{copy.pk}/")
    assert copy.owner == student and copy.forked_from_lesson == published
    assert copy.root.token_ids() == item.exploration.root.token_ids()
    missing = reader.post(f"/api/v1/lessons/{published.pk}/fork/", {"item": 999999}, "json")
    assert missing.status_code == 404
    private_item = private.items.first()
    hidden = reader.post(f"/api/v1/lessons/{private.pk}/fork/", {"item": private_item.pk}, "json")
    assert hidden.status_code == 404

    # a visitor (no account) reads the link-only lesson once it has opened the link
    assert api.get(f"/api/v1/lessons/{linked.pk}/").status_code == 404
    api.get(f"/lessons/link/{linked.link_token}/")
    assert api.get(f"/api/v1/lessons/{linked.pk}/").status_code == 200
    visitor_item = linked.items.first()
    visitor_fork = api.post(f"/api/v1/lessons/{linked.pk}/fork/", {"item": visitor_item.pk}, "json")
    assert visitor_fork.status_code == 201
    assert Exploration.objects.get(pk=visitor_fork.json()["id"]).owner is None


def test_a_bad_item_change_shows_its_message_and_keeps_the_old_prompts(
    instructor, teacher, two_explorations
):
    lesson = make_lesson(instructor, explorations=two_explorations)
    item = lesson.items.first()
    item.suggested_prompts = ["kept"]
    item.save()
    body = {"note": "new", "suggested_prompts": "\n".join(["p"] * 21)}
    url = f"/lessons/{lesson.pk}/items/{item.pk}/"
    for headers, status in (({}, 400), ({"HTTP_HX_REQUEST": "true"}, 422)):
        response = teacher.post(url, body, **headers)
        html = response.content.decode()
        assert response.status_code == status and "At most 20 suggested prompts" in html
        assert f'id="item-{item.pk}-suggested_prompts"' in html
    item.refresh_from_db()
    assert (item.note, item.suggested_prompts) == ("", ["kept"])


# --- importing a lesson -----------------------------------------------------------------------


def _exported(instructor, two_explorations) -> dict:
    lesson = make_lesson(
        instructor, Lesson.Visibility.PUBLISHED, two_explorations, notes="**Read** me"
    )
    LessonItem.objects.filter(lesson=lesson).update(suggested_prompts=["Try this"])
    return client_for(instructor).get(f"/api/v1/lessons/{lesson.pk}/export/").json()


def _counts() -> tuple[int, ...]:
    from inspector.models import Branch, Step

    return tuple(model.objects.count() for model in (Lesson, LessonItem, Exploration, Branch, Step))


def test_an_exported_lesson_imports_as_a_private_copy(instructor, two_explorations):
    exported = _exported(instructor, two_explorations)
    response = client_for(instructor).post("/api/v1/lessons/import/", exported, "json")
    assert response.status_code == 201, response.content
    copy = Lesson.objects.get(pk=response.json()["id"])
    assert copy.visibility == Lesson.Visibility.PRIVATE and copy.notes == "**Read** me"
    items = list(copy.items.order_by("position"))
    assert [item.suggested_prompts for item in items] == [["Try this"], ["Try this"]]
    originals = [exploration.root.token_ids() for exploration in two_explorations]
    assert [item.exploration.root.token_ids() for item in items] == originals
    assert all(item.exploration.owner == instructor for item in items)
    assert AuditEvent.objects.filter(action="lesson.import", target_id=str(copy.pk)).exists()


@pytest.mark.parametrize(
    ("spoil", "field"),
    [
        (lambda data: data.update(version=2), "version"),
        (lambda data: data.update(format="other"), "format"),
        (lambda data: data["lesson"].update(title=""), "title"),
        (lambda data: data["lesson"].update(title={"a": 1}), "title"),
        (
            lambda data: data["items"][1]["exploration"].update(version=9),
            "items[1].exploration.version",
        ),
        (
            lambda data: data["items"][1]["exploration"]["branches"][0]["steps"][0].update(index=5),
            "items[1].exploration.branches[0].steps[0].index",
        ),
        (
            lambda data: data["items"][0].update(suggested_prompts=["x" * 501]),
            "items[0].suggested_prompts",
        ),
    ],
)
def test_a_bad_lesson_file_is_refused_whole(instructor, two_explorations, spoil, field):
    exported = _exported(instructor, two_explorations)
    spoil(exported)
    before = _counts()
    response = client_for(instructor).post("/api/v1/lessons/import/", exported, "json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert _counts() == before


def test_only_instructors_import_lessons(instructor, student, two_explorations):
    exported = _exported(instructor, two_explorations)
    response = client_for(student).post("/api/v1/lessons/import/", exported, "json")
    assert response.status_code == 403


def test_the_lessons_page_imports_a_file_and_says_what_is_wrong(
    instructor, teacher, two_explorations
):
    import json

    from django.core.files.uploadedfile import SimpleUploadedFile

    exported = _exported(instructor, two_explorations)
    upload = SimpleUploadedFile("lesson.json", json.dumps(exported).encode())
    response = teacher.post("/lessons/import/", {"file": upload})
    assert response.status_code == 302 and "/edit/" in response["Location"]
    exported["items"][0]["exploration"]["exploration"]["model"] = "no-such-model"
    bad = SimpleUploadedFile("lesson.json", json.dumps(exported).encode())
    refused = teacher.post("/lessons/import/", {"file": bad})
    assert refused.status_code == 400
    assert "items[0].exploration.exploration.model" in refused.content.decode()
