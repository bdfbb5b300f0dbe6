"""The "Inside the model" panels in Chromium: each opens on a real prompt, draws its charts, and
every chart downloads as a valid PNG, SVG, CSV and JSON file."""

from __future__ import annotations

import csv
import io
import json
import re
import struct
from pathlib import Path
from xml.etree import ElementTree

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, PAGE_ONLY

pytestmark = pytest.mark.e2e

PROMPT = "The lighthouse keeper wrote: café 🎉\nThe sea was calm."


def _exploration_with_tokens(page, app, prompt: str = PROMPT, steps: int = 2) -> None:
    page.goto(app.url + "/explore/")
    page.fill("textarea[name=prompt]", prompt)
    page.uncheck("input[name=use_chat_template]")  # the panels read the prompt as typed
    page.click("#exploration-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/explore/[0-9a-f-]{36}/"))
    page.wait_for_load_state()
    for count in range(1, steps + 1):
        page.click("[data-action=greedy]")
        expect(page.locator("[data-testid=generated] .gen")).to_have_count(count)


def _open(page, panel: str):
    page.wait_for_function("window.tokenlensInside !== undefined")  # deferred after Plotly
    page.click(f"#tab-{panel}")
    body = page.locator(f"#panel-{panel}")
    expect(body).to_be_visible()
    return body


def _valid(kind: str, data: bytes) -> None:
    if kind == "png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert width > 100 and height > 100
    elif kind == "svg":
        root = ElementTree.fromstring(data)
        assert root.tag.endswith("svg")
        assert len(data) > 2000  # axes, marks and labels, not an empty frame
    elif kind == "csv":
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
        assert rows and all(len(row) == len(rows[0]) for row in rows)
    else:
        records = json.loads(data)
        assert isinstance(records, list) and records and isinstance(records[0], dict)


def _downloads_are_valid(page, chart_box) -> None:
    expect(chart_box.locator(".chart[data-rendered]")).to_have_count(1)
    for kind in ("png", "svg", "csv", "json"):
        with page.expect_download() as download:
            chart_box.locator(f"[data-export={kind}]").click()
        assert download.value.suggested_filename.endswith("." + kind)
        _valid(kind, Path(download.value.path()).read_bytes())


@PAGE_ONLY
def test_tokens_panel_links_pieces_and_text_looks_up_words_and_compares_models(app_server, page):
    _exploration_with_tokens(page, app_server)
    panel = _open(page, "tokens")
    pieces = panel.locator("[data-testid=inside-pieces] .tok")
    expect(pieces.first).to_be_visible()
    expect(panel.locator("[data-testid=inside-pieces] .tok.partial")).not_to_have_count(0)
    assert "\ufffd" not in panel.locator("[data-testid=inside-pieces]").inner_text()

    pieces.nth(1).hover()
    expect(panel.locator("[data-testid=inside-source] .src.hl")).to_have_count(1)
    expect(panel.locator("[data-testid=inside-source] .src.hl")).to_contain_text("lighthouse")
    panel.locator("[data-testid=inside-source] .src", has_text="keeper").first.hover()
    expect(panel.locator("[data-testid=inside-pieces] .tok.hl")).to_contain_text("keeper")

    panel.locator("[name=word]").fill("lighthouse")
    panel.locator("[data-role=lookup] button").click()
    lookup = panel.locator("[data-testid=lookup]")
    expect(lookup.locator("tbody tr")).to_have_count(2)
    expect(lookup).to_contain_text("with a leading space")

    panel.locator("[data-role=compare] button").click()
    expect(panel.locator("[data-testid=compare-0] h4")).to_contain_text("tokens")
    expect(panel.locator("[data-testid=compare-1] h4")).to_contain_text("Gemma")
    expect(panel.locator("[data-role=compare-result] p")).to_contain_text("×")


