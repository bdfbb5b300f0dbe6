// The Attention graph panel: the strongest attention links of a range of layers in 3-D, one
// plane per layer. Only the links drawn are sent (POST /api/v1/attention/graph/): at most
// MAX_DRAWN, the strongest of those the rule lets through; clicking a node or a link opens that
// layer and head's heatmap in the Attention panel.

import { timings } from "./context.js";
import { modelFacts, post, sequence } from "./api.js";
import { make } from "./dom.js";
import { guarded } from "./status.js";
import { chart } from "./chart.js";
import { panels } from "./tabs.js";
import { arcTraces, edgeList, edgeRows, nodeTrace, sceneLayout } from "./attention-graph-data.js";

// The most links asked for and drawn at once. Headless Chromium with software WebGL draws
// about 4,000 arcs a second (bench/attention.py), so this keeps a redraw to a few seconds
// there; a browser with a GPU draws them at once.
const MAX_DRAWN = 4000;
const FIRST_LAYERS = 4; // the first view: layers 0–3 (at k = 1), quick to read and to draw

function frames(count) {
  return new Promise(function (resolve) {
    (function next(left) { if (!left) resolve(); else requestAnimationFrame(function () { next(left - 1); }); })(count);
  });
}

export function createGraphPanel() {
  const panel = document.getElementById("panel-graph");
  const controls = panel.querySelector("[data-role=graph-controls]");
  const field = function (name) { return controls.querySelector("[name=" + name + "]"); };
  let known = null;
  let asked = 0; // the latest request: an older answer that arrives after it is not drawn

  // The layer and head choices, made once from the model's facts (its layer and head counts).
  async function fillChoices() {
    if (known) return;
    known = await modelFacts();
    ["first_layer", "last_layer"].forEach(function (name) {
      for (let index = 0; index < known.n_layers; index++) field(name).appendChild(make("option", { value: index }, String(index)));
    });
    field("last_layer").value = String(Math.min(known.n_layers, FIRST_LAYERS) - 1);
    const heads = field("heads");
    const group = Math.max(1, known.n_heads / (known.n_kv_heads || known.n_heads));
    for (let head = 0; head < known.n_heads; head++) heads.appendChild(make("option", { value: "h" + head }, "head " + head));
    if (group > 1 && known.n_kv_heads > 1) {
      for (let kv = 0; kv < known.n_heads / group; kv++) {
        heads.appendChild(make("option", { value: "kv" + kv }, "heads " + kv * group + "–" + ((kv + 1) * group - 1) + " (K/V " + kv + ")"));
      }
    }
  }

  function chosenHeads() {
    const value = field("heads").value;
    if (value.startsWith("h")) return [Number(value.slice(1))];
    if (value.startsWith("kv")) {
      const group = known.n_heads / known.n_kv_heads;
      const first = Number(value.slice(2)) * group;
      return Array.from({ length: group }, function (_v, i) { return first + i; });
    }
    return [];
  }

  // k for top-k, the threshold for a threshold: only the one in use is shown.
  function showRuleFields() {
    const rule = field("rule").value;
    field("k").closest("label").style.display = rule === "top_k" ? "" : "none";
    field("threshold").closest("label").style.display = rule === "threshold" ? "" : "none";
  }

  function request() {
    return Object.assign(sequence(), {
      first_layer: Number(field("first_layer").value), last_layer: Number(field("last_layer").value),
      heads: chosenHeads(), rule: field("rule").value, k: Number(field("k").value),
      threshold: Number(field("threshold").value), skip_first: field("skip_first").checked,
      max_edges: MAX_DRAWN,
    });
  }

  function describe(result) {
    const rule = result.rule === "top_k" ? "the " + (result.k === 1 ? "strongest link" : result.k + " strongest links") + " of each token"
      : "every link of weight " + result.threshold + " or more";
    const facts = panel.querySelector("[data-role=graph-facts]");
    const shown = result.n_edges < result.n_matching
      ? "Showing the strongest " + result.n_edges.toLocaleString() + " of " + result.n_matching.toLocaleString() + " links"
      : result.n_edges.toLocaleString() + " links";
    facts.textContent = shown + ": " + rule + " in each head" +
      (result.skip_first ? ", leaving out the first token" : "") + ", layers " + result.layers[0] + "–" +
      result.layers[result.layers.length - 1] + ", " + (result.heads.length === known.n_heads ? "all " : "") +
      result.heads.length + " head" + (result.heads.length > 1 ? "s" : "") + ", " + result.n_tokens + " tokens." +
      (result.n_edges < result.n_matching ? " Narrow the layers or heads (or choose " +
        (result.rule === "top_k" ? "a smaller k" : "a higher threshold") + ") to see them all." : "");
  }

  async function draw(result) {
    const started = performance.now();
    const edges = edgeList(result);
    const arcs = arcTraces(result, edges);
    const nodes = nodeTrace(result, edges);
    const box = panel.querySelector("[data-role=graph-box]");
    const name = "attention-graph-layers" + result.layers[0] + "-" + result.layers[result.layers.length - 1];
    await chart(box, name, arcs.traces.concat([nodes.trace]), {
      height: 680, margin: { l: 0, r: 0, t: 40, b: 0 }, scene: sceneLayout(result),
      title: { text: "Strongest attention links, layers " + result.layers[0] + "–" + result.layers[result.layers.length - 1] },
      legend: { title: { text: "head (click to hide)" }, itemsizing: "constant" },
    }, function () { return edgeRows(result, edges); }, function (figure) {
      figure.on("plotly_click", function (event) {
        const point = event.points && event.points[0];
        if (!point) return;
        const picked = point.curveNumber === arcs.traces.length
          ? nodes.nodes[point.pointNumber].strongest
          : (arcs.edgesOf[point.curveNumber] || [])[Math.floor(point.pointNumber / arcs.pointsPerArc)];
        if (picked) panels.attention.show(picked.layer, picked.head, picked.query);
      });
    });
    const figure = box.querySelector(".chart");
    figure.dataset.edges = String(result.n_edges);
    figure.dataset.matching = String(result.n_matching);
    describe(result);
    await frames(2); // the scene is drawn in the frame after newPlot: count it in
    timings.graphRenderMs = performance.now() - started;
    figure.dataset.drawn = "1";
  }

  async function load() {
    await guarded(panel, "Reading the strongest links…", async function () {
      await fillChoices();
      showRuleFields();
      const started = performance.now();
      const mine = ++asked;
      const result = await post("attention/graph", request());
      if (mine !== asked) return;
      timings.graphFetchMs = performance.now() - started;
      timings.graphEdges = result.n_edges;
      timings.graphMatching = result.n_matching;
      await draw(result);
    });
  }

  controls.addEventListener("change", function () { load(); });
  return { load: load };
}
