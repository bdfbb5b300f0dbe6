"""Lessons, pages and API: building one, reading it, forking from it, and who may do what
(real users, explorations stepped by the real SmolLM2; tasks run inline)."""

import pytest
from django.test import Client

from inspector.models import AuditEvent, Exploration, Lesson, LessonItem
from tests.conftest import client_for

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"


def make_exploration(api, prompt: str, title: str, steps: int = 2) -> Exploration:
    """An exploration made through the API, stepped greedily `steps` times."""
    body = {"model": SMOL, "prompt": prompt, "title": title, "params": {"temperature": 0}}
    response = api.post("/api/v1/explorations/", body, "json")
    assert response.status_code == 201, response.content
    exploration = Exploration.objects.get(pk=response.json()["id"])
    for _ in range(steps):
        step = api.post(f"/api/v1/branches/{exploration.root.pk}/steps/", {"mode": "greedy"})
        assert step.status_code == 201, step.content
    return exploration


def browser(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def teacher(instructor):
    return browser(instructor)


@pytest.fixture
def two_explorations(instructor):
    api = client_for(instructor)
    return [
        make_exploration(api, "The capital of France is", "Capitals"),
        make_exploration(api, "Once upon a time", "Stories", steps=1),
    ]


def make_lesson(owner, visibility=Lesson.Visibility.PRIVATE, explorations=(), **fields):
    lesson = Lesson.objects.create(
        owner=owner, title=fields.pop("title", "Greedy decoding"), visibility=visibility, **fields
    )
    for position, exploration in enumerate(explorations):
        LessonItem.objects.create(lesson=lesson, exploration=exploration, position=position)
    return lesson


def item_titles(lesson: Lesson) -> list[str]:
    return [item.exploration.title for item in lesson.items.order_by("position")]


# --- the whole flow through the pages ---------------------------------------------------------


def test_an_instructor_builds_a_lesson_and_a_student_forks_from_it(
    instructor, student, teacher, two_explorations
):
    capitals, stories = two_explorations
    response = teacher.post("/lessons/new/", {"title": "Greedy decoding", "visibility": "private"})
    lesson = Lesson.objects.get(owner=instructor)
    assert response.status_code == 302 and response.url == f"/lessons/{lesson.pk}/edit/"
    edit = teacher.get(response.url).content.decode()
    assert "Capitals" in edit and "Stories" in edit  # the <select> offers their explorations

    for exploration in (capitals, stories):
        added = teacher.post(
            f"/lessons/{lesson.pk}/items/",
            {"exploration": exploration.pk, "note": "Look at *step 1*", "suggested_prompts": ""},
        )
        assert added.status_code == 302
    assert item_titles(lesson) == ["Capitals", "Stories"]
    second = lesson.items.get(exploration=stories)
    teacher.post(f"/lessons/{lesson.pk}/items/{second.pk}/move/", {"direction": "up"})
    assert item_titles(lesson) == ["Stories", "Capitals"]
    assert sorted(lesson.items.values_list("position", flat=True)) == [0, 1]
    teacher.post(
        f"/lessons/{lesson.pk}/items/{second.pk}/",
        {"note": "Sampling", "suggested_prompts": "  Once upon a midnight \n\n In a galaxy "},
    )
    assert lesson.items.get(pk=second.pk).suggested_prompts == [
        "Once upon a midnight",
        "In a galaxy",
    ]
    saved = teacher.post(
        f"/lessons/{lesson.pk}/edit/",
        {
            "title": "Greedy decoding",
            "notes": "## Why\n\nThe most likely token wins.",
            "goals": "Read a distribution\n\nSee greedy repeat itself\n",
            "visibility": "published",
        },
    )
    assert saved.status_code == 302
    lesson.refresh_from_db()
    assert lesson.visibility == "published"
    assert lesson.goals == ["Read a distribution", "See greedy repeat itself"]

    reader = browser(student)
    assert "Greedy decoding" in reader.get("/lessons/").content.decode()
    page = reader.get(f"/lessons/{lesson.pk}/").content.decode()
    assert "<h2>Why</h2>" in page and "<li>See greedy repeat itself</li>" in page
    assert page.index("Stories") < page.index("Capitals")
    assert 'data-copy="Once upon a midnight"' in page
    assert f'href="/explore/{capitals.pk}/"' in page
    assert "Edit</a>" not in page

    item = lesson.items.get(exploration=capitals)
    forked = reader.post(f"/lessons/{lesson.pk}/items/{item.pk}/fork/")
    copy = Exploration.objects.get(owner=student)
    assert forked.status_code == 302 and forked.url == f"/explore/{copy.pk}/"
    assert copy.forked_from_lesson == lesson and copy.forked_from == capitals
    assert copy.root.token_ids() == capitals.root.token_ids() and len(copy.root.token_ids()) == 2
    assert AuditEvent.objects.filter(action="lesson.fork", target_id=str(lesson.pk)).exists()
    assert "Your forks" in reader.get("/lessons/").content.decode()

    forks = teacher.get("/lessons/forks/")
    html = forks.content.decode()
    assert forks.status_code == 200 and "stu" in html and f'href="/explore/{copy.pk}/"' in html
    assert teacher.get(f"/explore/{copy.pk}/").status_code == 200
    stepped = client_for(instructor).post(
        f"/api/v1/branches/{copy.root.pk}/steps/", {"mode": "greedy"}
    )
    assert stepped.status_code == 403
    assert copy.root.steps.count() == 2


def test_a_student_cannot_see_the_forks_page(student):
    assert browser(student).get("/lessons/forks/").status_code == 403
    assert browser().get("/lessons/forks/").status_code == 403


def test_a_visitor_forks_into_their_browser_session(instructor, two_explorations):
    lesson = make_lesson(instructor, "published", two_explorations)
    visitor = browser()
    item = lesson.items.first()
    response = visitor.post(f"/lessons/{lesson.pk}/items/{item.pk}/fork/", HTTP_HX_REQUEST="true")
    copy = Exploration.objects.get(forked_from_lesson=lesson)
    assert response.status_code == 200 and response["HX-Redirect"] == f"/explore/{copy.pk}/"
    assert copy.owner is None and copy.session_key
    assert visitor.get(f"/explore/{copy.pk}/").status_code == 200
    forks = browser(instructor).get("/lessons/forks/").content.decode()
    assert "visitor" in forks


# --- who may see what -------------------------------------------------------------------------


def test_private_and_link_only_lessons_stay_hidden_from_others(
    instructor, other_student, two_explorations
):
    lesson = make_lesson(instructor, "private", two_explorations, title="Secret plan")
    outsider = browser(other_student)
    exploration = two_explorations[0]
    assert outsider.get(f"/lessons/{lesson.pk}/").status_code == 404
    assert outsider.get(f"/lessons/link/{lesson.link_token}/").status_code == 404
    assert outsider.get(f"/explore/{exploration.pk}/").status_code == 404
    assert "Secret plan" not in outsider.get("/lessons/").content.decode()

    lesson.visibility = "link"
    lesson.save()
    assert outsider.get(f"/lessons/{lesson.pk}/").status_code == 404
    assert "Secret plan" not in outsider.get("/lessons/").content.decode()
    assert outsider.get("/lessons/link/not-the-token/").status_code == 404
    opened = outsider.get(f"/lessons/link/{lesson.link_token}/")
    assert opened.status_code == 302 and opened.url == f"/lessons/{lesson.pk}/"
    assert outsider.get(f"/lessons/{lesson.pk}/").status_code == 200
    assert outsider.get(f"/explore/{exploration.pk}/").status_code == 200
    assert outsider.get(f"/lessons/{lesson.pk}/edit/").status_code == 403

    old_token = lesson.link_token
    assert outsider.post(f"/lessons/{lesson.pk}/new-link/").status_code == 403
    assert browser(instructor).post(f"/lessons/{lesson.pk}/new-link/").status_code == 302
    lesson.refresh_from_db()
    assert lesson.link_token != old_token
    assert outsider.get(f"/lessons/{lesson.pk}/").status_code == 404  # the old link is void
    assert outsider.get(f"/lessons/link/{old_token}/").status_code == 404
    assert AuditEvent.objects.filter(action="lesson.renew_link").exists()


def test_the_owner_sees_the_share_link_of_a_link_only_lesson(instructor, teacher, student):
    lesson = make_lesson(instructor, "link")
    page = teacher.get(f"/lessons/{lesson.pk}/").content.decode()
    assert f"/lessons/link/{lesson.link_token}/" in page and "Edit</a>" in page
    lesson.visibility = "published"
    lesson.save()
    assert lesson.link_token not in browser(student).get(f"/lessons/{lesson.pk}/").content.decode()


def test_only_the_owner_edits(instructor, student, other_student):
    lesson = make_lesson(instructor, "published")
    reader = browser(student)
    assert reader.get(f"/lessons/{lesson.pk}/edit/").status_code == 403
    refused = reader.post(
        f"/lessons/{lesson.pk}/edit/", {"title": "Mine now", "visibility": "link"}
    )
    assert refused.status_code == 403
    assert reader.post(f"/lessons/{lesson.pk}/delete/").status_code == 403
    private = make_lesson(instructor, "private")
    assert browser(other_student).post(f"/lessons/{private.pk}/delete/").status_code == 404
    lesson.refresh_from_db()
    assert lesson.title == "Greedy decoding" and Lesson.objects.count() == 2


def test_students_cannot_create_lessons(student):
    response = browser(student).post("/lessons/new/", {"title": "Mine", "visibility": "private"})
    assert response.status_code == 403
    assert "Only instructors create lessons" in response.content.decode()
    assert not Lesson.objects.exists()
    assert "New lesson" not in browser(student).get("/lessons/").content.decode()


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"title": "   "}, "title", "Give the lesson a title"),
        ({"title": "x" * 201}, "title", "at most 200 characters"),
        ({"title": "ok", "goals": "\n".join(f"g{n}" for n in range(21))}, "goals", "At most 20"),
        ({"title": "ok", "visibility": "everyone"}, "visibility", "not one of the available"),
    ],
)
def test_bad_lesson_fields_are_refused_with_the_fields_message(teacher, data, field, message):
    response = teacher.post("/lessons/new/", {"visibility": "private", **data})
    html = response.content.decode()
    assert response.status_code == 400
    assert f'data-field="{field}"' in html and message in html
    assert not Lesson.objects.exists()
    htmx = teacher.post("/lessons/new/", {"visibility": "private", **data}, HTTP_HX_REQUEST="true")
    assert htmx.status_code == 422 and message in htmx.content.decode()
    assert "<html" not in htmx.content.decode()