@PAGE_ONLY
def test_attention_panel_heatmaps_selection_and_exports(app_server, page):
    _exploration_with_tokens(page, app_server)
    panel = _open(page, "attention")
    heatmap = panel.locator("[data-role=heatmap-box]")
    expect(heatmap.locator(".chart[data-rendered]")).to_have_count(1)
    heads = panel.locator("[data-role=head] option")
    expect(heads).to_have_count(9)
    expect(heads.nth(4)).to_have_text("head 4 · K/V 1 (shared by 3, 4, 5)")

    strip = panel.locator("[data-testid=attention-strip] .tok")
    strip.nth(5).click()
    expect(panel.locator("[data-testid=ranked] li")).to_have_count(6)  # token 5 sees 0–5
    strip.nth(8).click(modifiers=["Shift"])
    expect(panel.locator("[data-role=ranked]")).to_contain_text("Tokens 5, 8 together")
    _downloads_are_valid(page, heatmap)
    _downloads_are_valid(page, panel.locator("[data-role=received-box]"))

    panel.locator("[data-role=view]").select_option("all")
    expect(heatmap.locator("[data-chart$=all-heads][data-rendered]")).to_have_count(1)
    expect(heatmap).to_contain_text("head 8 · K/V 2")
    panel.locator("[data-role=layer]").select_option("29")
    expect(heatmap.locator("[data-chart=attention-layer29-all-heads]")).to_have_count(1)
    panel.locator("[data-role=view]").select_option("mean")
    expect(heatmap.locator("[data-chart='attention-layer29-mean-over-heads']")).to_have_count(1)


# Gemma reads each of <b>, </b>, <i>, </i>, <sup>, </sup> and %{ as one token.
MARKUP_PROMPT = "Use <b>bold</b> and <i>it</i>, x<sup>2</sup> 50%{x}"


@PAGE_ONLY
def test_token_text_that_looks_like_markup_is_drawn_literally_in_charts(app_server, page):
    page.goto(app_server.url + "/explore/")
    page.select_option("select[name=model]", "gemma-3-270m")
    page.fill("textarea[name=prompt]", MARKUP_PROMPT)
    page.click("#exploration-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/explore/[0-9a-f-]{36}/"))
    page.wait_for_load_state()  # its scripts have run
    panel = _open(page, "attention")
    heatmap = panel.locator("[data-role=heatmap-box]")
    expect(heatmap.locator(".chart[data-rendered]")).to_have_count(1)
    ticks = heatmap.locator(".xtick text").evaluate_all("nodes => nodes.map(n => n.textContent)")
    for tick in ("0 <bos>", "3 <b>", "5 </b>", "8 <i>", "10 </i>", "13 <sup>", "15 </sup>"):
        assert tick in ticks, ticks
    assert any(tick.endswith(" %{") for tick in ticks), ticks
    # Nothing was read as markup: no bold, italic or raised text, no line breaks.
    styled = heatmap.locator("tspan[style*=bold], tspan[style*=italic], tspan[dy]")
    expect(styled).to_have_count(0)
    received = panel.locator("[data-role=received-box]")
    expect(received.locator(".chart[data-rendered]")).to_have_count(1)
    bars = received.locator(".xtick text").evaluate_all("nodes => nodes.map(n => n.textContent)")
    assert "3 <b>" in bars and "13 <sup>" in bars, bars
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    heatmap.screenshot(path=str(ARTIFACTS / "literal-markup-tokens.png"))


@PAGE_ONLY
def test_embeddings_panel_vector_neighbours_positions_map_and_exports(app_server, page):
    _exploration_with_tokens(page, app_server, steps=1)
    panel = _open(page, "embeddings")
    expect(panel.locator("[data-testid=neighbours] li")).to_have_count(10)
    for role in ("vector-box", "positions-box"):
        _downloads_are_valid(page, panel.locator(f"[data-role={role}]"))
    expect(panel.locator(".formula")).to_contain_text("base^(−2i/d)")

    panel.locator("[data-testid=embedding-strip] .tok").nth(1).click()
    expect(panel.locator("[data-testid=embedding-facts]")).to_contain_text("lighthouse")
    expect(panel.locator("[data-testid=embedding-facts]")).to_contain_text("576 numbers")
    panel.locator("[data-action=sort]").click()
    expect(panel.locator("[data-role=vector-box]")).to_contain_text("sorted by value")

    page.reload()  # Chromium holds back an 11th download from one page: start a fresh one
    panel = _open(page, "embeddings")
    _downloads_are_valid(page, panel.locator("[data-role=map-box]"))


