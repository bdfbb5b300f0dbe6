"""People in Chromium: an instructor signs up and publishes a lesson; a student forks it,
branches, signs out and back in and finds their work; an admin hides a shared exploration and its
link stops opening for a visitor while its owner reads why — in both deployment modes."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PAGE_ONLY, ROOT

pytestmark = pytest.mark.e2e

PASSWORD = "tokenlens-e2e-pass-1"
EXPLORATION_URL = re.compile(r"/explore/([0-9a-f-]{36})/$")
NOTES = "Watch **how sure** the model is.\n\n<script>window.tokenlensPwned = 1</script>\n"
ITEM_NOTE = "The first token is almost *certain*."
PROMPTS = ["The capital of Italy is", "The capital of Spain is"]


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _nav(page, name: str):
    return page.locator("header nav").get_by_role("link", name=name, exact=True)


def _tokens(page):
    return page.locator("[data-testid=generated] .gen")


def _sign_up(page, app, role: str) -> str:
    """A new account with this role (Student or Instructor), signed in; its username."""
    username = _unique(role.lower())
    page.goto(app.url + "/accounts/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.get_by_role("radio", name=re.compile(f"^{role}:")).check()
    page.click("[data-action=sign-up]")
    expect(page).to_have_url(app.url + "/explore/")
    page.wait_for_load_state()  # its scripts have run
    expect(page.get_by_test_id("account-link")).to_have_text(username)
    return username


def _sign_in(page, app, username: str, password: str = PASSWORD) -> None:
    page.goto(app.url + "/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.click("[data-action=sign-in]")
    expect(page.get_by_test_id("account-link")).to_have_text(username)


def _new_exploration(page, prompt: str, greedy_steps: int = 0) -> str:
    """From the Explore page: a new exploration (the default model), stepped greedily; its URL
    (without ?branch=, which a step adds when the page's scripts are not running yet)."""
    with page.expect_navigation():  # also when already there: fill the page it loads
        _nav(page, "Explore").click()
    page.fill("textarea[name=prompt]", prompt)
    page.click("#exploration-form button[type=submit]")
    expect(page).to_have_url(EXPLORATION_URL)
    page.wait_for_load_state()  # its scripts have run
    url = page.url
    page.wait_for_load_state()  # htmx ready: steps swap the branch panel in place
    for count in range(1, greedy_steps + 1):
        page.click("[data-action=greedy]")
        expect(_tokens(page)).to_have_count(count)
    return url


def _publish_lesson(page, app, title: str) -> str:
    """An instructor's whole path: sign up, explore, build a lesson, publish it; its URL."""
    _sign_up(page, app, "Instructor")
    exploration_url = _new_exploration(page, "The capital of France is", greedy_steps=2)
    exploration_id = EXPLORATION_URL.search(exploration_url).group(1)

    _nav(page, "Lessons").click()
    create = page.locator("#lesson-create-form")
    create.get_by_label("Title").fill(title)
    create.get_by_label("Notes (Markdown)").fill(NOTES)
    create.get_by_role("button", name="Create the lesson").click()
    expect(page).to_have_url(re.compile(r"/lessons/[0-9a-f-]{36}/edit/$"))
    page.wait_for_load_state()  # its scripts have run
    lesson_url = page.url.removesuffix("edit/")

    add = page.locator("#add-item-form")
    add.get_by_label("Exploration").select_option(exploration_id)
    add.get_by_label("Note (Markdown)").fill(ITEM_NOTE)
    add.get_by_label("Suggested prompts (one per line)").fill("\n".join(PROMPTS))
    add.get_by_role("button", name="Add to the lesson").click()
    item = page.locator("#items .lesson-item")
    expect(item).to_have_count(1)
    expect(item.get_by_label("Note (Markdown)")).to_have_value(ITEM_NOTE)

    lesson_form = page.locator("#lesson-form")
    lesson_form.get_by_label("Visibility").select_option("published")
    lesson_form.get_by_role("button", name="Save", exact=True).click()
    expect(lesson_form.get_by_role("status")).to_have_text("Saved.")
    expect(page.locator("#lesson-form").get_by_label("Visibility")).to_have_value("published")
    return lesson_url


@PAGE_ONLY
def test_an_instructor_builds_and_publishes_a_lesson(app_server, page):
    title = _unique("Capitals")
    lesson_url = _publish_lesson(page, app_server, title)

    page.get_by_role("link", name="View the lesson").click()
    expect(page).to_have_url(lesson_url)
    page.wait_for_load_state()  # its scripts have run
    expect(page.get_by_test_id("lesson-title")).to_contain_text(title)
    expect(page.get_by_test_id("lesson-title")).to_contain_text("published")
    notes = page.get_by_test_id("lesson-notes")
    expect(notes.locator("strong")).to_have_text("how sure")
    expect(notes).to_contain_text("<script>window.tokenlensPwned = 1</script>")  # as text
    expect(notes.locator("script")).to_have_count(0)
    assert page.evaluate("window.tokenlensPwned") is None

    item = page.locator(".lesson-item")
    expect(item).to_have_count(1)
    expect(item.locator("h2")).to_contain_text("The capital of France is")
    expect(item.locator(".markdown em")).to_have_text("certain")
    expect(item.locator("[data-action=try-prompt]")).to_have_text([f"Try {p}" for p in PROMPTS])
    recorded = item.get_by_test_id("lesson-text").locator(".gen")
    expect(recorded).to_have_count(2)  # the two greedy steps, coloured by probability
    expect(recorded.first).to_have_class(re.compile(r"\bb[0-4]\b"))

    item.locator("[data-action=try-prompt]").nth(1).click()  # one click: a new exploration
    expect(page).to_have_url(EXPLORATION_URL)
    page.wait_for_load_state()  # its scripts have run
    expect(page.locator("h1")).to_have_text(PROMPTS[1])
    page.wait_for_load_state()
    page.click("[data-action=greedy]")
    expect(_tokens(page)).to_have_count(1)

    _nav(page, "Lessons").click()
    expect(page.locator("#published-lessons").get_by_role("link", name=title)).to_be_visible()


def test_a_student_forks_branches_and_finds_it_all_after_signing_in_again(
    app_server, chromium, page
):
    title = _unique("Capitals to fork")
    instructor = chromium.new_context()
    try:
        _publish_lesson(instructor.new_page(), app_server, title)
    finally:
        instructor.close()

    username = _sign_up(page, app_server, "Student")
    _nav(page, "Lessons").click()
    page.locator("#published-lessons").get_by_role("link", name=title).click()
    expect(page.get_by_test_id("lesson-title")).to_contain_text(title)
    page.get_by_role("button", name="Fork into my workspace").click()
    expect(page).to_have_url(EXPLORATION_URL)
    page.wait_for_load_state()  # its scripts have run
    fork_path = page.url.removeprefix(app_server.url)
    page.wait_for_load_state()
    expect(page.get_by_test_id("read-only")).to_have_count(0)
    expect(_tokens(page)).to_have_count(2)  # the lesson's two greedy steps came along

    page.click("[data-action=greedy]")
    expect(_tokens(page)).to_have_count(3)
    main_tokens = [token.inner_text() for token in _tokens(page).all()]
    _tokens(page).nth(1).click()
    table = page.get_by_test_id("alternatives")
    expect(table.locator("tr.chosen")).to_have_count(1)
    alternative = table.locator("tbody tr:not(.chosen)").first
    alternative_text = alternative.locator("td").first.inner_text()
    alternative.get_by_role("button", name="Branch with this").click()
    expect(page).to_have_url(re.compile(r"\?branch="))
    page.wait_for_load_state()  # its scripts have run
    expect(_tokens(page)).to_have_count(2)
    expect(_tokens(page).nth(1)).to_have_text(alternative_text)

    page.click("[data-action=sign-out]")
    expect(page.locator("[data-action=sign-in-link]")).to_be_visible()
    assert page.goto(app_server.url + fork_path).status == 404  # signed out: nobody's to see

    _sign_in(page, app_server, username)
    with page.expect_navigation():
        _nav(page, "Explore").click()
    fork_link = page.locator(f".exploration-list a[href='{fork_path}']")
    expect(fork_link).to_have_text("Fork of The capital of France is")
    fork_link.click()
    tree = page.locator("#tree .tree li")
    expect(tree).to_have_count(2)
    expect(page.get_by_test_id("read-only")).to_have_count(0)
    page.locator(".tree a", has_text="main").click()
    expect(page).to_have_url(re.compile(r"\?branch="))
    page.wait_for_load_state()  # its scripts have run
    expect(_tokens(page)).to_have_count(3)
    assert [token.inner_text() for token in _tokens(page).all()] == main_tokens
    page.locator(".tree a", has_text="branch 2").click()
    expect(_tokens(page)).to_have_count(2)
    assert [token.inner_text() for token in _tokens(page).all()] == [
        main_tokens[0],
        alternative_text,
    ]


def _create_admin(app) -> str:
    username = _unique("admin")
    env = {**app.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "createsuperuser",
            "--noinput",
            "--username",
            username,
            "--email",
            f"{username}@example.com",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return username


def test_an_admin_hides_a_shared_exploration_and_its_link_stops_working(app_server, chromium, page):
    _sign_up(page, app_server, "Student")
    prompt = f"Notes to share {uuid.uuid4().hex[:8]}: the tide"
    exploration_url = _new_exploration(page, prompt, greedy_steps=1)
    share_box = page.locator("#share-box")
    share_box.get_by_role("button", name="Share a read-only link").click()
    link_input = share_box.locator("input[readonly]")
    expect(link_input).to_have_value(re.compile(r"/s/[^/]+/$"))
    share_url = link_input.input_value()
    expect(share_box).to_contain_text("Waiting for review")

    visitor = chromium.new_context().new_page()
    admin = chromium.new_context().new_page()
    try:
        response = visitor.goto(share_url)
        assert response.status == 200
        expect(visitor).to_have_url(exploration_url)
        visitor.wait_for_load_state()  # its scripts have run
        expect(visitor.get_by_test_id("read-only")).to_be_visible()
        expect(visitor.locator("h1")).to_have_text(prompt)
        expect(_tokens(visitor)).to_have_count(1)
        expect(visitor.locator("[data-action=greedy]")).to_have_count(0)

        _sign_in(admin, app_server, _create_admin(app_server))
        _nav(admin, "Review").click()
        expect(admin).to_have_url(app_server.url + "/review/")
        admin.wait_for_load_state()  # its scripts have run
        row = admin.locator("table.review tbody tr", has_text=prompt)
        expect(row).to_have_count(1)
        expect(row).to_contain_text("Waiting for review")
        reason = "Off topic for this class"
        row.get_by_label("Reason").fill(reason)
        row.get_by_role("button", name="Hide").click()
        expect(row).to_contain_text(f"Reason: {reason}")
        expect(row.get_by_role("button", name="Approve")).to_be_visible()

        assert visitor.reload().status == 404  # the exploration page the visitor had open
        assert visitor.goto(share_url).status == 404
        assert visitor.goto(exploration_url).status == 404

        page.reload()
        expect(page.get_by_test_id("read-only")).to_have_count(0)
        expect(page.locator("#share-box")).to_contain_text(f"Hidden by an admin: {reason}")
        assert page.goto(share_url).status == 200  # the owner still opens it
        expect(page).to_have_url(exploration_url)
        page.wait_for_load_state()  # its scripts have run
    finally:
        visitor.context.close()
        admin.context.close()
