"""Lessons through the pages: building one, reading it, forking from it, and who may do what
(real users, explorations stepped by the real SmolLM2; tasks run inline)."""

import pytest

from inspector.models import AuditEvent, Exploration, Lesson
from tests.conftest import client_for
from tests.inspector.makers import browser, item_titles, make_exploration, make_lesson

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"


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
    recorded = capitals.root.sequence(with_candidates=False)
    for step in recorded:  # the recorded text, each token coloured by its band
        assert f'data-token-id="{step.token_id}"' in page
    assert page.count('data-testid="lesson-text"') == 2
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


def test_try_this_prompt_starts_an_exploration_with_the_items_settings(
    instructor, student, teacher, two_explorations
):
    capitals, _stories = two_explorations
    lesson = make_lesson(instructor, "published", [capitals], title="Try it")
    item = lesson.items.get()
    item.suggested_prompts = ["The capital of Italy is", "The capital of Peru is"]
    item.save()
    reader = browser(student)
    page = reader.get(f"/lessons/{lesson.pk}/").content.decode()
    assert f"/lessons/{lesson.pk}/items/{item.pk}/try/1/" in page
    tried = reader.post(f"/lessons/{lesson.pk}/items/{item.pk}/try/1/")
    mine = Exploration.objects.get(owner=student)
    assert tried.status_code == 302 and tried.url == f"/explore/{mine.pk}/"
    assert mine.prompt == "The capital of Peru is"
    assert (mine.model_key, mine.params, mine.max_new_tokens) == (
        capitals.model_key,
        capitals.params,
        capitals.max_new_tokens,
    )
    missing = reader.post(f"/lessons/{lesson.pk}/items/{item.pk}/try/5/")
    assert missing.status_code == 400 and "not in this lesson item" in missing.content.decode()
    assert Exploration.objects.filter(owner=student).count() == 1
    stranger = browser(None)
    private = make_lesson(instructor, "private", [capitals], title="Private")
    private_item = private.items.get()
    refused = stranger.post(f"/lessons/{private.pk}/items/{private_item.pk}/try/0/")
    assert refused.status_code == 404
