// The Attention panel: one layer's heads as a heatmap, small multiples, or the mean and max.

import { timings } from "./context.js";
import { modelFacts, post, sequence } from "./api.js";
import { label, make, onTokenPick, visibleText } from "./dom.js";
import { guarded } from "./status.js";
import { chart } from "./chart.js";
import { open } from "./tabs.js";
import { SCALE, axisLabels, matrix, matrixRows, readLayer } from "./attention-data.js";

export function createAttentionPanel() {
  const panel = document.getElementById("panel-attention");
  const controls = panel.querySelector("[data-role=controls]");
  const layerSelect = panel.querySelector("[data-role=layer]");
  const headSelect = panel.querySelector("[data-role=head]");
  const viewSelect = panel.querySelector("[data-role=view]");
  const cache = new Map();
  let layer = null;
  let selected = [];

  async function fetchLayer(index) {
    const body = Object.assign(sequence(), { layers: [index], encoding: "uint8" });
    const key = JSON.stringify(body);
    if (!cache.has(key)) {
      const started = performance.now();
      const result = await post("attention", body);
      const data = await readLayer(result);
      data.index = index;
      data.bytes = result.data.length;
      timings.attentionFetchMs = performance.now() - started;
      timings.attentionBytes = data.bytes;
      cache.set(key, data);
    }
    return cache.get(key);
  }

  function fillHeads() {
    const previous = headSelect.value;
    headSelect.replaceChildren();
    layer.heads.forEach(function (head, index) {
      const kv = layer.kvHeadOf[index];
      const sharing = layer.heads.filter(function (_other, j) { return layer.kvHeadOf[j] === kv; });
      const text = "head " + head + (sharing.length > 1 ? " · K/V " + kv + " (shared by " + sharing.join(", ") + ")" : "");
      headSelect.appendChild(make("option", { value: index }, text));
    });
    if (previous && Number(previous) < layer.heads.length) headSelect.value = previous;
  }

  async function draw() {
    const started = performance.now();
    const view = viewSelect.value;
    headSelect.disabled = view !== "head";
    const box = panel.querySelector("[data-role=heatmap-box]");
    if (view === "all") await drawSmallMultiples(box);
    else await drawHeatmap(box, view === "head" ? Number(headSelect.value) : view);
    timings.attentionRenderMs = performance.now() - started;
    drawStrip();
    await drawReceived();
  }

  async function drawHeatmap(box, which) {
    const { z } = matrix(layer, which, 0);
    const labels = axisLabels(layer.tokens, 1);
    const name = typeof which === "number" ? "head " + layer.heads[which] : which + " over heads";
    await chart(box, "attention-layer" + layer.index + "-" + name.replace(/ /g, "-"), [{
      type: "heatmap", z: z, x: labels, y: labels, colorscale: SCALE, zmin: 0,
      hovertemplate: "query %{y}<br>key %{x}<br>attention %{z:.3f}<extra></extra>", hoverongaps: false,
      colorbar: { title: { text: "weight" } },
    }], {
      title: { text: "Layer " + layer.index + ", " + name },
      height: Math.min(760, 260 + layer.n * 12),
      xaxis: { title: { text: "key (attended to)" }, type: "category", tickangle: -60, automargin: true },
      yaxis: { title: { text: "query (attending)" }, type: "category", autorange: "reversed", automargin: true },
    }, function () { return matrixRows(layer, z, 1, name); }, function (figure) {
      figure.on("plotly_click", function (event) {
        const point = event.points && event.points[0];
        if (point) select([point.pointIndex[0]], false);
      });
    });
  }

  async function drawSmallMultiples(box) {
    const count = layer.heads.length;
    const columns = Math.min(count, count > 4 ? 3 : count);
    const rows = Math.ceil(count / columns);
    const traces = [];
    const annotations = [];
    // Room above the first row for the title, and between rows for each head's label.
    const layout = { grid: { rows: rows, columns: columns, pattern: "independent", xgap: 0.08, ygap: 0.18 }, height: 250 * rows + 110, margin: { l: 30, r: 20, t: 100, b: 30 } };
    let records = [];
    layer.heads.forEach(function (head, index) {
      const { z, step } = matrix(layer, index, 128);
      const suffix = index === 0 ? "" : String(index + 1);
      traces.push({
        type: "heatmap", z: z, xaxis: "x" + suffix, yaxis: "y" + suffix, colorscale: SCALE, zmin: 0, zmax: 1,
        showscale: index === 0, hovertemplate: "query %{y}·" + step + "<br>key %{x}·" + step + "<br>%{z:.3f}<extra>head " + head + "</extra>",
      });
      layout["xaxis" + suffix] = { showticklabels: false };
      layout["yaxis" + suffix] = { showticklabels: false, autorange: "reversed" };
      annotations.push({
        text: "head " + head + " · K/V " + layer.kvHeadOf[index], showarrow: false,
        xref: "x" + suffix + " domain", yref: "y" + suffix + " domain", x: 0.5, y: 1.01, yanchor: "bottom",
      });
      records = records.concat(matrixRows(layer, z, step, "head " + head));
    });
    layout.annotations = annotations;
    layout.title = { y: 0.995, yanchor: "top", text: "Layer " + layer.index + ": every head" + (layer.n > 128 ? " (each cell the max of " + Math.ceil(layer.n / 128) + "² tokens)" : "") };
    await chart(box, "attention-layer" + layer.index + "-all-heads", traces, layout, function () { return records; });
  }

  // The tokens as a strip shaded by what the selected queries attend to, and a ranked list.
  function weightsOfSelection() {
    const view = viewSelect.value;
    const which = view === "head" ? Number(headSelect.value) : view === "max" ? "max" : "mean";
    const heads = typeof which === "number" ? [which] : layer.heads.map(function (_h, index) { return index; });
    const weights = new Array(layer.n).fill(0);
    selected.forEach(function (query) {
      for (let key = 0; key <= query; key++) {
        let value = 0;
        heads.forEach(function (head) {
          const cell = layer.at(head, query, key);
          value = which === "max" ? Math.max(value, cell) : value + cell / heads.length;
        });
        weights[key] += value;
      }
    });
    return weights;
  }

  function drawStrip() {
    const strip = panel.querySelector("[data-role=strip]");
    strip.replaceChildren();
    const weights = weightsOfSelection();
    const top = Math.max.apply(null, weights.concat([1e-9]));
    layer.tokens.forEach(function (token, index) {
      const node = make("span", {
        class: "tok" + (selected.includes(index) ? " selected" : ""), "data-q": index, tabindex: "0", role: "button",
        title: "#" + index + (selected.length ? " · receives " + weights[index].toFixed(3) : ""),
      });
      if (selected.length) node.style.background = "rgba(52, 81, 209, " + (weights[index] / top).toFixed(3) + ")";
      if (selected.length && weights[index] / top > 0.55) node.style.color = "#fff";
      node.appendChild(token.special ? document.createTextNode(token.text) : visibleText(token.text));
      strip.appendChild(node);
    });
    const ranked = panel.querySelector("[data-role=ranked]");
    ranked.replaceChildren();
    if (!selected.length) {
      ranked.appendChild(make("p", { class: "muted" }, "Select a token to see where it looks."));
      return;
    }
    const last = Math.max.apply(null, selected);
    const order = weights.slice(0, last + 1).map(function (weight, index) { return [weight, index]; })
      .sort(function (a, b) { return b[0] - a[0]; }).slice(0, 10);
    const list = make("ol", { class: "ranked", "data-testid": "ranked" });
    order.forEach(function ([weight, index]) {
      const item = make("li");
      item.appendChild(make("span", { class: "tok" })).appendChild(visibleText(label(layer.tokens[index])));
      item.appendChild(document.createTextNode(" #" + index + " — " + weight.toFixed(3)));
      list.appendChild(item);
    });
    const title = selected.length === 1 ? "Token #" + selected[0] + " looks at" : "Tokens " + selected.join(", ") + " together look at";
    ranked.append(make("p", {}, title + " (sum of their rows):"), list);
  }

  function select(indices, add) {
    if (add) {
      indices.forEach(function (index) {
        selected = selected.includes(index) ? selected.filter(function (i) { return i !== index; }) : selected.concat([index]);
      });
    } else {
      selected = indices;
    }
    drawStrip();
  }

  onTokenPick(panel.querySelector("[data-role=strip]"), function (index, adding) { select([index], adding); });

  async function drawReceived() {
    const received = [];
    for (let key = 0; key < layer.n; key++) {
      let total = 0;
      layer.heads.forEach(function (_head, index) {
        for (let query = key; query < layer.n; query++) total += layer.at(index, query, key);
      });
      received.push(total / (layer.heads.length * (layer.n - key)));
    }
    const labels = axisLabels(layer.tokens, 1);
    await chart(panel.querySelector("[data-role=received-box]"), "attention-received-layer" + layer.index, [{
      type: "bar", x: labels, y: received, marker: { color: "#3451d1" },
      hovertemplate: "%{x}<br>receives %{y:.3f} on average<extra></extra>",
    }], {
      height: 300, xaxis: { type: "category", tickangle: -60, automargin: true },
      yaxis: { title: { text: "mean attention received" } },
    }, function () {
      return received.map(function (value, index) {
        return { layer: layer.index, position: index, token: layer.tokens[index].text, mean_attention_received: Number(value.toFixed(5)) };
      });
    });
  }

  async function fillLayers() {
    const known = await modelFacts();
    if (!layerSelect.options.length) {
      for (let index = 0; index < known.n_layers; index++) layerSelect.appendChild(make("option", { value: index }, String(index)));
    }
  }

  // wanted: {head, query} to show once the layer is read (the attention graph's click).
  async function load(wanted) {
    await fillLayers();
    await guarded(panel, "Reading the attention of layer " + layerSelect.value + "…", async function () {
      layer = await fetchLayer(Number(layerSelect.value));
      selected = wanted ? [wanted.query] : selected.filter(function (index) { return index < layer.n; });
      fillHeads();
      if (wanted) {
        viewSelect.value = "head";
        headSelect.value = String(Math.max(0, layer.heads.indexOf(wanted.head)));
      }
      await draw();
    });
  }

  // This panel opened on one layer and head's heatmap with `query` selected.
  async function show(layerIndex, head, query) {
    api.loadedFor = JSON.stringify(sequence()); // the load below is the one for this text
    open("attention");
    await fillLayers();
    layerSelect.value = String(layerIndex);
    await load({ head: head, query: query });
  }

  controls.addEventListener("change", function (event) {
    if (event.target === layerSelect) load();
    else if (layer) guarded(panel, "Drawing…", draw);
  });

  const api = { load: function () { return load(); }, layerFor: fetchLayer, show: show };
  return api;
}
