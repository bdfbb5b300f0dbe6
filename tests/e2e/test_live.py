"""A live lesson in Chromium, four browsers at once: the instructor presents; two visitors follow
(one of them joining late) and guess the next token in a poll; one breaks away by stepping, is
spotlit and comes back; a co-instructor takes over; the session ends and its record stays
with the lesson."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, PAGE_ONLY
from tests.e2e.test_people import _publish_lesson, _sign_up, _tokens, _unique

pytestmark = pytest.mark.e2e
SCREENS = ARTIFACTS / "screens" / "live"


def _join(chromium, app, code: str):
    """A visitor's own browser on the join page, following the session."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(app.url + "/live/")
    page.get_by_label("Code").fill(code.lower())
    page.click("[data-action=join-live]")
    expect(page.get_by_test_id("live-bar")).to_contain_text(code)
    page.wait_for_load_state()
    return page


# Embedded only to keep the suite short: the same fan-out over channels-redis across two daphne
# processes is tests/e2e/test_scale_out.py's, and this test passes in services mode too.
@PAGE_ONLY
def test_a_live_class_follows_guesses_breaks_away_and_comes_back(app_server, chromium, page):
    lesson_url = _publish_lesson(page, app_server, _unique("Live"))
    page.goto(lesson_url)
    page.click("[data-action=start-live]")
    expect(page.get_by_test_id("live-presenter")).to_be_visible()
    page.wait_for_load_state()
    code = page.get_by_test_id("live-code").inner_text()
    assert re.fullmatch(r"[A-Z2-9]{6}", code)
    expect(page.get_by_test_id("live-class")).to_contain_text("Nobody has joined yet")

    first = _join(chromium, app_server, code)
    expect(_tokens(first)).to_have_count(2)
    expect(page.get_by_test_id("participant")).to_have_count(1)

    # The presenter steps, opens a panel, selects a token, moves a slider: the class sees it.
    page.click("[data-action=greedy]")
    expect(_tokens(page)).to_have_count(3)
    expect(_tokens(first)).to_have_count(3)
    # The follower's panel asks about the class's text naming the session, so the class
    # shares one computation of it (inspector/live/following.py, class_scope).
    with first.expect_request(lambda request: "/api/v1/tokenize/" in request.url) as asked:
        page.click("#tab-tokens")
    session_id = page.locator("[data-live]").first.get_attribute("data-live")
    assert asked.value.headers.get("x-tokenlens-live") == session_id
    expect(first.locator("#tab-tokens")).to_have_attribute("aria-selected", "true")
    expect(first.get_by_test_id("inside-pieces").locator(".tok").first).to_be_visible()
    _tokens(page).nth(0).click()
    expect(first.locator("#alternatives h2")).to_have_text("Alternatives at token #0")
    page.locator("#slider-temperature").fill("0.5")
    expect(first.get_by_test_id("live-settings")).to_contain_text("temperature 0.5")
    expect(first.get_by_test_id("next-distribution")).to_be_visible()

    # A late joiner lands on the state as it is now, not on the start.
    second = _join(chromium, app_server, code)
    expect(_tokens(second)).to_have_count(3)
    expect(second.locator("#tab-tokens")).to_have_attribute("aria-selected", "true")
    expect(second.locator("#alternatives h2")).to_have_text("Alternatives at token #0")
    expect(page.get_by_test_id("participant")).to_have_count(2)
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"presenter-{app_server.mode}.png"), full_page=True)
    second.screenshot(path=str(SCREENS / f"follower-{app_server.mode}.png"), full_page=True)

    # Predict the next token: both guess, the presenter steps, the guesses meet the model.
    page.click("[data-action=poll-open]")
    expect(page.get_by_test_id("poll-count")).to_have_text("0")
    for follower in (first, second):
        expect(follower.get_by_test_id("live-poll")).to_contain_text("What comes next?")
        expect(follower.get_by_test_id("next-distribution")).to_be_hidden()
    first.locator("[data-action=poll-pick]").first.click()
    expect(first.get_by_test_id("poll-mine")).to_contain_text("Your answer")
    second.get_by_label("Your guess").fill("zebra")
    second.click("[data-action=poll-answer]")
    expect(page.get_by_test_id("poll-count")).to_have_text("2")
    page.click("[data-action=greedy]")
    expect(_tokens(page)).to_have_count(4)
    expect(first.get_by_test_id("poll-closed")).to_contain_text("The model wrote")
    expect(page.get_by_test_id("poll-row")).to_have_count(2)
    expect(page.get_by_test_id("poll-results")).to_contain_text("zebra")

    # Break away by stepping: my own copy of the class's text with my step taken on it; the
    # instructor sees where.
    first.click("[data-action=greedy-away]")
    expect(first.get_by_test_id("live-return")).to_be_visible()
    expect(_tokens(first)).to_have_count(5)
    away = page.locator("[data-testid=participant][data-following=no]")
    expect(away).to_have_count(1)
    page.click("[data-action=greedy]")  # the class goes on: 5 tokens, its own 5th
    expect(_tokens(second)).to_have_count(5)
    page.reload()  # the class panel is read again on connect
    expect(page.locator("[data-testid=participant][data-following=no]")).to_contain_text("5")
    page.wait_for_load_state()

    # Spotlight: the student's own text on everyone's screen, without their name.
    page.locator("[data-testid=participant][data-following=no] [data-spotlight]").click()
    expect(second.get_by_test_id("spotlight")).to_contain_text("a classmate's text")
    expect(second.get_by_test_id("spotlight").locator(".gen")).to_have_count(5)
    expect(page.get_by_test_id("spotlight")).to_be_visible()

    # Back to the class: following the live text again.
    first.click("[data-action=back-to-class]")
    expect(first.get_by_test_id("live-bar")).to_be_visible()
    expect(_tokens(first)).to_have_count(5)
    first.wait_for_load_state()
    page.wait_for_load_state()
    page.click("[data-action=greedy]")
    expect(_tokens(first)).to_have_count(6)
    expect(_tokens(second)).to_have_count(6)

    # Hand-off: a co-instructor named on the lesson takes over; the class follows them.
    co_page = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    co_page.set_default_timeout(60_000)
    co_name = _sign_up(co_page, app_server, "Instructor")
    page.goto(lesson_url + "edit/")
    page.get_by_label(re.compile("^Co-instructors")).fill(co_name)
    page.click("[data-action=save-co-instructors]")
    expect(page.locator("#co-instructors-form").get_by_role("status")).to_have_text("Saved.")
    co_page.goto(lesson_url)
    co_page.click("[data-action=present]")
    expect(co_page.get_by_test_id("someone-presents")).to_be_visible()
    co_page.click("[data-action=take-over]")
    expect(co_page.get_by_test_id("someone-presents")).to_have_count(0)
    expect(first.get_by_test_id("presenter-name")).to_have_text(co_name)
    co_page.wait_for_load_state()
    co_page.click("[data-action=greedy]")
    expect(_tokens(first)).to_have_count(7)
    expect(_tokens(second)).to_have_count(7)
    page.goto(lesson_url)
    page.click("[data-action=present]")
    expect(page.get_by_test_id("someone-presents")).to_contain_text(co_name)

    # The end: every follower is told; the lesson keeps the record.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-action=end-live]")
    expect(page).to_have_url(lesson_url)
    page.wait_for_load_state()  # its scripts have run
    expect(first.get_by_test_id("live-ended")).to_contain_text("ended")
    expect(second.get_by_test_id("live-ended")).to_contain_text("ended")
    expect(page.get_by_test_id("live-past")).to_contain_text("2 attended")
    page.click("[data-action=live-record]")
    expect(page.get_by_test_id("attendee")).to_have_count(2)
    expect(page.get_by_test_id("record-poll")).to_contain_text("the model wrote")
    expect(page.get_by_test_id("record-event").first).to_contain_text("started")
    for other in (first, second, co_page):
        other.context.close()
