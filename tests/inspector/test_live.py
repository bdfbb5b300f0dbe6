"""Live sessions: starting, joining by code, the snapshot, the presenter's changes, breaking away
and coming back, ending and the record; who may do each."""

import json

import pytest

from inspector.live import reading
from inspector.models import Exploration, Job, Lesson, LiveEvent, LiveParticipant, LiveSession
from inspector.models.live import CODE_ALPHABET
from tests.conftest import client_for, make_person
from tests.inspector.makers import browser, make_lesson, step

pytestmark = [pytest.mark.django_db, pytest.mark.model]


@pytest.fixture
def lesson(instructor, two_explorations):
    return make_lesson(instructor, explorations=two_explorations, title="Live greedy")


@pytest.fixture
def running(instructor, lesson) -> dict:
    response = client_for(instructor).post(f"/api/v1/lessons/{lesson.pk}/live/", {}, "json")
    assert response.status_code == 201, response.content
    return response.json()


def test_the_instructor_starts_a_session_with_a_code_to_read_aloud(
    running, lesson, two_explorations
):
    assert len(running["code"]) == 6 and set(running["code"]) <= set(CODE_ALPHABET)
    assert running["join_url"].endswith(f"/live/{running['code']}/")
    assert running["state"] == "running" and running["presenter"] == "ines"
    assert running["exploration"] == str(two_explorations[0].pk)
    assert running["branch"] == str(two_explorations[0].root.pk) and running["length"] == 2
    assert running["followers"] == 0 and running["pacing"] == "instructor"


def test_starting_again_finds_the_running_session(instructor, lesson, running):
    again = client_for(instructor).post(f"/api/v1/lessons/{lesson.pk}/live/", {}, "json")
    assert again.status_code == 201 and again.json()["id"] == running["id"]
    assert LiveSession.objects.filter(lesson=lesson).count() == 1


def test_only_the_lessons_instructors_present(instructor, student, lesson):
    other = make_person("olga", "Instructor")
    assert client_for(student).post(f"/api/v1/lessons/{lesson.pk}/live/").status_code == 404
    lesson.visibility = Lesson.Visibility.PUBLISHED
    lesson.save()
    refused = client_for(other).post(f"/api/v1/lessons/{lesson.pk}/live/", {}, "json")
    assert refused.status_code == 403 and refused.json()["error"]["field"] == "lesson"
    lesson.co_instructors.add(other)
    assert client_for(other).post(f"/api/v1/lessons/{lesson.pk}/live/").status_code == 201


def test_a_lesson_without_items_cannot_go_live(instructor):
    empty = make_lesson(instructor)
    refused = client_for(instructor).post(f"/api/v1/lessons/{empty.pk}/live/", {}, "json")
    assert refused.status_code == 400 and "Add an exploration" in refused.json()["error"]["message"]


def test_joining_by_code_takes_a_seat_and_opens_the_lessons_explorations(
    running, student, two_explorations
):
    client = browser(student)
    exploration = two_explorations[0]
    assert client.get(f"/explore/{exploration.pk}/").status_code == 404  # a private lesson
    page = client.get(f"/live/{running['code'].lower()}/")
    html = page.content.decode()
    assert page.status_code == 200 and 'data-testid="live-bar"' in html
    assert f'ws-connect="/ws/live/{running["id"]}/"' in html
    assert f'id="tokens-{exploration.root.pk}"' in html
    seat = LiveParticipant.objects.get(session_id=running["id"])
    assert seat.user == student and seat.following and seat.name == "stu"
    assert client.get(f"/explore/{exploration.pk}/").status_code == 200
    snapshot = client.get(f"/api/v1/live/{running['id']}/").json()
    assert snapshot["followers"] == 1 and snapshot["branch"] == running["branch"]
    client.get(f"/live/{running['code']}/")  # again: the same seat
    assert LiveParticipant.objects.filter(session_id=running["id"]).count() == 1


