// Attention maps as the API sends them (deflated lower triangles, bytes or halves) and the
// matrices, labels and rows the attention and head panels draw from them.

import { plotLabel } from "./dom.js";

export const SCALE = [[0, "#ffffff"], [0.1, "#c6dbef"], [0.4, "#4292c6"], [1, "#08306b"]];

export async function inflate(base64) {
  const bytes = Uint8Array.from(atob(base64), function (char) { return char.charCodeAt(0); });
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// One layer's maps as sent: lower triangles, head by head, quantized to bytes (value / 255).
export async function readLayer(result) {
  const raw = await inflate(result.data);
  const n = result.n_tokens;
  const triangle = (n * (n + 1)) / 2;
  const scale = result.encoding === "uint8" ? 1 / 255 : null;
  const values = scale ? raw : new Float32Array(halfToFloat(raw));
  return {
    n: n,
    tokens: result.tokens,
    heads: result.heads,
    kvHeadOf: result.kv_head_of,
    at: function (head, query, key) {
      if (key > query) return 0;
      const value = values[head * triangle + (query * (query + 1)) / 2 + key];
      return scale ? value * scale : value;
    },
  };
}

export function halfToFloat(raw) {
  const halves = new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2);
  return Array.from(halves, function (h) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const fraction = h & 0x3ff;
    if (exponent === 0) return sign * Math.pow(2, -14) * (fraction / 1024);
    if (exponent === 31) return fraction ? NaN : sign * Infinity;
    return sign * Math.pow(2, exponent - 15) * (1 + fraction / 1024);
  });
}

// A map (rows = queries) of one head, or the mean or max over the heads, with null above the
// diagonal; `bins` > 0 max-pools it to at most bins × bins cells (for small multiples).
export function matrix(layer, which, bins) {
  const n = layer.n;
  const heads = typeof which === "number" ? [which] : layer.heads.map(function (_h, index) { return index; });
  const value = function (query, key) {
    let total = 0;
    heads.forEach(function (head) {
      const cell = layer.at(head, query, key);
      total = which === "max" ? Math.max(total, cell) : total + cell;
    });
    return which === "max" ? total : total / heads.length;
  };
  const step = bins && n > bins ? Math.ceil(n / bins) : 1;
  const size = Math.ceil(n / step);
  const rows = [];
  for (let row = 0; row < size; row++) {
    const cells = new Array(size).fill(null);
    for (let column = 0; column <= row; column++) {
      let best = 0;
      for (let query = row * step; query < Math.min(n, (row + 1) * step); query++) {
        for (let key = column * step; key < Math.min(query + 1, (column + 1) * step); key++) {
          best = Math.max(best, value(query, key));
        }
      }
      cells[column] = best;
    }
    rows.push(cells);
  }
  return { z: rows, step: step };
}

export function axisLabels(tokens, step) {
  const labels = [];
  for (let start = 0; start < tokens.length; start += step) {
    const end = Math.min(tokens.length, start + step) - 1;
    labels.push(step === 1 ? start + " " + plotLabel(tokens[start]) : start + "–" + end);
  }
  return labels;
}

export function matrixRows(layer, z, step, headName) {
  const rows = [];
  z.forEach(function (cells, row) {
    cells.forEach(function (value, column) {
      if (value === null) return;
      rows.push({
        layer: layer.index, head: headName, query: row * step, query_token: step === 1 ? layer.tokens[row].text : "",
        key: column * step, key_token: step === 1 ? layer.tokens[column].text : "", attention: Number(value.toFixed(5)),
      });
    });
  });
  return rows;
}
