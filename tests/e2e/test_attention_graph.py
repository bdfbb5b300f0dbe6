"""The Attention graph tab in Chromium: the first view (layers 0–3, the strongest link of
every token in every head) drawn in 3-D (one plane per layer, arcs coloured by head), every
layer at top-8 cut to the strongest links the page draws (and saying so), a narrower layer
range redrawn with only its links, a click on a node opening that layer and head's heatmap in
the Attention tab, and the downloads of the links shown."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, PAGE_ONLY
from tests.e2e.test_inside_panels import _exploration_with_tokens, _open

pytestmark = pytest.mark.e2e

# Plotly picks 3-D points on the GPU: nothing in the DOM says where a node is drawn, so the
# test hovers the scene on a grid until Plotly reports a node under the pointer.
WATCH_NODES = """() => {
  const figure = document.querySelector('#panel-graph .chart');
  window.graphHover = null;
  figure.on('plotly_hover', function (event) {
    const point = event.points[0];
    if (point && point.data.name === 'tokens')
      window.graphHover = { x: point.x, z: point.z, text: point.text,
        // where the node is drawn, in the window (the bbox is in page pixels)
        at: [point.bbox.x0 - window.scrollX, point.bbox.y0 - window.scrollY] };
  });
  const box = figure.getBoundingClientRect();
  return { left: box.left, top: box.top, width: box.width, height: box.height };
}"""


def _node_under_pointer(page) -> dict:
    """A node found by hovering: its position, layer, hover text and where it is drawn."""
    box = page.evaluate(WATCH_NODES)
    for row in range(25, 90, 4):
        for column in range(8, 80, 3):
            x = box["left"] + box["width"] * column / 100
            y = box["top"] + box["height"] * row / 100
            page.mouse.move(x, y)
            page.wait_for_timeout(30)
            hovered = page.evaluate("window.graphHover")
            if hovered:
                return hovered
    raise AssertionError("no node found under the pointer anywhere in the scene")


@PAGE_ONLY
def test_the_graph_draws_links_filters_layers_and_opens_a_heatmap(app_server, page):
    _exploration_with_tokens(page, app_server)
    panel = _open(page, "graph")
    chart = panel.locator("[data-role=graph-box] .chart[data-rendered]")
    expect(chart).to_have_count(1)
    facts = panel.locator("[data-testid=graph-facts]")
    expect(facts).to_contain_text("layers 0–3, all 9 heads")
    expect(panel.locator(".chart[data-drawn]")).to_have_count(1)
    edges = int(chart.get_attribute("data-edges"))
    n_tokens = int(re.search(r"(\d+) tokens", facts.inner_text()).group(1))
    assert edges == 4 * 9 * n_tokens  # the strongest link of every token in every head
    assert chart.get_attribute("data-matching") == str(edges)
    assert "strongest" not in facts.inner_text().split(":")[0]  # nothing left out
    traces = page.evaluate(
        "Array.from(document.querySelector('#panel-graph .chart').data, (t) => "
        "({ name: t.name, type: t.type, mode: t.mode, points: t.x.length, legend: t.showlegend }))"
    )
    assert {trace["type"] for trace in traces} == {"scatter3d"}
    legend = [trace["name"] for trace in traces if trace["legend"] and trace["mode"] == "lines"]
    assert legend[0] == "head 0 · K/V 0" and len(legend) == 9  # one legend entry per head
    nodes = traces[-1]
    assert nodes["name"] == "tokens" and nodes["points"] == 4 * n_tokens
    arcs = [trace for trace in traces if trace["mode"] == "lines"]
    assert all(trace["points"] % 4 == 0 for trace in arcs)  # 3 points and a gap per arc
    assert sum(trace["points"] for trace in arcs) // 4 <= edges
    page.screenshot(path=str(ARTIFACTS / "attention-graph-first-view.png"), full_page=False)

    panel.locator("select[name=last_layer]").select_option("29")
    expect(facts).to_contain_text("layers 0–29")
    panel.locator("select[name=k]").select_option("8")
    top_8 = 30 * 9 * sum(min(8, query + 1) for query in range(n_tokens))
    expect(facts).to_contain_text(f"Showing the strongest 4,000 of {top_8:,} links")
    expect(facts).to_contain_text("Narrow the layers or heads")
    expect(chart).to_have_attribute("data-edges", "4000")
    expect(chart).to_have_attribute("data-matching", str(top_8))
    page.screenshot(path=str(ARTIFACTS / "attention-graph-all-layers-top-8.png"), full_page=False)

    panel.locator("select[name=first_layer]").select_option("20")
    panel.locator("select[name=last_layer]").select_option("22")
    panel.locator("select[name=k]").select_option("2")
    expect(facts).to_contain_text("layers 20–22")
    expect(chart).to_have_attribute("data-edges", str(3 * 9 * (2 * n_tokens - 1)))
    panel.locator("[data-role=graph-box]").scroll_into_view_if_needed()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    panel.screenshot(path=str(ARTIFACTS / "attention-graph-layers-20-22.png"))

    with page.expect_download() as download:
        panel.locator("[data-role=graph-box] [data-export=csv]").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(rows) == 3 * 9 * (2 * n_tokens - 1)
    assert {row["layer"] for row in rows} == {"20", "21", "22"}
    with page.expect_download() as download:
        panel.locator("[data-role=graph-box] [data-export=json]").click()
    assert json.loads(Path(download.value.path()).read_bytes())[0]["weight"] > 0
    with page.expect_download() as download:
        panel.locator("[data-role=graph-box] [data-export=png]").click()
    assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    node = _node_under_pointer(page)
    layer = int(node["z"])
    assert 20 <= layer <= 22 and "strongest links: #" in node["text"]
    head = int(re.search(r"\(head (\d+)\)", node["text"]).group(1))  # the first: strongest
    page.mouse.move(*node["at"])  # the node itself: Plotly takes a click within 5 pixels
    page.wait_for_timeout(200)
    page.mouse.down()  # and when a frame sees the button down
    page.wait_for_timeout(200)
    page.mouse.up()
    attention = page.locator("#panel-attention")
    expect(attention).to_be_visible()
    expect(page.locator("#panel-graph")).to_be_hidden()
    heatmap = attention.locator("[data-role=heatmap-box] .chart[data-rendered]")
    expect(heatmap).to_have_attribute("data-chart", f"attention-layer{layer}-head-{head}")
    expect(attention.locator("[data-role=layer]")).to_have_value(str(layer))
    expect(attention.locator("[data-role=ranked]")).to_contain_text(f"Token #{int(node['x'])}")
    page.screenshot(path=str(ARTIFACTS / "attention-graph-clicked-heatmap.png"), full_page=False)
