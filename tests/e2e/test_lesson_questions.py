"""Questions in a lesson, in Chromium: the instructor adds "which token comes next?" to an item,
a student sees the text only up to that step, answers before it is revealed and is told
whether they were right, and the instructor reads the class's distribution."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, PAGE_ONLY
from tests.e2e.test_people import _publish_lesson, _sign_up

pytestmark = pytest.mark.e2e


def _add_question(page, lesson_url: str) -> str:
    """On the edit page, a next-token question before the main branch's token #1; the
    recorded answer as the page shows it."""
    page.goto(lesson_url + "edit/")
    questions = page.get_by_test_id("edit-questions")
    questions.locator("[data-action=add-question]").click()
    form = questions.get_by_test_id("add-question-form")
    form.get_by_label("Question").fill("Which token comes next?")
    form.locator("select[name$=-kind]").select_option("next_token")
    form.locator("select[name$=-step_index]").select_option("1")
    form.locator("[data-action=save-question]").click()
    asked = page.get_by_test_id("edit-question")
    expect(asked).to_have_count(1)
    expect(asked).to_contain_text("before token #1")
    return asked.locator("code").first.inner_text()


@PAGE_ONLY
def test_a_student_answers_before_the_reveal_and_the_instructor_sees_the_class(
    app_server, page, chromium
):
    lesson_url = _publish_lesson(page, app_server, "Questions")
    answer = _add_question(page, lesson_url)

    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    student = context.new_page()
    student.set_default_timeout(60_000)
    username = _sign_up(student, app_server, "Student")
    student.goto(lesson_url)
    item = student.locator(".lesson-item")
    expect(item.get_by_test_id("lesson-text").locator(".gen")).to_have_count(1)
    expect(item.get_by_test_id("hidden-steps")).to_contain_text("1 token hidden")
    chips = item.locator("[data-action=pick-token]")
    expect(chips.first).to_be_visible()
    expect(item.get_by_test_id("open-after-answering")).to_be_visible()
    expect(item.locator("[data-action=fork-item]")).to_have_count(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    student.screenshot(path=str(ARTIFACTS / "lesson-question-before.png"), full_page=True)
    chips.filter(has_text=re.compile(f"^{re.escape(answer)}$")).click()
    result = item.get_by_test_id("question-result")
    expect(result).to_contain_text("Right.")
    expect(result.get_by_test_id("recorded-answer")).to_contain_text(answer)
    expect(item.get_by_test_id("hidden-steps")).to_have_count(0)
    expect(item.get_by_test_id("lesson-text").locator(".gen")).to_have_count(2)
    expect(item.get_by_test_id("answer-fork")).to_be_visible()
    expect(item.locator("[data-action=fork-item]")).to_be_visible()
    student.screenshot(path=str(ARTIFACTS / "lesson-question-student.png"), full_page=True)
    context.close()

    page.goto(lesson_url)
    page.locator("[data-action=class-answers]").click()
    expect(page).to_have_url(lesson_url + "answers/")
    page.wait_for_load_state()  # its scripts have run
    expect(page.get_by_test_id("share-right")).to_have_text("100.0 %")
    rows = page.get_by_test_id("distribution-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("right")
    expect(page.get_by_test_id("student-answer")).to_contain_text(username)
    page.screenshot(path=str(ARTIFACTS / "lesson-question-answers.png"), full_page=True)