def test_a_wrong_code_says_so_and_strangers_get_404(running, student):
    page = browser(student).get("/live/ZZZZZZ/")
    assert page.status_code == 404 and "No live session has that code" in page.content.decode()
    assert browser(student).get(f"/api/v1/live/{running['id']}/").status_code == 404
    assert browser().get(f"/api/v1/live/{running['id']}/").status_code == 404


def test_the_presenters_changes_are_the_snapshot(instructor, running, lesson, two_explorations):
    api = client_for(instructor)
    url = f"/api/v1/live/{running['id']}/state/"
    second = lesson.items.get(exploration=two_explorations[1])
    panel = {"name": "attention", "choices": {"layer": "3", "head": "all"}}
    changed = api.post(url, {"item": second.pk, "panel": panel, "selection": [0]}, "json")
    assert changed.status_code == 200, changed.content
    state = changed.json()
    assert state["item"] == second.pk and state["exploration"] == str(two_explorations[1].pk)
    assert state["branch"] == str(two_explorations[1].root.pk) and state["length"] == 1
    assert state["panel"] == panel and state["selection"] == [0]
    assert state["version"] == running["version"] + 1
    assert api.get(f"/api/v1/live/{running['id']}/").json() == state
    kinds = list(LiveEvent.objects.filter(session_id=running["id"]).values_list("kind", flat=True))
    assert kinds == ["started", "change"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"panel": {"name": "nonsense"}}, "panel.name"),
        ({"selection": [-1]}, "selection[0]"),
        ({"preview": {"temperature": "hot"}}, "preview.temperature"),
        ({"preview": {"seed": 3}}, "preview.seed"),
        ({"item": 10**6}, "item"),
        ({"pacing": "fast"}, "pacing"),
    ],
)
def test_a_bad_change_names_its_field_and_changes_nothing(instructor, running, body, field):
    api = client_for(instructor)
    refused = api.post(f"/api/v1/live/{running['id']}/state/", body, "json")
    assert refused.status_code in (400, 404) and refused.json()["error"]["field"] == field
    assert api.get(f"/api/v1/live/{running['id']}/").json()["version"] == running["version"]


def test_a_branch_outside_the_lesson_is_refused(instructor, running):
    api = client_for(instructor)
    elsewhere = api.post(
        "/api/v1/explorations/", {"model": "smollm2-135m-instruct", "prompt": "Hi"}
    )
    branch = elsewhere.json()["branches"][0]["id"]
    refused = api.post(f"/api/v1/live/{running['id']}/state/", {"branch": branch}, "json")
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "branch"


def test_followers_read_the_state_but_do_not_present(running, student):
    client = browser(student)
    client.get(f"/live/{running['code']}/")
    api = client_for(student)
    api.get(f"/live/{running['code']}/")
    refused = api.post(f"/api/v1/live/{running['id']}/state/", {"selection": [1]}, "json")
    assert refused.status_code == 403
    assert api.post(f"/api/v1/live/{running['id']}/end/").status_code == 403


def test_breaking_away_gives_my_own_copy_and_back_to_the_class_follows_again(
    running, student, two_explorations
):
    client = browser(student)
    client.get(f"/live/{running['code']}/")
    made = client.post(f"/live/{running['code']}/break-away/")
    assert made.status_code == 302
    mine = made.url.rstrip("/").split("/")[-1]
    seat = LiveParticipant.objects.get(session_id=running["id"])
    assert not seat.following and str(seat.branch.exploration_id) == mine
    assert seat.branch.exploration.owner == student
    assert seat.branch.token_ids() == two_explorations[0].root.token_ids()
    page = client.get(made.url).content.decode()
    assert 'data-testid="live-return"' in page and 'data-action="back-to-class"' in page
    rows = reading.class_view(LiveSession.objects.get(pk=running["id"]))
    assert rows[0]["following"] is False and rows[0]["length"] == 2 and rows[0]["left_at"] is None
    step(client_for(student), seat.branch.pk, mode="greedy")
    rows = reading.class_view(LiveSession.objects.get(pk=running["id"]))
    assert rows[0]["length"] == 3 and rows[0]["left_at"] == 2
    client.get(f"/live/{running['code']}/")
    assert LiveParticipant.objects.get(pk=seat.pk).following
    Lesson.objects.filter(pk=seat.session.lesson_id).update(visibility="published")
    lesson_page = client.get(f"/lessons/{seat.session.lesson_id}/").content.decode()
    assert 'data-testid="own-forks"' in lesson_page and f"/explore/{mine}/" in lesson_page