def test_a_bad_edit_changes_nothing(instructor, teacher):
    lesson = make_lesson(instructor, "private", notes="Kept")
    response = teacher.post(
        f"/lessons/{lesson.pk}/edit/", {"title": "", "notes": "Lost", "visibility": "published"}
    )
    assert response.status_code == 400 and "Give the lesson a title" in response.content.decode()
    lesson.refresh_from_db()
    assert (lesson.title, lesson.notes, lesson.visibility) == ("Greedy decoding", "Kept", "private")


@pytest.mark.parametrize(
    ("prompts", "message"),
    [
        ("\n".join(f"prompt {n}" for n in range(21)), "At most 20 suggested prompts"),
        ("fine\n" + "x" * 501, "Suggested prompts 2 is too long: at most 500 characters"),
    ],
)
def test_bad_prompts_are_refused(instructor, teacher, two_explorations, prompts, message):
    lesson = make_lesson(instructor)
    body = {"exploration": two_explorations[0].pk, "suggested_prompts": prompts}
    response = teacher.post(f"/lessons/{lesson.pk}/items/", body)
    html = response.content.decode()
    assert response.status_code == 400
    assert 'data-field="suggested_prompts"' in html and message in html
    assert not lesson.items.exists()


def test_only_ones_own_explorations_can_be_added(instructor, teacher, student):
    other = make_exploration(client_for(student), "Hello", "Not yours", steps=0)
    lesson = make_lesson(instructor)
    for exploration_id in (other.pk, "", "not-a-uuid"):
        response = teacher.post(f"/lessons/{lesson.pk}/items/", {"exploration": exploration_id})
        html = response.content.decode()
        assert response.status_code == 400
        assert 'data-field="exploration"' in html and "Choose one of your own explorations" in html
    assert "Not yours" not in html
    htmx = teacher.post(
        f"/lessons/{lesson.pk}/items/", {"exploration": other.pk}, HTTP_HX_REQUEST="true"
    )
    assert htmx.status_code == 422 and 'id="items"' in htmx.content.decode()
    assert not lesson.items.exists()


