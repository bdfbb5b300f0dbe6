"""A new user opens the home page, types text and sees its tokens, in both deployment modes."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PAGE_ONLY

pytestmark = pytest.mark.e2e


def _tokenize(page, app, text: str, model: str = "smollm2-135m-instruct") -> None:
    page.goto(app.url + "/")
    page.select_option("#tokenize-form select[name=model]", model)
    page.fill("textarea[name=text]", text)
    page.click("#tokenize-form button[type=submit]")


def test_typing_text_shows_its_tokens_pushed_over_the_websocket(app_server, page):
    frames = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: frames.append(frame)))
    _tokenize(page, app_server, "Hello world,\ttokens!")
    tokens = page.locator("[data-testid=tokens] .tok")
    expect(tokens.first).to_be_visible()
    status, body = app_server.post_json(
        "/api/v1/tokenize/", {"model": "smollm2-135m-instruct", "text": "Hello world,\ttokens!"}
    )
    assert status == 200
    expect(tokens).to_have_count(body["count"])
    expect(page.locator("h2", has_text=f"{body['count']} tokens")).to_be_visible()
    assert [int(t.get_attribute("data-id")) for t in tokens.all()] == [
        t["id"] for t in body["tokens"]
    ]
    expect(page.locator(".tok .ws[title=tab]")).to_have_count(1)
    assert any('data-testid="tokens"' in str(frame) for frame in frames), "no websocket push"


@PAGE_ONLY
def test_the_chat_template_and_another_model(app_server, page):
    _tokenize(page, app_server, "Why is the sky blue?")
    page.check("input[name=use_chat_template]")
    page.fill("input[name=system_prompt]", "Answer in one line.")
    page.click("#tokenize-form button[type=submit]")
    specials = page.locator("[data-testid=tokens] .tok.special")
    expect(specials.filter(has_text="<|im_start|>")).to_have_count(3)

    _tokenize(page, app_server, "Bonjour 🌍", model="gemma-3-270m")
    expect(specials.first).to_have_text("<bos>")


@PAGE_ONLY
def test_bad_input_gets_a_clear_message(app_server, page):
    page.goto(app_server.url + "/")
    page.fill("textarea[name=text]", "   ")
    page.click("#tokenize-form button[type=submit]")
    expect(page.locator(".error", has_text="only whitespace")).to_be_visible()

    _tokenize(page, app_server, "word " * 9000)
    expect(page.locator(".job-failed")).to_contain_text("8,192 tokens")
    expect(page.locator(".spinner")).to_have_count(0)


def test_the_api_answers_through_the_worker(app_server):
    status, body = app_server.post_json("/api/v1/tokenize/", {"model": "nope", "text": "x"})
    assert status == 400 and body["error"]["field"] == "model"
    status, body = app_server.post_json(
        "/api/v1/tokenize/", {"model": "gemma-3-270m", "text": "The cat"}
    )
    assert status == 200 and body["tokens"][0]["text"] == "<bos>"


@PAGE_ONLY
def test_a_first_visit_starts_an_example_with_a_tour_it_remembers(app_server, page):
    page.goto(app_server.url + "/")
    page.click("button.example[data-example=story]")
    expect(page).to_have_url(re.compile(r"/explore/[0-9a-f-]{36}/\?tour=1$"))
    page.wait_for_load_state()  # its scripts have run
    expect(page.locator("[data-testid=generated] .gen").nth(2)).to_be_visible()  # writing
    tour = page.locator("[data-testid=tour]")
    expect(tour).to_contain_text("1 of 7")
    expect(page.locator(".tour-target")).to_have_count(1)
    page.click("[data-tour=next]")
    expect(tour).to_contain_text("2 of 7 · Writing")
    page.click("[data-tour=back]")
    expect(tour).to_contain_text("1 of 7")
    page.click("[data-tour=skip]")
    expect(tour).to_have_count(0)
    expect(page.locator(".tour-target")).to_have_count(0)
    page.reload()  # skipped: not offered again
    expect(page.locator("[data-testid=generated] .gen").first).to_be_visible()
    expect(tour).to_have_count(0)
    page.goto(app_server.url + "/")
    expect(page.locator("[data-role=tour-flag]")).to_have_count(0)
    page.click("button.example[data-example=fact]")
    expect(page).to_have_url(re.compile(r"/explore/[0-9a-f-]{36}/$"))
    page.wait_for_load_state()  # its scripts have run
    page.click("[data-action=tour]")  # still there when asked for
    expect(tour).to_contain_text("1 of 7")
    for _ in range(6):
        page.click("[data-tour=next]")
    expect(tour).to_contain_text("7 of 7 · Teaching")
    page.click("[data-tour=next]")
    expect(tour).to_have_count(0)


@PAGE_ONLY
def test_the_home_page_looks_words_up_and_compares_two_models(app_server, page):
    page.goto(app_server.url + "/")
    tools = page.locator("#vocabulary-tools")
    tools.locator("input[name=word]").fill("hello")
    tools.locator("[data-role=lookup] button").click()
    expect(tools.locator("[data-testid=lookup] tbody tr").first).to_be_visible()
    tools.locator("[data-role=compare] button").click()
    expect(tools.locator("[data-testid=compare-0] h4")).to_contain_text("tokens")
    expect(tools.locator("[data-testid=compare-1] h4")).to_contain_text("Gemma")
    expect(tools.locator("[data-role=compare-result]")).to_contain_text("×)")
