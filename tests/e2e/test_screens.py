"""Every main page at desktop (1400×900), projector (1280×720) and phone (390×844) sizes:
screenshots under var/test-artifacts/screens/, no sideways scrolling, and projector mode
readable from the back of a room (large type, the explanations folded away, keys still step)."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, PAGE_ONLY
from tests.e2e.test_people import _new_exploration, _publish_lesson, _unique

pytestmark = pytest.mark.e2e
SIZES = {"desktop": (1400, 900), "projector": (1280, 720), "phone": (390, 844)}


def _main_pages(page, app) -> dict[str, str]:
    """A signed-in instructor with a published lesson and an exploration with tokens."""
    lesson_url = _publish_lesson(page, app, _unique("Screens"))
    exploration_url = _new_exploration(page, "Once upon a time", greedy_steps=4)
    exploration_id = re.search(r"/explore/([0-9a-f-]{36})/", exploration_url).group(1)
    return {
        "home": app.url + "/",
        "explorations": app.url + "/explore/",
        "exploration": exploration_url,
        "compare": f"{app.url}/explore/{exploration_id}/compare/",
        "lessons": app.url + "/lessons/",
        "lesson": lesson_url,
        "lesson-edit": lesson_url + "edit/",
        "account": app.url + "/accounts/",
    }


def _font_px(page, selector: str) -> float:
    return page.eval_on_selector(selector, "node => parseFloat(getComputedStyle(node).fontSize)")


@PAGE_ONLY
def test_every_main_page_at_desktop_projector_and_phone_sizes(app_server, page):
    pages = _main_pages(page, app_server)
    folder = ARTIFACTS / "screens" / app_server.mode
    folder.mkdir(parents=True, exist_ok=True)
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        for name, url in pages.items():
            page.goto(url)
            page.wait_for_load_state()
            projector = page.locator("html.projector")
            if size == "projector" and projector.count() == 0:
                page.keyboard.press("p")
            if size != "projector" and projector.count():
                page.keyboard.press("p")
            if name == "exploration":
                expect(page.locator("[data-testid=next-distribution]")).to_be_visible()
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, f"{name} at {size} scrolls sideways ({scroll}px)"
            page.screenshot(path=str(folder / f"{name}-{size}.png"), full_page=True)


@PAGE_ONLY
def test_projector_mode_is_large_quiet_remembered_and_keys_still_step(app_server, page):
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(app_server.url + "/explore/")
    page.fill("textarea[name=prompt]", "The planets of the solar system are")
    page.click("#exploration-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/explore/[0-9a-f-]{36}/"))
    page.wait_for_load_state()
    page.keyboard.press("s")
    expect(page.locator("[data-testid=generated] .gen")).to_have_count(1)
    normal = _font_px(page, "[data-testid=generated] .gen")
    expect(page.locator("#next-panel .explain")).to_be_visible()

    page.keyboard.press("p")
    expect(page.locator("html.projector")).to_have_count(1)
    expect(page.locator("[data-action=projector]")).to_have_attribute("aria-pressed", "true")
    assert _font_px(page, "[data-testid=generated] .gen") >= max(28, 1.8 * normal)
    expect(page.locator("#next-panel .explain")).to_be_hidden()
    expect(page.locator("#tree")).to_be_hidden()
    rows = page.locator("[data-testid=next-distribution] tbody tr")
    expect(rows.nth(9)).to_be_visible()
    expect(rows.nth(10)).to_be_hidden()  # fewer words: the top ten
    page.keyboard.press("s")  # the keyboard still steps
    expect(page.locator("[data-testid=generated] .gen")).to_have_count(2)
    page.reload()
    expect(page.locator("html.projector")).to_have_count(1)  # remembered
    page.click("[data-action=projector]")
    expect(page.locator("html.projector")).to_have_count(0)
    expect(page.locator("#next-panel .explain")).to_be_visible()
