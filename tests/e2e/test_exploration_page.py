"""A new user starts an exploration, steps, generates and stops, branches from a token, switches
branches and reloads to find everything again — in Chromium, in both deployment modes."""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PAGE_ONLY

pytestmark = pytest.mark.e2e


def _new_exploration(page, app, prompt: str, **fields) -> None:
    page.goto(app.url + "/explore/")
    page.fill("textarea[name=prompt]", prompt)
    for name, value in fields.items():
        page.fill(f"[name={name}]", str(value))
    page.click("#exploration-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/explore/[0-9a-f-]{36}/"))
    page.wait_for_load_state()  # its scripts have run


def _tokens(page):
    return page.locator("[data-testid=generated] .gen")


def test_step_branch_switch_and_come_back(app_server, page):
    _new_exploration(page, app_server, "The capital of France is", seed=7)
    for count in range(1, 6):
        page.click("[data-action=step]")
        expect(_tokens(page)).to_have_count(count)
    first_five = [token.inner_text() for token in _tokens(page).all()]

    _tokens(page).nth(2).click()
    table = page.locator("[data-testid=alternatives]")
    expect(table.locator("tr.chosen")).to_have_count(1)
    alternative = table.locator("tbody tr:not(.chosen)").first
    alternative_text = alternative.locator("td").first.inner_text()
    alternative.locator("[data-action=fork]").click()

    expect(page).to_have_url(re.compile(r"\?branch="))
    page.wait_for_load_state()  # its scripts have run
    expect(_tokens(page)).to_have_count(3)
    assert [t.inner_text() for t in _tokens(page).all()][:2] == first_five[:2]
    expect(_tokens(page).nth(2)).to_have_text(alternative_text)
    expect(page.locator(".tree li")).to_have_count(2)

    page.click("[data-action=compare]")
    columns = page.locator("[data-testid=compare] .compare-column")
    expect(columns).to_have_count(2)
    expect(page.locator(".shared .gen")).to_have_count(2)

    page.go_back()
    page.locator(".tree a", has_text="main").click()
    expect(_tokens(page)).to_have_count(5)
    page.reload()
    assert [t.inner_text() for t in _tokens(page).all()] == first_five
    page.locator("details.prompt-tokens summary").click()
    expect(page.locator("[data-testid=prompt-tokens] .tok")).not_to_have_count(0)


@PAGE_ONLY
def test_a_step_is_answered_on_the_websocket_even_before_its_own_response(app_server, page):
    """Step answers 202 at once and the step comes over the page's websocket; an answer that
    overtakes its own 202 is not covered by a stale "Stepping…"."""
    _new_exploration(page, app_server, "The capital of France is", seed=7)
    expect(page.locator("#reply-to")).not_to_have_value("")

    def late(route):
        response = route.fetch()
        time.sleep(1.5)  # the websocket's answer gets there first
        route.fulfill(response=response)

    page.route("**/step/", late)
    with page.expect_response("**/step/") as stepped:
        page.click("[data-action=step]")
    assert stepped.value.status == 202
    page.wait_for_timeout(300)
    expect(_tokens(page)).to_have_count(1)
    expect(page.locator("[data-testid=stepping]")).to_have_count(0)
    expect(page.locator("[data-action=step]")).to_be_visible()
    page.unroute("**/step/")
    page.click("[data-action=step]")
    expect(_tokens(page)).to_have_count(2)


def test_generate_streams_until_stopped_and_undo(app_server, page):
    _new_exploration(page, app_server, "Once upon a time", max_new_tokens=200)
    page.select_option("select[name=delay_ms]", "250")
    page.click("[data-action=generate]")
    expect(page.locator("[data-testid=generating]")).to_be_visible()
    expect(_tokens(page).nth(2)).to_be_visible()  # streamed over the websocket
    page.click("[data-action=stop]")
    expect(page.locator("[data-testid=generating]")).to_have_count(0, timeout=30_000)
    expect(page.locator("[data-action=step]")).to_be_visible()
    count = _tokens(page).count()
    assert 3 <= count < 200
    page.click("[data-action=undo]")
    expect(_tokens(page)).to_have_count(count - 1)