def test_stepping_breaks_away_with_that_step_taken_on_my_copy(running, student, two_explorations):
    client = browser(student)
    client.get(f"/live/{running['code']}/")
    made = client.post(f"/live/{running['code']}/break-away/", {"mode": "greedy"})
    assert made.status_code == 302
    seat = LiveParticipant.objects.get(session_id=running["id"])
    class_tokens = two_explorations[0].root.token_ids()
    assert not seat.following and len(seat.branch.token_ids()) == len(class_tokens) + 1
    assert seat.branch.token_ids()[: len(class_tokens)] == class_tokens
    assert two_explorations[0].root.token_ids() == class_tokens  # the class's text is untouched
    chosen = client.post(f"/live/{running['code']}/break-away/", {"mode": "force", "token_id": 42})
    seat.refresh_from_db()
    assert chosen.status_code == 302 and seat.branch.token_ids()[-1] == 42


def test_a_step_that_cannot_be_taken_copies_nothing(running, student):
    client = browser(student)
    client.get(f"/live/{running['code']}/")
    before = Exploration.objects.count()
    refused = client.post(f"/live/{running['code']}/break-away/", {"mode": "force"})
    assert refused.status_code == 400
    assert Exploration.objects.count() == before
    assert LiveParticipant.objects.get(session_id=running["id"]).following


def test_a_followers_next_token_table_offers_to_break_away_with_a_candidate(
    running, student, two_explorations
):
    client = browser(student)
    follow = client.get(f"/live/{running['code']}/").content.decode()
    assert 'data-action="step-away"' in follow and 'id="choose-away"' in follow
    next_url = f"/branches/{two_explorations[0].root.pk}/next/"
    table = client.get(next_url, {"live": "1"}).content.decode()
    assert 'data-action="choose-away"' in table and 'form="choose-away"' in table
    presenter = browser(Lesson.objects.get(pk=running["lesson"]).owner)
    own = presenter.get(next_url, {"live": "1"}).content.decode()
    assert 'data-action="choose"' in own and 'data-action="choose-away"' not in own


def test_a_visitor_joins_and_breaks_away_into_their_session(running, two_explorations):
    client = browser()
    assert client.get(f"/live/{running['code']}/").status_code == 200
    seat = LiveParticipant.objects.get(session_id=running["id"])
    assert seat.user is None and seat.name == "Visitor 1"
    made = client.post(f"/live/{running['code']}/break-away/")
    copy = LiveParticipant.objects.get(pk=seat.pk).branch.exploration
    assert copy.owner is None and copy.session_key and made.url.endswith(f"/{copy.pk}/")


def test_ending_keeps_the_record_and_closes_the_door(instructor, running, student, lesson):
    follower = browser(student)
    follower.get(f"/live/{running['code']}/")
    ended = client_for(instructor).post(f"/api/v1/live/{running['id']}/end/")
    assert ended.status_code == 200 and ended.json()["state"] == "ended"
    assert follower.get(f"/live/{running['code']}/").status_code == 404
    exploration = lesson.items.first().exploration
    assert follower.get(f"/explore/{exploration.pk}/").status_code == 404
    page = browser(instructor).get(f"/lessons/{lesson.pk}/").content.decode()
    assert 'data-testid="live-past"' in page and "1 attended (stu)" in page
    assert 'data-action="start-live"' in page


