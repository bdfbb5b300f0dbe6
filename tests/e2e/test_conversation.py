"""A conversation in Chromium: the reply ends, the person writes a turn, the model replies
reading the whole conversation, the page shows messages, and "Look inside" on an earlier
message makes the panels read the conversation as it was for that turn."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS

pytestmark = pytest.mark.e2e


def _start_chat(page, app) -> None:
    page.goto(app.url + "/explore/")
    page.select_option("select[name=model]", "smollm2-135m-instruct")
    page.fill("textarea[name=prompt]", "Name a colour.")
    page.check("input[name=use_chat_template]")
    page.fill("[name=max_new_tokens]", "3")
    page.click("#exploration-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/explore/[0-9a-f-]{36}/"))
    page.wait_for_load_state()  # its scripts have run


def _messages(page):
    return page.locator("[data-testid=conversation] [data-testid=message]")


def test_a_conversation_goes_on_turn_by_turn(app_server, page):
    _start_chat(page, app_server)
    expect(_messages(page)).to_have_count(2)  # the prompt, and the reply to come
    page.click("[data-action=generate]")
    expect(page.locator("[data-testid=finished]")).to_contain_text("The model's reply ended")
    reply = _messages(page).nth(1).locator(".gen")
    expect(reply).to_have_count(3)

    page.fill("#turn-text", "And another one?")
    page.click("[data-action=send-turn]")
    expect(_messages(page)).to_have_count(4)  # prompt, reply, turn, the next reply to come
    turn = _messages(page).nth(2)
    expect(turn).to_have_attribute("data-role", "user")
    expect(turn.locator(".said")).to_have_text("And another one?")
    expect(page.locator("#turn-text")).to_have_count(0)  # the reply has not ended yet

    page.click("[data-action=greedy]")
    expect(_messages(page).nth(3).locator(".gen")).to_have_count(1)
    page.click("[data-action=generate]")
    expect(_messages(page).nth(3).locator(".gen")).to_have_count(3)
    expect(page.locator("#turn-text")).to_be_visible()

    page.reload()  # everything is saved: the same four messages
    expect(_messages(page)).to_have_count(4)
    expect(_messages(page).nth(2).locator(".said")).to_have_text("And another one?")

    # The first reply's internals, as they were for that turn: the panels read 3 tokens.
    first_reply = _messages(page).nth(1)
    page.locator("#tab-tokens").click()
    pieces = page.locator("[data-testid=inside-pieces] .tok")
    expect(pieces).not_to_have_count(0)
    whole = pieces.count()
    first_reply.locator("[data-action=inside-turn]").click()
    expect(page.locator("[data-testid=inside-reading]")).to_contain_text("message 2")
    expect(first_reply).to_have_class(re.compile("reading"))
    turn_tokens = _messages(page).nth(2).locator(".gen").count()
    expect(pieces).to_have_count(whole - turn_tokens - 3)
    page.screenshot(path=str(ARTIFACTS / "conversation.png"), full_page=True)
    page.click("[data-action=read-whole]")
    expect(pieces).to_have_count(whole)