def test_two_students_generate_while_a_third_steps(app_server, chromium):
    """A class at once: two students press Generate to the end while a third steps. Each page
    streams its own tokens, the third student's steps are answered while both generate (they
    share the model's passes), and each Stop ends its own generation only."""
    contexts = [chromium.new_context(viewport={"width": 1280, "height": 900}) for _ in range(3)]
    try:
        pages = [context.new_page() for context in contexts]
        prompts = ["Once upon a time", "The ocean at night", "My favourite fruit is"]
        for page, prompt in zip(pages, prompts, strict=True):
            page.set_default_timeout(60_000)
            _new_exploration(page, app_server, prompt, max_new_tokens=300)
        *generating, stepping = pages
        for page in generating:
            page.select_option("select[name=delay_ms]", "250")
            page.click("[data-action=generate]")
        for page in generating:
            expect(_tokens(page).nth(1)).to_be_visible()  # streamed over its websocket
        for count in range(1, 6):
            stepping.click("[data-action=step]")
            expect(_tokens(stepping)).to_have_count(count)
        for page in generating:  # still going: the steps did not wait for them to finish
            expect(page.locator("[data-testid=generating]")).to_be_visible()
        first, second = generating
        first.click("[data-action=stop]")
        expect(first.locator("[data-testid=generating]")).to_have_count(0, timeout=30_000)
        expect(second.locator("[data-testid=generating]")).to_be_visible()
        grew_from = _tokens(second).count()
        expect(_tokens(second).nth(grew_from)).to_be_visible()  # the other one goes on
        second.click("[data-action=stop]")
        expect(second.locator("[data-testid=generating]")).to_have_count(0, timeout=30_000)
        for page in pages:  # what each page shows is what was saved
            shown = _tokens(page).count()
            page.reload()
            expect(_tokens(page)).to_have_count(shown)
        assert _tokens(stepping).count() == 5
    finally:
        for context in contexts:
            context.close()


@PAGE_ONLY
def test_forcing_text_and_clear_errors(app_server, page):
    _new_exploration(page, app_server, "My favourite fruit is", temperature=0)
    page.click("[data-action=step]")
    expect(_tokens(page).first).to_have_attribute("title", re.compile("greedy"))
    page.fill("#force-text", " mango")
    page.click("[data-action=force]")
    expect(page.locator("[data-testid=generated] .gen.forced")).not_to_have_count(0)
    expect(_tokens(page)).not_to_have_count(1)
    expect(page.locator("[data-testid=generated]")).to_contain_text("mango")
    page.fill("input[name=token_id]", "99999999")
    page.click("[data-action=force]")
    expect(page.locator("#branch-actions .error")).to_contain_text(
        "outside this model's vocabulary"
    )

    page.goto(app_server.url + "/explore/")
    page.fill("textarea[name=prompt]", "   ")
    page.click("#exploration-form button[type=submit]")
    expect(page.locator("#exploration-form .error")).to_contain_text("empty")


@PAGE_ONLY
def test_sliders_preview_the_next_token_and_keys_step(app_server, page):
    _new_exploration(page, app_server, "The capital of France is")
    preview = page.locator("[data-testid=next-distribution]")
    expect(preview).to_be_visible()
    page.fill("#slider-temperature", "0")
    expect(preview).to_contain_text("removed by temperature")
    expect(preview.locator("tbody tr:not(.removed)")).to_have_count(1)
    expect(_tokens(page)).to_have_count(0)  # previewing generates nothing

    page.keyboard.press("s")
    expect(_tokens(page)).to_have_count(1)
    expect(page.locator("[data-testid=surprisal] rect")).to_have_count(1)


