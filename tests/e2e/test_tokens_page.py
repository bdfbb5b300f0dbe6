"""A new user opens the home page, types text and sees its tokens, in both deployment modes."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def _tokenize(page, app, text: str, model: str = "smollm2-135m-instruct") -> None:
    page.goto(app.url + "/")
    page.select_option("select[name=model]", model)
    page.fill("textarea[name=text]", text)
    page.click("button[type=submit]")


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


def test_the_chat_template_and_another_model(app_server, page):
    _tokenize(page, app_server, "Why is the sky blue?")
    page.check("input[name=use_chat_template]")
    page.fill("input[name=system_prompt]", "Answer in one line.")
    page.click("button[type=submit]")
    specials = page.locator("[data-testid=tokens] .tok.special")
    expect(specials.filter(has_text="<|im_start|>")).to_have_count(3)

    _tokenize(page, app_server, "Bonjour 🌍", model="gemma-3-270m")
    expect(specials.first).to_have_text("<bos>")


def test_bad_input_gets_a_clear_message(app_server, page):
    page.goto(app_server.url + "/")
    page.fill("textarea[name=text]", "   ")
    page.click("button[type=submit]")
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