@PAGE_ONLY
def test_head_clusters_map_labels_hover_and_exports(app_server, page):
    _exploration_with_tokens(page, app_server, prompt=PROMPT * 2, steps=1)
    panel = _open(page, "heads")
    scatter = panel.locator("[data-role=scatter-box]")
    expect(scatter.locator(".chart[data-rendered]")).to_have_count(1)
    expect(panel.locator("[data-testid=clusters] tbody tr")).to_have_count(4)
    labels = panel.locator("[data-testid=clusters] tbody tr td:first-child").all_inner_texts()
    assert len(set(labels)) == 4 and all("heads" in label for label in labels)
    hover = panel.locator("[data-role=hover-box]")
    expect(hover.locator(".chart[data-rendered]")).to_have_count(1)
    first = hover.locator(".chart").get_attribute("data-chart")
    points = scatter.locator(".scatterlayer .point")
    for index in range(0, points.count(), 7):
        points.nth(index).hover(force=True)
        page.wait_for_timeout(300)
        if hover.locator(".chart").get_attribute("data-chart") != first:
            break
    assert re.fullmatch(
        r"attention-layer\d+-head-\d+", hover.locator(".chart").get_attribute("data-chart")
    )
    assert hover.locator(".chart").get_attribute("data-chart") != first
    _downloads_are_valid(page, scatter)
    _downloads_are_valid(page, hover)

    panel.locator("[data-role=k]").select_option("2")
    expect(panel.locator("[data-testid=clusters] tbody tr")).to_have_count(2)


@PAGE_ONLY
def test_layers_panel_lens_contrast_two_models_and_exports(app_server, page):
    _exploration_with_tokens(page, app_server, prompt="The capital of France is", steps=2)
    page.locator("[data-testid=generated] .gen").nth(1).click()
    page.click("[data-lens-step]")  # from a step's alternatives: the prediction behind it
    panel = page.locator("#panel-layers")
    expect(panel).to_be_visible()
    expect(panel.locator("[data-testid=lens-facts]")).to_contain_text("the text goes on with")
    table = panel.locator("[data-role=table-box]")
    expect(table.locator(".chart[data-rendered]")).to_have_count(1)
    expect(panel.locator("[data-role=trace-box] .chart[data-rendered]")).to_have_count(1)
    _downloads_are_valid(page, table)

    panel.locator("[data-testid=lens-strip] .tok").nth(2).click()
    expect(panel.locator("[data-testid=lens-facts]")).to_contain_text("After token #2")
    panel.locator("[data-role=contrast] [name=a]").fill(" Paris")
    panel.locator("[data-role=contrast] [name=b]").fill(" London")
    panel.locator("[data-role=contrast] button").click()
    expect(panel.locator("[data-testid=contrast-facts]")).to_contain_text("favour")
    _downloads_are_valid(page, panel.locator("[data-role=contrast-box]"))

    panel.locator("[data-role=models] button").click()
    expect(panel.locator("[data-testid=model-compare] table")).to_contain_text("Gemma")
    expect(panel.locator("[data-role=models-box] .chart[data-rendered]")).to_have_count(1)


@PAGE_ONLY
def test_attribution_panel_from_a_step_methods_and_exports(app_server, page):
    _exploration_with_tokens(page, app_server, prompt="The capital of France is", steps=2)
    page.locator("[data-testid=generated] .gen").nth(1).click()
    page.locator("[data-attribution-step]").click()
    panel = page.locator("#panel-attribution")
    expect(panel).to_be_visible()
    # By default the path is refined until it converges, and the delta stands beside the scores.
    facts = panel.locator("[data-testid=attribution-facts]")
    expect(facts).to_contain_text("refined until the delta was at most 5 % of the change")
    expect(facts.get_by_test_id("ig-delta")).to_contain_text("% of the change")
    expect(facts.get_by_test_id("ig-warning")).to_have_count(0)
    panel.locator("[data-role=n-steps]").select_option("8")
    expect(panel.locator("[data-testid=attribution-facts]")).to_contain_text("integrated gradients")
    expect(panel.locator("[data-testid=attribution-facts]")).to_contain_text("add up to")
    strip = panel.locator("[data-testid=attribution-strip] .tok")
    expect(strip.nth(0)).to_have_attribute("title", re.compile("score"))

    panel.locator("[data-role=method]").select_option("saliency")
    expect(panel.locator("[data-testid=attribution-facts]")).to_contain_text("by saliency")
    _downloads_are_valid(page, panel.locator("[data-role=scores-box]"))

    panel.locator("[data-role=candidate] [name=candidate]").fill(" Paris")
    panel.locator("[data-role=candidate] button").click()
    expect(panel.locator("[data-testid=attribution-facts]")).to_contain_text("Paris")

    # Hovering a generated token explains it in a card beside it, shaded by score.
    panel.locator("[data-role=hover]").check()
    generated = page.locator("[data-testid=generated] .gen")
    generated.nth(1).hover()
    card = page.locator("[data-testid=attribution-card]")
    expect(card).to_be_visible()
    expect(card).to_contain_text("by saliency")
    expect(card.locator(".tok.selected")).to_have_count(1)
    expect(card.locator(".heat .tok").first).to_have_attribute("title", re.compile("score"))
    page.locator("h1").hover()
    expect(card).to_be_hidden()


