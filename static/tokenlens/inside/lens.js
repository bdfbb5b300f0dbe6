// The Layers panel (the logit lens): what each layer would predict, followed tokens,
// a contrast of two tokens, two models side by side.

import { context, root } from "./context.js";
import { completionIds, post, sequence } from "./api.js";
import { label, make, onTokenPick, plotLabel, plotText, visibleText } from "./dom.js";
import { guarded } from "./status.js";
import { chart } from "./chart.js";
import { open, panels } from "./tabs.js";
import { SCALE } from "./attention-data.js";

export function createLensPanel() {
  const panel = document.getElementById("panel-layers");
  const LINE_COLOURS = ["#3451d1", "#d1495b", "#00798c", "#edae49", "#66a182"];
  let position = null; // null: the last token; negative counts from the end
  let lens = null;
  let picked = [];

  function contrastToken(value) {
    const text = value.trim();
    return /^#\d+$/.test(text) ? Number(text.slice(1)) : value;
  }

  async function request(extra) {
    const body = Object.assign(sequence(), { top_k: 10 }, extra || {});
    if (position !== null) body.position = position;
    return post("logit-lens", body);
  }

  function drawStrip() {
    const strip = panel.querySelector("[data-role=strip]");
    strip.replaceChildren();
    lens.tokens.forEach(function (token, index) {
      const node = make("span", { class: "tok" + (index === lens.position ? " selected" : ""), "data-q": index, role: "button", tabindex: "0", title: "#" + index + ": the prediction made after this token" });
      node.appendChild(token.special ? document.createTextNode(token.text) : visibleText(token.text, true));
      strip.appendChild(node);
    });
    const facts = panel.querySelector("[data-role=lens-facts]");
    facts.replaceChildren(document.createTextNode("After token #" + lens.position + " "));
    facts.appendChild(make("span", { class: "tok" })).appendChild(visibleText(label(lens.token), true));
    facts.appendChild(document.createTextNode(lens.next_token ? ", the text goes on with " : ", at the end of the text. "));
    if (lens.next_token) {
      facts.appendChild(make("span", { class: "tok" })).appendChild(visibleText(label(lens.next_token), true));
      facts.appendChild(document.createTextNode(". "));
    }
    facts.appendChild(make("span", { class: "muted" }, lens.rows.length + " rows: the embeddings, then each of " + (lens.rows.length - 1) + " layers" + (lens.softcapping ? "; logits soft-capped at " + lens.softcapping : "") + "."));
  }

  async function drawTable() {
    const rows = lens.rows;
    const k = lens.top_k;
    const z = rows.map(function (row) { return row.top.map(function (token) { return token.probability; }); });
    const text = rows.map(function (row) { return row.top.map(plotLabel); });
    const labels = rows.map(function (row) { return plotText(row.label); });
    await chart(panel.querySelector("[data-role=table-box]"), "logit-lens-position" + lens.position, [{
      type: "heatmap", z: z, text: text, x: Array.from({ length: k }, function (_v, i) { return "#" + (i + 1); }), y: labels,
      texttemplate: "%{text}", textfont: { size: 10 }, colorscale: SCALE, zmin: 0, zmax: 1,
      hovertemplate: "%{y}, rank %{x}<br>%{text}: %{z:.3f}<extra></extra>", colorbar: { title: { text: "p" } },
    }], {
      title: { text: "Top " + k + " tokens after each layer" }, height: 140 + rows.length * 22,
      yaxis: { autorange: "reversed", type: "category" }, xaxis: { side: "top", type: "category" }, margin: { l: 110, r: 20, t: 60, b: 20 },
    }, function () {
      const records = [];
      rows.forEach(function (row) { row.top.forEach(function (token, rank) { records.push({ position: lens.position, depth: row.depth, layer: row.label, rank: rank + 1, token_id: token.id, token: token.text, probability: token.probability, logit: token.logit }); }); });
      return records;
    }, function (figure) {
      figure.on("plotly_click", function (event) {
        const point = event.points && event.points[0];
        if (!point) return;
        const token = rows[point.pointIndex[0]].top[point.pointIndex[1]];
        picked = picked.concat(["#" + token.id]).slice(-2);
        const form = panel.querySelector("[data-role=contrast]");
        form.elements.a.value = picked[0] || "";
        form.elements.b.value = picked[1] || "";
      });
    });
  }

  async function drawTraces() {
    const labels = lens.rows.map(function (row) { return plotText(row.label); });
    const traces = lens.chosen.map(function (trace, index) {
      return {
        type: "scatter", mode: "lines+markers", name: plotLabel(trace) + " (" + trace.reasons.join(", ").replace(/_/g, " ") + ")",
        x: labels, y: trace.probabilities, customdata: trace.ranks, line: { color: LINE_COLOURS[index % LINE_COLOURS.length] },
        hovertemplate: "%{x}<br>p = %{y:.4f}, rank %{customdata}<extra>" + plotLabel(trace) + "</extra>",
      };
    });
    await chart(panel.querySelector("[data-role=trace-box]"), "logit-lens-chosen-position" + lens.position, traces, {
      title: { text: "Probability of the chosen tokens, layer by layer" }, height: 360,
      xaxis: { type: "category", tickangle: -45 }, yaxis: { title: { text: "probability" }, rangemode: "tozero" },
      legend: { orientation: "h", y: -0.35 },
    }, function () {
      const records = [];
      lens.chosen.forEach(function (trace) { trace.probabilities.forEach(function (p, depth) { records.push({ position: lens.position, token_id: trace.id, token: trace.text, depth: depth, layer: lens.rows[depth].label, probability: p, rank: trace.ranks[depth], logit: trace.logits[depth] }); }); });
      return records;
    });
  }

  async function drawContrast(contrast) {
    const facts = panel.querySelector("[data-role=contrast-facts]");
    const a = label(contrast.a);
    const b = label(contrast.b);
    const last = contrast.rows[contrast.rows.length - 1];
    let summary = "The model ends up favouring " + (contrast.final_favours === "tie" ? "neither" : contrast.final_favours === "a" ? a : b);
    if (contrast.decided_at !== null && contrast.final_favours !== "tie") summary += ", settled from " + contrast.rows[contrast.decided_at].label + " on";
    summary += " (final logit difference " + last.logit_diff.toFixed(2) + "). " + contrast.favour_a.length + " rows favour " + a + ", " + contrast.favour_b.length + " favour " + b + ".";
    facts.textContent = summary + (contrast.note ? " " + contrast.note : "");
    const labels = contrast.rows.map(function (row) { return plotText(row.label); });
    const plotA = plotLabel(contrast.a);
    const plotB = plotLabel(contrast.b);
    await chart(panel.querySelector("[data-role=contrast-box]"), "contrast-" + contrast.a.id + "-" + contrast.b.id, [
      { type: "bar", name: "logit(" + plotA + ") − logit(" + plotB + ")", x: labels, y: contrast.rows.map(function (row) { return row.logit_diff; }), marker: { color: contrast.rows.map(function (row) { return row.favours === "a" ? "#3451d1" : row.favours === "b" ? "#d1495b" : "#999"; }) } },
      { type: "scatter", mode: "lines", name: "p(" + plotA + ")", x: labels, y: contrast.rows.map(function (row) { return row.p_a; }), yaxis: "y2", line: { color: "#3451d1", dash: "dot" } },
      { type: "scatter", mode: "lines", name: "p(" + plotB + ")", x: labels, y: contrast.rows.map(function (row) { return row.p_b; }), yaxis: "y2", line: { color: "#d1495b", dash: "dot" } },
    ], {
      height: 380, xaxis: { type: "category", tickangle: -45 }, yaxis: { title: { text: "logit difference (blue: " + plotA + ")" } },
      yaxis2: { overlaying: "y", side: "right", title: { text: "probability" }, rangemode: "tozero" }, legend: { orientation: "h", y: -0.35 },
    }, function () { return contrast.rows.map(function (row) { return Object.assign({ token_a: contrast.a.text, token_b: contrast.b.text }, row); }); });
  }

  async function load() {
    await guarded(panel, "Reading every layer…", async function () {
      lens = await request();
      drawStrip();
      await drawTable();
      await drawTraces();
      const top = lens.rows[lens.rows.length - 1].top;
      const form = panel.querySelector("[data-role=contrast]");
      if (!form.elements.a.value && top.length > 1) {
        form.elements.a.value = "#" + top[0].id;
        form.elements.b.value = "#" + top[1].id;
      }
    });
  }

  async function compareModels(otherKey) {
    const keys = [context.model, otherKey];
    const results = await Promise.all(keys.map(function (key) {
      return post("logit-lens", { model: key, text: context.prompt, top_k: 10 });
    }));
    const box = panel.querySelector("[data-role=models-result]");
    box.replaceChildren();
    const names = keys.map(function (key) { const entry = context.models.find(function (m) { return m.key === key; }); return entry ? entry.label : key; });
    box.appendChild(make("p", { class: "muted" }, "The prompt alone (no chat template): " + names[0] + " reads " + results[0].n_tokens + " tokens, " + names[1] + " reads " + results[1].n_tokens + "."));
    const finals = results.map(function (result) { return result.rows[result.rows.length - 1].top; });
    const texts = [];
    finals.forEach(function (top) { top.forEach(function (token) { if (!texts.includes(token.text)) texts.push(token.text); }); });
    const table = make("table", { class: "lookup" });
    const head = make("tr");
    ["next token (by its text)"].concat(names).forEach(function (title) { head.appendChild(make("th", {}, title)); });
    table.appendChild(make("thead")).appendChild(head);
    const body = table.appendChild(make("tbody"));
    texts.forEach(function (text) {
      const row = make("tr");
      row.appendChild(make("td", { class: "mono" })).appendChild(visibleText(text, true));
      finals.forEach(function (top) {
        const found = top.find(function (token) { return token.text === text; });
        row.appendChild(make("td", {}, found ? (found.probability * 100).toFixed(1) + " %" : "not in top 10"));
      });
      body.appendChild(row);
    });
    box.appendChild(table);
    const traces = results.map(function (result, index) {
      const top = result.rows[result.rows.length - 1].top[0];
      const depths = result.rows.length - 1;
      const trace = result.chosen.find(function (entry) { return entry.id === top.id; });
      return {
        type: "scatter", mode: "lines+markers", name: plotText(names[index]) + ": " + plotLabel(top),
        x: result.rows.map(function (_row, depth) { return depth / depths; }), y: trace ? trace.probabilities : [],
        customdata: result.rows.map(function (row) { return plotText(row.label); }), hovertemplate: "%{customdata}<br>p = %{y:.4f}<extra>" + plotText(names[index]) + "</extra>",
      };
    });
    await chart(panel.querySelector("[data-role=models-box]"), "lens-two-models", traces, {
      title: { text: "Each model's final top token, layer by layer" }, height: 360,
      xaxis: { title: { text: "depth (0 = embeddings, 1 = last layer)" }, range: [0, 1] }, yaxis: { title: { text: "probability" }, rangemode: "tozero" },
      legend: { orientation: "h", y: -0.3 },
    }, function () {
      const records = [];
      results.forEach(function (result, index) {
        result.rows.forEach(function (row) { row.top.forEach(function (token, rank) { records.push({ model: keys[index], depth: row.depth, layer: row.label, rank: rank + 1, token: token.text, probability: token.probability }); }); });
      });
      return records;
    });
  }

  const select = panel.querySelector("#lens-model");
  context.models.forEach(function (model) {
    if (model.key !== context.model) select.appendChild(make("option", { value: model.key }, model.label));
  });
  if (!select.options.length) panel.querySelector("[data-role=models]").hidden = true;
  panel.querySelector("[data-role=models]").addEventListener("submit", function (event) {
    event.preventDefault();
    guarded(panel, "Reading the prompt with both models…", function () { return compareModels(select.value); });
  });
  panel.querySelector("[data-role=contrast]").addEventListener("submit", function (event) {
    event.preventDefault();
    const form = event.target;
    guarded(panel, "Contrasting…", async function () {
      const result = await request({ contrast: [contrastToken(form.elements.a.value), contrastToken(form.elements.b.value)] });
      await drawContrast(result.contrast);
    });
  });
  onTokenPick(panel.querySelector("[data-role=strip]"), function (index) { position = index; load(); });

  // From a step's alternatives: the prediction that produced generated token `index`.
  function showStep(index) {
    position = index - completionIds().length - 1;
    panels.layers.loadedFor = JSON.stringify(sequence());
    open("layers");
    load();
    root.scrollIntoView({ behavior: "smooth" });
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("[data-lens-step]");
    if (button) showStep(Number(button.dataset.lensStep));
  });

  return { load: load, showStep: showStep };
}