def test_the_presenters_page_shows_the_code_and_the_class(instructor, running, two_explorations):
    page = browser(instructor).get(f"/explore/{two_explorations[0].pk}/").content.decode()
    assert 'data-testid="live-presenter"' in page and running["code"] in page
    assert f'ws-connect="/ws/live/{running["id"]}/"' in page
    assert browser(instructor).get(f"/live/{running['code']}/").status_code == 302


def test_the_lesson_page_starts_a_session_for_its_instructor(instructor, lesson, two_explorations):
    client = browser(instructor)
    assert 'data-action="start-live"' in client.get(f"/lessons/{lesson.pk}/").content.decode()
    started = client.post(f"/lessons/{lesson.pk}/live/", {"pacing": "student"})
    assert started.status_code == 302 and f"/explore/{two_explorations[0].pk}/" in started.url
    assert LiveSession.objects.get(lesson=lesson).pacing == "student"


def test_the_instructor_names_co_instructors_by_username(instructor, lesson, student):
    client = browser(instructor)
    url = f"/lessons/{lesson.pk}/co-instructors/"
    olga = make_person("olga", "Instructor")
    refused = client.post(url, {"co_instructors": "olga\nstu"}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 422 and "stu is not an instructor" in refused.content.decode()
    assert not lesson.co_instructors.exists()
    assert client.post(url, {"co_instructors": "nobody"}).status_code == 400
    assert client.post(url, {"co_instructors": "olga"}).status_code == 302
    assert list(lesson.co_instructors.all()) == [olga]
    assert browser(olga).post(url, {"co_instructors": ""}).status_code == 403


def test_a_co_instructor_takes_over_and_one_presents_at_a_time(instructor, lesson, running):
    olga = make_person("olga", "Instructor")
    lesson.co_instructors.add(olga)
    co = client_for(olga)
    state = f"/api/v1/live/{running['id']}/state/"
    busy = co.post(state, {"selection": [1]}, "json")
    assert busy.status_code == 409 and busy.json()["error"]["field"] == "presenter"
    taken = co.post(f"/api/v1/live/{running['id']}/present/")
    assert taken.status_code == 200 and taken.json()["presenter"] == "olga"
    assert co.post(state, {"selection": [1]}, "json").status_code == 200
    assert client_for(instructor).post(state, {"selection": [0]}, "json").status_code == 409
    page = browser(instructor).get(f"/explore/{lesson.items.first().exploration_id}/").content
    assert b'data-testid="someone-presents"' in page and b'data-action="take-over"' in page
    kinds = LiveEvent.objects.filter(session_id=running["id"]).values_list("kind", flat=True)
    assert list(kinds) == ["started", "presenter", "change"]


def test_a_co_instructor_presenting_steps_but_does_not_rename_delete_or_share(
    instructor, lesson, running
):
    olga = make_person("olga", "Instructor")
    lesson.co_instructors.add(olga)
    co = client_for(olga)
    assert co.post(f"/api/v1/live/{running['id']}/present/").status_code == 200
    exploration = lesson.items.first().exploration
    step(co, exploration.root.pk, mode="greedy")  # asserts the 201
    url = f"/api/v1/explorations/{exploration.pk}/"
    for refused in (
        co.patch(url, {"title": "Mine now"}, "json"),
        co.delete(url),
        co.post(f"/api/v1/explorations/{exploration.pk}/share/"),
    ):
        assert refused.status_code == 403, refused.content
        assert "owner" in refused.json()["error"]["message"]
    page = browser(olga)
    assert page.post(f"/explore/{exploration.pk}/delete/").status_code == 403
    shown = page.get(f"/explore/{exploration.pk}/").content.decode()
    assert 'data-action="step"' in shown and 'data-action="delete-exploration"' not in shown
    assert "Share a read-only link" not in shown
    exploration.refresh_from_db()
    assert exploration.title == "Capitals" and not exploration.share_links.exists()


def test_a_poll_collects_guesses_and_closes_when_the_presenter_steps(instructor, running):
    session = LiveSession.objects.get(pk=running["id"])
    teacher = browser(instructor)
    opened = teacher.post(f"/live/{running['id']}/poll/", HTTP_HX_REQUEST="true")
    assert opened.status_code == 200 and 'data-testid="poll-count"' in opened.content.decode()
    poll = session.polls.get()
    assert poll.open and poll.position == 2 and 2 <= len(poll.choices) <= 6
    students = [browser(make_person(name, "Student")) for name in ("sam", "sue", "sid")]
    for student in students:
        student.get(f"/live/{running['code']}/")
    page = students[0].get(f"/live/{running['code']}/").content.decode()
    assert 'data-testid="live-poll"' in page and 'data-action="poll-pick"' in page  # late join
    answer = f"/live/{running['code']}/answer/"
    assert students[0].post(answer, {"text": " Paris"}, HTTP_HX_REQUEST="true").status_code == 200
    students[0].post(answer, {"text": poll.choices[0]}, HTTP_HX_REQUEST="true")  # changed
    students[1].post(answer, {"text": poll.choices[0]}, HTTP_HX_REQUEST="true")
    students[2].post(answer, {"text": "zebra"}, HTTP_HX_REQUEST="true")
    empty = students[2].post(answer, {"text": "  "}, HTTP_HX_REQUEST="true")
    assert empty.status_code == 422 and "1 to 100 characters" in empty.content.decode()
    assert browser().post(answer, {"text": "x"}).status_code == 302  # the code lets them in
    step(client_for(instructor), session.branch_id, mode="greedy")
    poll.refresh_from_db()
    assert not poll.open and poll.chosen["token_id"] == session.branch.steps.get(index=2).token_id
    from inspector.live import polls

    rows = {row["text"]: row for row in polls.results(poll)}
    picked = poll.choices[0].strip() or poll.choices[0]  # a newline is a candidate too
    assert rows[picked]["count"] == 2 and rows["zebra"]["count"] == 1
    assert rows["zebra"]["p_base"] is None
    late = students[0].post(answer, {"text": "late"}, HTTP_HX_REQUEST="true")
    assert late.status_code == 422 and "No question is open" in late.content.decode()


def test_a_candidate_of_whitespace_alone_can_be_picked(instructor, running, student):
    from inspector.live import polls
    from inspector.models import LivePoll

    browser(instructor).post(f"/live/{running['id']}/poll/", HTTP_HX_REQUEST="true")
    poll = LiveSession.objects.get(pk=running["id"]).polls.get()
    LivePoll.objects.filter(pk=poll.pk).update(choices=["\n", " Paris"])
    follower = browser(student)
    follower.get(f"/live/{running['code']}/")
    answer = f"/live/{running['code']}/answer/"
    assert follower.post(answer, {"text": "\n"}, HTTP_HX_REQUEST="true").status_code == 200
    poll.refresh_from_db()
    assert [(row["text"], row["count"]) for row in polls.results(poll)] == [("\n", 1)]
    typed = follower.post(answer, {"text": " \n "}, HTTP_HX_REQUEST="true")  # typed: trimmed
    assert typed.status_code == 422


def test_only_the_presenter_opens_a_poll(running, student):
    client = browser(student)
    client.get(f"/live/{running['code']}/")
    assert client.post(f"/live/{running['id']}/poll/").status_code == 403


def test_the_spotlight_shows_a_students_text_without_their_name(instructor, running, student):
    client = browser(student)
    client.get(f"/live/{running['code']}/")
    client.post(f"/live/{running['code']}/break-away/")
    seat = LiveParticipant.objects.get(session_id=running["id"])
    api = client_for(instructor)
    url = f"/api/v1/live/{running['id']}/spotlight/"
    assert api.post(url, {"participant": 10**6}, "json").status_code == 404
    refused = client.post(url, {"participant": seat.pk}, content_type="application/json")
    assert refused.status_code == 403
    lit = api.post(url, {"participant": seat.pk}, "json")
    assert lit.status_code == 200 and lit.json()["spotlight"] == seat.pk
    other = browser(make_person("sue", "Student"))
    page = other.get(f"/live/{running['code']}/").content.decode()
    assert "a classmate's text" in page and "stu" not in page.split('id="live-spotlight"')[1][:2000]
    api.post(url, {"participant": seat.pk, "names": True}, "json")
    assert "stu's text" in other.get(f"/live/{running['code']}/").content.decode()
    cleared = api.post(url, {"participant": None}, "json")
    assert cleared.json()["spotlight"] is None


def test_the_record_is_for_the_instructors(instructor, running, student):
    follower = browser(student)
    follower.get(f"/live/{running['code']}/")
    client_for(instructor).post(f"/api/v1/live/{running['id']}/end/")
    page = browser(instructor).get(f"/live/{running['id']}/record/")
    assert page.status_code == 200 and b'data-testid="attendee"' in page.content
    assert follower.get(f"/live/{running['id']}/record/").status_code == 403
    assert browser().get(f"/live/{running['id']}/record/").status_code == 404


def _class_text(exploration, upto=None) -> dict:
    ids = exploration.root.token_ids()
    return {
        "model": exploration.model_key,
        "text": exploration.prompt,
        "use_chat_template": exploration.use_chat_template,
        "completion_ids": ids if upto is None else ids[:upto],
        "layers": [0],
    }


def test_followers_analyses_of_the_class_text_share_one_scope(
    running, student, instructor, two_explorations, monkeypatch
):
    """Thirty followers opening the presenter's attention panel ask about one text: the page
    names the live session, and the class shares one cache scope for that text only."""
    scopes = []
    monkeypatch.setattr(
        "inspector.analysis.api.services.compute_now",
        lambda _kind, params: scopes.append(params["cache_scope"]) or {},
    )
    follower = browser(student)
    follower.get(f"/live/{running['code']}/")
    visitor = browser()
    visitor.get(f"/live/{running['code']}/")
    stranger = browser(make_person("sam", "Student"))
    live = {"HTTP_X_TOKENLENS_LIVE": running["id"]}
    exploration = two_explorations[0]
    ask = lambda client, body, **headers: client.post(  # noqa: E731
        "/api/v1/attention/", json.dumps(body), content_type="application/json", **headers
    )
    for client in (follower, visitor, client_for(instructor)):
        assert ask(client, _class_text(exploration), **live).status_code == 200
    assert ask(follower, _class_text(exploration, upto=1), **live).status_code == 200
    assert scopes == [f"live:{running['id']}"] * 4
    scopes.clear()
    other_text = {**_class_text(exploration), "text": "Something else"}
    for client, body, headers in (
        (follower, _class_text(exploration), {}),  # a page that does not follow
        (follower, other_text, live),  # not the class's text
        (follower, {**_class_text(exploration), "completion_ids": [5, 6, 7]}, live),
        (stranger, _class_text(exploration), live),  # never joined
        (follower, _class_text(exploration), {"HTTP_X_TOKENLENS_LIVE": "not-a-session"}),
    ):
        assert ask(client, body, **headers).status_code == 200
    assert f"live:{running['id']}" not in scopes and len(scopes) == 5
    client_for(instructor).post(f"/api/v1/live/{running['id']}/end/")
    scopes.clear()
    assert ask(follower, _class_text(exploration), **live).status_code == 200
    assert scopes == [scopes[0]] and not scopes[0].startswith("live:")


def test_a_followers_attribution_job_on_the_class_text_shares_the_scope(
    running, student, two_explorations
):
    follower = browser(student)
    follower.get(f"/live/{running['code']}/")
    exploration = two_explorations[0]
    params = {**_class_text(exploration), "target_id": 9, "method": "saliency"}
    params.pop("layers")
    response = follower.post(
        "/api/v1/jobs/",
        {"kind": "attribution", "params": params},
        "application/json",
        HTTP_X_TOKENLENS_LIVE=running["id"],
    )
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.params["cache_scope"] == f"live:{running['id']}"
    assert job.session_key != job.params["cache_scope"]  # the job itself stays the follower's