LONG_TEXT = "The lighthouse keeper climbed the stairs every evening and wrote the weather. " * 12


@PAGE_ONLY
def test_a_long_attribution_shows_its_progress_and_can_be_cancelled(app_server, page):
    _exploration_with_tokens(page, app_server, prompt=LONG_TEXT, steps=1)
    page.locator("[data-testid=generated] .gen").nth(0).click()
    page.locator("[data-attribution-step]").click()
    panel = page.locator("#panel-attribution")
    panel.locator("[data-role=n-steps]").select_option("64")
    expect(panel.get_by_test_id("progress")).to_be_visible()
    panel.locator("[data-action=cancel-job]").click()
    expect(panel.locator("[data-role=status]")).to_contain_text("Cancelled")
    expect(panel.get_by_test_id("progress")).to_have_count(0)


@PAGE_ONLY
def test_sampling_panel_takes_the_sliders_settings_apart_and_exports(app_server, page):
    _exploration_with_tokens(page, app_server, "The cat sat on the mat. The cat", steps=2)
    expect(page.locator("[data-testid=entropy-line] .entropy-point")).to_have_count(2)
    page.fill("#slider-temperature", "0.7")
    page.fill("#slider-top_k", "5")
    expect(page.locator("[data-testid=next-distribution] tbody tr:not(.removed)")).to_have_count(5)
    panel = _open(page, "sampling")
    stages = panel.locator("[data-role=stages-box]")
    expect(stages.locator(".chart[data-rendered]")).to_have_count(1)
    expect(panel.locator("[data-role=settings]")).to_contain_text("T 0.7, k 5")
    table = panel.locator("[data-testid=sampling-stages]")
    expect(table.locator("thead th")).to_have_count(2 + 8)  # token, logit, raw … min-p
    expect(table.locator("td.removed-here").first).to_have_text("removed")
    rules = panel.locator("[data-testid=sampling-rules]")
    expect(rules.locator("tbody tr")).to_have_count(6)
    expect(rules.locator("tr[data-rule=greedy] td").nth(2)).to_contain_text("1 (")
    expect(rules.locator("tr[data-rule=current] td").nth(2)).to_contain_text("5 (")
    drawn = rules.locator("tr[data-rule=current] .tok").all_inner_texts()
    assert sum(int(text.rsplit("×", 1)[1]) for text in drawn) == 30
    for role in ("temperature-box", "top_p-box", "top_k-box", "rules-box"):
        expect(panel.locator(f"[data-role={role}] .chart[data-rendered]")).to_have_count(1)

    page.fill("#slider-top_k", "2")  # a slider moves: the panel takes the new settings apart
    expect(panel.locator("[data-role=settings]")).to_contain_text("T 0.7, k 2")
    expect(rules.locator("tr[data-rule=current] td").nth(2)).to_contain_text("2 (")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    panel.screenshot(path=str(ARTIFACTS / f"sampling-panel-{app_server.mode}.png"))
    _downloads_are_valid(page, stages)
    _downloads_are_valid(page, panel.locator("[data-role=rules-box]"))


@PAGE_ONLY
def test_the_charts_under_the_text_export_like_the_others(app_server, page):
    _exploration_with_tokens(page, app_server, "The cat sat on the mat. The cat", steps=3)
    for name in ("surprisal", "entropy"):
        figure = page.locator(f"figure.{name}")
        for kind in ("png", "svg", "csv", "json"):
            with page.expect_download() as download:
                figure.locator(f"[data-svg-export={kind}]").click()
            assert download.value.suggested_filename == f"tokenlens-{name}.{kind}"
            data = Path(download.value.path()).read_bytes()
            if kind == "svg":  # a small figure: valid, if under _valid's size floor
                assert ElementTree.fromstring(data).tag.endswith("svg") and b"<rect" in data
            else:
                _valid(kind, data)
            if kind == "json":
                records = json.loads(data)
                assert [record["index"] for record in records] == [0, 1, 2]