def _sideways(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


@PAGE_ONLY
def test_the_pages_fit_a_phone_and_every_hover_has_a_tap(app_server, chromium):
    context = chromium.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    phone = context.new_page()
    phone.set_default_timeout(60_000)
    try:
        for path in ("/", "/explore/", "/lessons/"):
            phone.goto(app_server.url + path)
            assert _sideways(phone) <= 390, f"{path} scrolls sideways ({_sideways(phone)}px)"
        _new_exploration(phone, app_server, "A phone-sized prompt")
        for count in (1, 2):
            phone.tap("[data-action=greedy]")
            expect(_tokens(phone)).to_have_count(count)
        expect(phone.locator("[data-testid=next-distribution]")).to_be_visible()
        _tokens(phone).nth(0).tap()  # a token's details: a tap, not a hover title
        expect(phone.locator("[data-testid=step-facts]")).to_contain_text("Token id")
        assert _sideways(phone) <= 390, f"the exploration scrolls sideways ({_sideways(phone)}px)"
        phone.wait_for_function("window.tokenlensInside !== undefined")
        phone.tap("#tab-tokens")
        pieces = phone.locator("[data-testid=inside-pieces] .tok")
        expect(pieces).not_to_have_count(0)
        pieces.nth(1).tap()
        expect(phone.locator("[data-testid=piece-facts]")).to_contain_text("id ")
        expect(pieces.nth(1)).to_have_class(re.compile("hl"))
        phone.tap("#tab-sampling")
        expect(phone.locator("[data-testid=sampling-rules]")).to_be_visible()
        assert _sideways(phone) <= 390, (
            f"the Sampling panel scrolls sideways ({_sideways(phone)}px)"
        )
    finally:
        context.close()


@PAGE_ONLY
def test_a_preset_moves_the_sliders_and_updates_the_preview(app_server, page):
    _new_exploration(page, app_server, "The weather today is")
    preview = page.locator("[data-testid=next-distribution]")
    expect(preview).to_be_visible()
    page.click("button.preset[title=reliable]")
    expect(page.locator("#slider-top_k")).to_have_value("20")
    expect(preview).to_contain_text("removed by top_p")
    page.click("button.preset[title=greedy]")
    expect(page.locator("#slider-temperature")).to_have_value("0")
    expect(preview.locator("tbody tr:not(.removed)")).to_have_count(1)


@PAGE_ONLY
def test_a_second_tab_follows_live(app_server, page):
    _new_exploration(page, app_server, "The three primary colours are", max_new_tokens=12)
    other = page.context.new_page()
    try:
        other.goto(page.url)
        expect(other.locator("[data-testid=next-distribution]")).to_be_visible()  # connected
        page.click("[data-action=step]")
        expect(_tokens(page)).to_have_count(1)
        expect(_tokens(other)).to_have_count(1)  # pushed, not reloaded
        page.click("[data-action=generate]")
        expect(other.locator("[data-testid=finished]")).to_be_visible()
        expect(_tokens(other)).to_have_count(12)
        assert [t.inner_text() for t in _tokens(other).all()] == [
            t.inner_text() for t in _tokens(page).all()
        ]
    finally:
        other.close()


def _panel_matches_the_api(page, app) -> None:
    """The Next-token panel is about the tokens the page shows, and says what the API says for
    exactly those tokens."""
    table = page.locator("[data-testid=next-distribution]")
    shown = ",".join(t.get_attribute("data-token-id") for t in _tokens(page).all())
    expect(table).to_have_attribute("data-for", shown)
    context = page.evaluate("JSON.parse(document.getElementById('inside-context').textContent)")
    csrf = page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken']")
    answer = page.request.post(
        app.url + "/api/v1/distribution/",
        headers={"X-CSRFToken": csrf, "Content-Type": "application/json"},
        data={
            "model": context["model"],
            "prompt": context["prompt"],
            "system_prompt": context["system_prompt"],
            "use_chat_template": context["use_chat_template"],
            "completion_ids": [int(i) for i in shown.split(",") if i],
        },
    )
    assert answer.ok, answer.text()
    expected = [str(candidate["id"]) for candidate in answer.json()["tokens"]]
    rows = table.locator("tbody tr")
    assert [row.get_attribute("data-token-id") for row in rows.all()] == expected
    count = len(shown.split(",")) if shown else 0
    position = page.locator("[data-testid=next-position]")
    expect(position).to_contain_text(f"#{count - 1}" if count else "Right after the prompt")


@PAGE_ONLY
def test_the_next_token_panel_always_describes_the_end_of_the_branch(app_server, page):
    """Step, undo, generate, branch and switch: after each, the panel is about the branch's
    end as the page shows it, and the Branches panel says whether the branch has ended."""
    asked = []
    page.on("request", lambda request: "/next/" in request.url and asked.append(request.url))
    _new_exploration(page, app_server, "The capital of France is", max_new_tokens=6)
    expect(page.locator("[data-testid=next-distribution]")).to_be_visible()
    _panel_matches_the_api(page, app_server)
    for count in range(1, 4):
        page.click("[data-action=greedy]")
        expect(_tokens(page)).to_have_count(count)
        _panel_matches_the_api(page, app_server)
    page.click("[data-action=undo]")
    expect(_tokens(page)).to_have_count(2)
    _panel_matches_the_api(page, app_server)

    page.click("[data-action=generate]")
    expect(page.locator("[data-testid=finished]")).to_be_visible()
    expect(_tokens(page)).to_have_count(6)
    _panel_matches_the_api(page, app_server)
    current = page.locator(".tree li.current")
    expect(current).to_contain_text("ended:")
    page.click("[data-action=undo]")
    expect(_tokens(page)).to_have_count(5)
    expect(current).not_to_contain_text("ended:")  # re-read without a reload
    _panel_matches_the_api(page, app_server)

    _tokens(page).nth(4).click()
    alternatives = page.locator("[data-testid=alternatives]")
    expect(alternatives).to_be_visible()
    page.click("[data-action=undo]")  # the token it explains is gone
    expect(_tokens(page)).to_have_count(4)
    expect(alternatives).to_have_count(0)
    expect(page.locator("#alternatives")).to_contain_text("no longer in this branch")

    _tokens(page).nth(1).click()
    alternatives.locator("tbody tr:not(.chosen) [data-action=fork]").first.click()
    expect(page).to_have_url(re.compile(r"\?branch="))
    page.wait_for_load_state()  # its scripts have run
    expect(_tokens(page)).to_have_count(2)
    _panel_matches_the_api(page, app_server)
    page.locator(".tree a", has_text="main").click()
    expect(_tokens(page)).to_have_count(4)
    _panel_matches_the_api(page, app_server)

    page.locator("[data-testid=next-distribution] [data-action=choose]").nth(1).click()
    expect(_tokens(page)).to_have_count(5)
    _panel_matches_the_api(page, app_server)
    page.select_option("#top-n", "50")
    expect(page.locator("[data-testid=next-distribution] tbody tr")).to_have_count(50)
    assert asked and not [url for url in asked if "csrfmiddlewaretoken" in url]


@PAGE_ONLY
def test_streaming_logs_no_errors_in_the_console(app_server, page):
    """The stepping tab and a following tab get every token without a console error (a pushed
    fragment for a place the page does not show is dropped, not an htmx:oobErrorNoTarget)."""
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    _new_exploration(page, app_server, "Three colours:", max_new_tokens=5)
    other = page.context.new_page()
    other.on("console", lambda message: message.type == "error" and errors.append(message.text))
    try:
        other.goto(page.url)
        expect(other.locator("[data-testid=next-distribution]")).to_be_visible()
        page.click("[data-action=step]")
        expect(_tokens(other)).to_have_count(1)
        page.click("[data-action=generate]")
        expect(other.locator("[data-testid=finished]")).to_be_visible()
        expect(page.locator("[data-testid=finished]")).to_be_visible()
        expect(page.locator("[data-testid=next-distribution]")).to_be_visible()
    finally:
        other.close()
    assert errors == []


@PAGE_ONLY
def test_the_new_exploration_form_follows_the_model_and_the_preset(app_server, page):
    page.goto(app_server.url + "/explore/")
    box = page.locator("input[name=use_chat_template]")
    expect(box).to_be_checked()  # the default chat model has a template
    page.select_option("select[name=model]", "gemma-3-270m")
    expect(box).to_be_disabled()
    expect(box).not_to_be_checked()
    expect(page.locator("[data-role=chat-template-note]")).to_contain_text("has none")
    page.select_option("select[name=model]", "smollm2-135m-instruct")
    expect(box).to_be_enabled()
    page.select_option("select[name=preset]", "reliable")
    expect(page.locator("#id_top_k")).to_have_value("20")
    expect(page.locator("#out-temperature")).to_have_text("0.3")
    page.fill("#id_temperature", "0.5")  # moved afterwards: custom again
    expect(page.locator("select[name=preset]")).to_have_value("")


@PAGE_ONLY
def test_unkept_slider_moves_survive_a_reload_and_keeping_says_so(app_server, page):
    _new_exploration(page, app_server, "The weather today is")
    preview = page.locator("[data-testid=next-distribution]")
    expect(preview).to_be_visible()
    page.fill("#slider-top_k", "3")
    expect(preview.locator("tbody tr:not(.removed)")).to_have_count(3)
    page.reload()
    expect(page.locator("#slider-top_k")).to_have_value("3")
    expect(page.locator("[data-testid=params-restored]")).to_contain_text("not kept")
    expect(preview.locator("tbody tr:not(.removed)")).to_have_count(3)
    page.click("[data-action=keep-params]")
    expect(page.locator("[data-testid=params-kept]")).to_contain_text("top-k 3")
    page.reload()
    expect(page.locator("#slider-top_k")).to_have_value("3")  # kept on the server now
    expect(page.locator("[data-testid=params-restored]")).to_have_count(0)
    page.fill("#slider-top_k", "9")
    page.click("[data-action=reset-params]")
    expect(page.locator("#slider-top_k")).to_have_value("3")
    expect(preview.locator("tbody tr:not(.removed)")).to_have_count(3)


@PAGE_ONLY
def test_model_off_hides_what_the_model_says_while_the_class_writes(app_server, page):
    _new_exploration(page, app_server, "Roses are red, violets are")
    page.click("[data-action=greedy]")
    expect(_tokens(page)).to_have_count(1)
    expect(page.locator("[data-testid=next-distribution]")).to_be_visible()
    page.keyboard.press("m")
    expect(page.locator("[data-testid=llm-off-note]")).to_be_visible()
    expect(page.locator("[data-testid=next-distribution]")).to_have_count(0)
    expect(page.locator("[data-testid=surprisal]")).to_be_hidden()
    expect(page.locator("[data-action=step]")).to_be_disabled()
    page.keyboard.press("s")  # the model does not step while it is off
    page.fill("#force-text", " blue")  # the class writes the next words itself
    page.click("[data-action=force]")
    expect(_tokens(page)).to_have_count(2)  # " blue" is one token; "s" added none
    expect(page.locator("[data-action=step]")).to_be_disabled()  # still off after the swap
    expect(page.locator("[data-testid=next-distribution]")).to_have_count(0)
    page.reload()
    expect(page.locator("[data-testid=llm-off-note]")).to_be_visible()  # remembered
    page.click("[data-action=llm-off]")
    expect(page.locator("[data-testid=llm-off-note]")).to_be_hidden()
    expect(page.locator("[data-action=step]")).to_be_enabled()
    _panel_matches_the_api(page, app_server)
