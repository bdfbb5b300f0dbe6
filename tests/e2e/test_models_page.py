"""Models added from the page, in Chromium, in both deployment modes: an admin adds a tiny
GPT-2 folder from the Models page, the page shows the worker's progress and then the model's
card; a student then finds it in the new exploration's model choice and steps it (in services
mode the Celery worker, started before the model existed, serves it without a restart)."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.conftest import make_tiny_gpt2
from tests.e2e.conftest import ARTIFACTS
from tests.e2e.test_people import _create_admin, _nav, _sign_in, _sign_up, _tokens

pytestmark = pytest.mark.e2e
EXPLORATION_URL = re.compile(r"/explore/([0-9a-f-]{36})/$")


def test_an_admin_adds_a_folder_and_a_student_explores_with_it(
    app_server, chromium, page, tmp_path
):
    name = f"tiny-gpt2-{uuid.uuid4().hex[:6]}"
    folder = make_tiny_gpt2(tmp_path / name)
    key = f"local-{name}"
    frames: list[str] = []
    page.on("websocket", lambda socket: socket.on("framereceived", lambda f: frames.append(f)))

    _sign_in(page, app_server, _create_admin(app_server))
    _nav(page, "Models").click()
    expect(page).to_have_url(app_server.url + "/models/")
    page.wait_for_load_state()  # its scripts have run
    expect(page.locator("body[data-socket=open]")).to_have_count(1)  # progress comes on it
    page.get_by_label("Hugging Face id or folder").fill(str(folder))
    page.click("[data-action=add-model]")
    card = page.get_by_test_id("added-card")
    expect(card).to_contain_text(f"is in the catalog as {key}", timeout=120_000)
    expect(card).to_contain_text("GPT2LMHeadModel: 2 layers, 2 heads (2 key/value)")
    expect(card).to_contain_text("context 64 tokens")
    expect(card).to_contain_text("no chat template")
    assert any(f"Loading the weights of {name}" in str(frame) for frame in frames), frames
    row = page.locator(f"table.catalog tr[data-key={key}]")
    expect(row).to_contain_text("GPT2LMHeadModel")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"models-page-{app_server.mode}.png"), full_page=True)

    student = chromium.new_context().new_page()
    student.set_default_timeout(60_000)
    try:
        _sign_up(student, app_server, "Student")
        student.select_option("select[name=model]", key)
        student.fill("textarea[name=prompt]", "Once upon a time")
        student.click("#exploration-form button[type=submit]")
        expect(student).to_have_url(EXPLORATION_URL)
        student.wait_for_load_state()
        student.click("[data-action=greedy]")
        expect(_tokens(student)).to_have_count(1)
        student.goto(app_server.url + "/models/")  # which admin added it: for admins only
        student_row = student.locator(f"table.catalog tr[data-key={key}]")
        expect(student_row).to_contain_text("added from this page")
        expect(student_row).not_to_contain_text("added by")
    finally:
        student.context.close()
