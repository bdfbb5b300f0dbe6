// The attention graph as the API sends it (edges as columns: layer, head, query, key, weight)
// turned into what the 3-D chart draws: one plane per layer, tokens as nodes along the text,
// each link an arc inside its layer's plane, coloured by head.

import { label, plotText } from "./dom.js";

export const HEAD_COLOURS = ["#3451d1", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d5a97", "#30638e", "#ff7f50",
  "#2a9d8f", "#e76f51", "#6d597a", "#b5838d", "#588157", "#bc6c25", "#457b9d", "#9d0208"];
// Strong links are drawn thick and solid, weak ones thin and faint (Plotly sets a line's
// width and opacity per trace, so each head has one trace per band).
const BANDS = [
  { min: 0.5, width: 4, opacity: 0.95, name: "≥ 0.5" },
  { min: 0.2, width: 2.5, opacity: 0.7, name: "0.2–0.5" },
  { min: 0, width: 1, opacity: 0.4, name: "< 0.2" },
];
// Each arc is drawn as 3 points (its two tokens and its apex above the middle), then a gap
// before the next arc: in software WebGL the time to draw grows with the points, and arcs of
// more points look no different at a few thousand links.
const ARC_POINTS = 3;
const HOVER_LINKS = 4; // links listed in a node's hover text

export function edgeList(result) {
  const columns = result.edges;
  return columns.weight.map(function (weight, index) {
    return { layer: columns.layer[index], head: columns.head[index], query: columns.query[index], key: columns.key[index], weight: weight };
  });
}

// A token for a figure's hover text: "#12 ' cat'".
function tokenText(tokens, position) {
  return "#" + position + " '" + plotText(label(tokens[position])) + "'";
}

// One arc trace per head and band; `edgesOf[trace]` lists the edges it draws, in order, so a
// click on its point p is edge edgesOf[trace][Math.floor(p / (ARC_POINTS + 1))]. Arcs carry
// no hover text (a node's hover lists its links): thousands of labels cost more than the arcs.
export function arcTraces(result, edges) {
  const traces = [];
  const edgesOf = [];
  result.heads.forEach(function (head, headIndex) {
    const colour = HEAD_COLOURS[headIndex % HEAD_COLOURS.length];
    let shownInLegend = false;
    BANDS.forEach(function (band, bandIndex) {
      const upper = bandIndex === 0 ? Infinity : BANDS[bandIndex - 1].min;
      const drawn = edges.filter(function (edge) {
        return edge.head === head && edge.query !== edge.key && edge.weight >= band.min && edge.weight < upper;
      });
      if (!drawn.length) return;
      const x = [], y = [], z = [];
      drawn.forEach(function (edge) {
        const span = edge.query - edge.key;
        // key, apex (as high as half the span, like a half circle's top), query; then a gap
        x.push(edge.key, edge.key + span / 2, edge.query, null);
        y.push(0, span / 2, 0, null);
        z.push(edge.layer, edge.layer, edge.layer, null);
      });
      traces.push({
        type: "scatter3d", mode: "lines", x: x, y: y, z: z, name: "head " + head + " · K/V " + result.kv_head_of[headIndex],
        legendgroup: "head-" + head, showlegend: !shownInLegend, opacity: band.opacity,
        line: { color: colour, width: band.width },
        hoverinfo: "none", // still clickable ("skip" would not be)
      });
      edgesOf.push(drawn);
      shownInLegend = true;
    });
  });
  return { traces: traces, edgesOf: edgesOf, pointsPerArc: ARC_POINTS + 1 };
}

// Every token of a layer plane at either end of a link shown there as a node, hovering with
// its strongest links there (the others would only say "none": 30 planes × 256 tokens of dots
// cost as much to draw as 2,000 arcs).
export function nodeTrace(result, edges) {
  const linksOf = new Map();
  const ends = new Set();
  edges.forEach(function (edge) {
    const key = edge.layer + ":" + edge.query;
    if (!linksOf.has(key)) linksOf.set(key, []);
    linksOf.get(key).push(edge);
    ends.add(key).add(edge.layer + ":" + edge.key);
  });
  const x = [], y = [], z = [], text = [], nodes = [];
  result.layers.forEach(function (layer) {
    result.tokens.forEach(function (_token, position) {
      if (!ends.has(layer + ":" + position)) return;
      const links = (linksOf.get(layer + ":" + position) || []).slice()
        .sort(function (a, b) { return b.weight - a.weight; });
      const listed = links.slice(0, HOVER_LINKS).map(function (edge) {
        return tokenText(result.tokens, edge.key) + " " + edge.weight.toFixed(3) + " (head " + edge.head + ")";
      });
      x.push(position); y.push(0); z.push(layer);
      text.push(tokenText(result.tokens, position) + ", layer " + layer + " — strongest links: " +
        (listed.length ? listed.join(", ") : "none shown") + (links.length > HOVER_LINKS ? " …" : ""));
      nodes.push({ layer: layer, position: position, strongest: links[0] || null });
    });
  });
  return {
    trace: {
      type: "scatter3d", mode: "markers", x: x, y: y, z: z, text: text, name: "tokens", showlegend: false,
      // squares: software WebGL draws thousands of them in half the time of round dots
      marker: { size: result.tokens.length > 64 ? 2 : 3.5, color: "#555", symbol: "square" },
      hovertemplate: "%{text}<extra></extra>",
    },
    nodes: nodes,
  };
}

export function edgeRows(result, edges) {
  return edges.map(function (edge) {
    return {
      layer: edge.layer, head: edge.head, query: edge.query, query_token: result.tokens[edge.query].text,
      key: edge.key, key_token: result.tokens[edge.key].text, weight: edge.weight,
    };
  });
}

export function sceneLayout(result) {
  const n = result.tokens.length;
  const named = n <= 40;
  return {
    xaxis: {
      title: { text: "position in the text" },
      tickvals: named ? result.tokens.map(function (_t, i) { return i; }) : undefined,
      // A 3-D scene draws its tick labels as plain text (no markup, no entities to escape).
      ticktext: named ? result.tokens.map(function (token, i) { return i + " " + label(token); }) : undefined,
    },
    yaxis: { title: { text: "" }, showticklabels: false },
    zaxis: { title: { text: "layer" }, tickvals: result.layers.length <= 32 ? result.layers : undefined },
    aspectmode: "manual",
    aspectratio: { x: 2.2, y: 0.9, z: Math.min(1.6, 0.5 + result.layers.length * 0.06) },
    camera: { eye: { x: 0.4, y: -2.1, z: 0.9 } },
  };
}