def test_html_in_title_and_notes_is_inert(instructor, student):
    lesson = make_lesson(
        instructor,
        "published",
        title="<script>alert('t')</script>",
        notes="<img src=x onerror=alert(1)> [click](javascript:alert(2)) **bold**",
        goals=["<b>goal</b>"],
    )
    page = browser(student).get(f"/lessons/{lesson.pk}/").content.decode()
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>goal" not in page
    assert "&lt;script&gt;alert(&#x27;t&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'href="javascript' not in page and "<strong>bold</strong>" in page
    listing = browser(student).get("/lessons/").content.decode()
    assert "<script>alert" not in listing and "&lt;script&gt;" in listing


# --- editing details --------------------------------------------------------------------------


def test_removing_and_moving_keep_positions_0_to_n(instructor, teacher):
    api = client_for(instructor)
    made = [make_exploration(api, f"Count {n}", f"E{n}", steps=0) for n in range(3)]
    lesson = make_lesson(instructor, explorations=made)
    first, middle, last = lesson.items.order_by("position")
    teacher.post(f"/lessons/{lesson.pk}/items/{first.pk}/move/", {"direction": "up"})
    teacher.post(f"/lessons/{lesson.pk}/items/{last.pk}/move/", {"direction": "down"})
    assert item_titles(lesson) == ["E0", "E1", "E2"]  # the ends stay put
    response = teacher.post(
        f"/lessons/{lesson.pk}/items/{middle.pk}/remove/", HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and 'id="items"' in response.content.decode()
    assert list(lesson.items.values_list("position", flat=True)) == [0, 1]
    assert item_titles(lesson) == ["E0", "E2"]
    assert Exploration.objects.filter(pk=middle.exploration_id).exists()
    bad = teacher.post(f"/lessons/{lesson.pk}/items/{first.pk}/move/", {"direction": "left"})
    assert bad.status_code == 400


def test_visibility_changes_are_audited_with_old_and_new(instructor, teacher):
    lesson = make_lesson(instructor)
    teacher.post(f"/lessons/{lesson.pk}/edit/", {"title": "Greedy decoding", "visibility": "link"})
    event = AuditEvent.objects.get(action="lesson.update")
    assert event.detail["visibility"] == {"old": "private", "new": "link"}
    teacher.post(f"/lessons/{lesson.pk}/delete/")
    assert not Lesson.objects.exists()
    assert AuditEvent.objects.filter(action="lesson.delete", target_id=str(lesson.pk)).exists()


def test_the_edit_form_saves_in_place_with_htmx(instructor, teacher):
    lesson = make_lesson(instructor)
    response = teacher.post(
        f"/lessons/{lesson.pk}/edit/",
        {"title": "Renamed", "visibility": "private"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 200 and 'id="lesson-form"' in html and "Saved." in html
    assert "<html" not in html
    lesson.refresh_from_db()
    assert lesson.title == "Renamed"


def test_every_form_on_the_edit_page_carries_a_csrf_token(instructor, teacher, two_explorations):
    lesson = make_lesson(instructor, explorations=two_explorations)
    html = teacher.get(f"/lessons/{lesson.pk}/edit/").content.decode()
    assert html.count("<form") == html.count("csrfmiddlewaretoken") > 5
    assert html.count('method="post"') == html.count("<form")


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
