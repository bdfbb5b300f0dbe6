// The Embeddings panel: a token's vector and nearest tokens, the position encoding, and a
// map of the sequence's embeddings.

import { post, sequence } from "./api.js";
import { label, make, onTokenPick, plotLabel, visibleText } from "./dom.js";
import { guarded } from "./status.js";
import { chart } from "./chart.js";

export function createEmbeddingsPanel() {
  const panel = document.getElementById("panel-embeddings");
  let tokens = [];
  let chosen = null; // position in the sequence; null = the last token
  let sorted = false;
  let overview = null;

  function drawStrip() {
    const strip = panel.querySelector("[data-role=strip]");
    strip.replaceChildren();
    const active = chosen === null ? tokens.length - 1 : chosen;
    tokens.forEach(function (token, index) {
      const node = make("span", { class: "tok" + (index === active ? " selected" : ""), "data-q": index, role: "button", tabindex: "0", title: "#" + index + " · id " + token.id });
      node.appendChild(token.special ? document.createTextNode(token.text) : visibleText(token.text));
      strip.appendChild(node);
    });
  }

  async function drawVector() {
    const token = overview.token;
    const order = token.vector.map(function (_value, index) { return index; });
    if (sorted) order.sort(function (a, b) { return token.vector[b] - token.vector[a]; });
    const facts = panel.querySelector("[data-role=token-facts]");
    facts.replaceChildren();
    const line = make("p", { "data-testid": "embedding-facts" });
    line.appendChild(document.createTextNode("Token "));
    line.appendChild(make("span", { class: "tok" })).appendChild(visibleText(label(token)));
    line.appendChild(document.createTextNode(" (id " + token.id + "): " + token.hidden_size + " numbers, norm " + token.norm.toFixed(3) +
      (token.scale !== 1 ? " × scale " + token.scale.toFixed(3) + " = " + token.scaled_norm.toFixed(2) + " as the first layer sees it" : "") + ". "));
    const toggle = make("button", { type: "button", "data-action": "sort" }, sorted ? "Show in dimension order" : "Sort by value");
    toggle.addEventListener("click", function () { sorted = !sorted; drawVector(); });
    line.appendChild(toggle);
    facts.appendChild(line);
    await chart(panel.querySelector("[data-role=vector-box]"), "embedding-" + token.id, [{
      type: "bar", x: order.map(function (index) { return "d" + index; }), y: order.map(function (index) { return token.vector[index]; }),
      marker: { color: order.map(function (index) { return token.vector[index] >= 0 ? "#3451d1" : "#d1495b"; }) },
      hovertemplate: "dimension %{x}<br>%{y:.4f}<extra></extra>",
    }], {
      height: 280, bargap: 0, xaxis: { type: "category", showticklabels: false, title: { text: "dimension (" + (sorted ? "sorted by value" : "in order") + ")" } },
      yaxis: { title: { text: "value" } },
    }, function () { return token.vector.map(function (value, index) { return { token_id: token.id, dimension: index, value: value }; }); });
    const neighbours = panel.querySelector("[data-role=neighbours]");
    neighbours.replaceChildren(make("h3", {}, "Nearest tokens (cosine similarity)"));
    const list = make("ol", { class: "ranked", "data-testid": "neighbours" });
    token.neighbours.forEach(function (neighbour) {
      const item = make("li");
      item.appendChild(make("span", { class: "tok" })).appendChild(visibleText(neighbour.text));
      item.appendChild(document.createTextNode(" id " + neighbour.id + " — " + neighbour.cosine.toFixed(3)));
      list.appendChild(item);
    });
    neighbours.appendChild(list);
  }

  async function drawPositions() {
    const positions = overview.positions;
    const facts = panel.querySelector("[data-role=positions-facts]");
    facts.replaceChildren();
    const box = panel.querySelector("[data-role=positions-box]");
    if (positions.kind === "rotary") {
      facts.appendChild(make("p", { class: "explain" }, "This model adds no position vector: inside attention it rotates each pair of query and key dimensions by an angle that grows with the position, fast for the first pairs and slowly for the last, so the dot product of a query and a key depends on how far apart they are."));
      facts.appendChild(make("p", { class: "mono formula" }, positions.formula));
      positions.rotary.forEach(function (rotary) {
        facts.appendChild(make("p", { class: "muted" }, (rotary.layer_type ? rotary.layer_type.replace(/_/g, " ") + ": " : "") + "base " + rotary.base.toLocaleString() + ", " + rotary.rotary_dim + " rotated dimensions per head, used by layers " + rotary.layers.join(", ") + "."));
      });
      const traces = positions.rotary.map(function (rotary) {
        return { type: "scatter", mode: "lines+markers", name: (rotary.layer_type || "rotary") + " (base " + rotary.base + ")", x: rotary.inv_freq.map(function (_f, i) { return i; }), y: rotary.inv_freq, hovertemplate: "pair %{x}<br>θ = %{y:.3g} rad/position<extra></extra>" };
      });
      const angles = positions.rotary[0].angles;
      traces.push({ type: "heatmap", z: angles.map(function (row) { return row.map(Math.cos); }), xaxis: "x2", yaxis: "y2", colorscale: "RdBu", zmin: -1, zmax: 1, colorbar: { title: { text: "cos angle" }, y: 0.25, len: 0.5 }, hovertemplate: "position %{y}<br>pair %{x}<br>cos = %{z:.3f}<extra></extra>" });
      await chart(box, "rotary-frequencies", traces, {
        height: 640, grid: { rows: 2, columns: 1, pattern: "independent", ygap: 0.18 },
        yaxis: { type: "log", title: { text: "θ_i (radians per position)" } }, xaxis: { title: { text: "dimension pair i" } },
        yaxis2: { title: { text: "position p" }, autorange: "reversed" }, xaxis2: { title: { text: "dimension pair i (cos of p·θ_i" + (positions.rotary.length > 1 ? ", " + positions.rotary[0].layer_type : "") + ")" } },
        legend: { orientation: "h", y: 1.08 },
      }, function () {
        const rows = [];
        positions.rotary.forEach(function (rotary) {
          rotary.inv_freq.forEach(function (theta, pair) {
            rotary.angles.forEach(function (row, position) { rows.push({ layer_type: rotary.layer_type, base: rotary.base, pair: pair, theta: theta, position: position, angle: row[pair] }); });
          });
        });
        return rows;
      });
    } else if (positions.kind === "learned") {
      const learned = positions.learned;
      facts.appendChild(make("p", { class: "explain" }, "This model learned one vector per position (up to " + learned.max_positions + ") and adds it to the token's embedding before the first layer."));
      await chart(box, "learned-positions", [
        { type: "bar", y: learned.norms, hovertemplate: "position %{x}<br>norm %{y:.3f}<extra></extra>", marker: { color: "#3451d1" } },
        { type: "heatmap", z: learned.vectors, xaxis: "x2", yaxis: "y2", colorscale: "RdBu", zmid: 0, hovertemplate: "position %{y}<br>dimension %{x}<br>%{z:.4f}<extra></extra>" },
      ], {
        height: 620, grid: { rows: 2, columns: 1, pattern: "independent", ygap: 0.18 },
        xaxis: { title: { text: "position" } }, yaxis: { title: { text: "norm of the position vector" } },
        xaxis2: { title: { text: "dimension" } }, yaxis2: { title: { text: "position" }, autorange: "reversed" },
      }, function () {
        return learned.norms.map(function (norm, position) { return { position: position, norm: norm, vector: (learned.vectors[position] || []).join(" ") }; });
      });
    } else {
      box.replaceChildren();
      facts.appendChild(make("p", { class: "muted" }, "This model has no position information of its own that TokenLens can read."));
    }
  }

  async function drawMap() {
    const box = panel.querySelector("[data-role=map-box]");
    if (!overview.map) {
      box.replaceChildren(make("p", { class: "muted" }, overview.map_error ? overview.map_error.message : "No map."));
      return;
    }
    const points = overview.map.points;
    const variance = overview.map.explained_variance.map(function (v) { return (v * 100).toFixed(1) + " %"; });
    await chart(box, "embedding-map", [{
      type: "scatter", mode: "markers+text", x: points.map(function (p) { return p.x; }), y: points.map(function (p) { return p.y; }),
      text: points.map(plotLabel), textposition: "top center", marker: { size: 8, color: points.map(function (p) { return p.position; }), colorscale: "Viridis", colorbar: { title: { text: "position" } } },
      customdata: points.map(function (p) { return [p.position, p.id]; }), hovertemplate: "%{text}<br>position %{customdata[0]} · id %{customdata[1]}<extra></extra>",
    }], {
      height: 460, xaxis: { title: { text: "first principal component (" + variance[0] + " of the variance)" } },
      yaxis: { title: { text: "second (" + variance[1] + ")" } },
    }, function () { return points; });
  }

  async function load() {
    await guarded(panel, "Reading the embeddings…", async function () {
      const body = sequence();
      const tokenization = await post("tokenize", body);
      tokens = tokenization.tokens;
      if (chosen !== null && chosen >= tokens.length) chosen = null;
      const position = chosen === null ? tokens.length - 1 : chosen;
      overview = await post("embeddings", Object.assign(body, { token_id: tokens[position].id, n_positions: Math.min(Math.max(tokens.length, 16), 256) }));
      drawStrip();
      await drawVector();
      await drawPositions();
      await drawMap();
    });
  }

  async function pick(position) {
    chosen = position;
    drawStrip();
    await guarded(panel, "Reading token #" + position + "…", async function () {
      const body = Object.assign(sequence(), { token_id: tokens[position].id, n_positions: 16 });
      overview.token = (await post("embeddings", body)).token;
      await drawVector();
    });
  }

  onTokenPick(panel.querySelector("[data-role=strip]"), pick);

  return { load: load };
}
