// The Head clusters panel: every head measured and mapped, clustered, one head shown.

import { sequence } from "./api.js";
import { make, plotText } from "./dom.js";
import { guarded, runJob } from "./status.js";
import { chart } from "./chart.js";
import { panels } from "./tabs.js";
import { SCALE, matrix, matrixRows } from "./attention-data.js";

export function createHeadsPanel() {
  const panel = document.getElementById("panel-heads");
  const COLOURS = ["#3451d1", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d5a97", "#30638e", "#ff7f50"];
  let result = null;
  let hovered = null;

  function headRows() {
    return result.heads.map(function (head) {
      const cluster = result.clusters.find(function (entry) { return entry.id === head.cluster; });
      return Object.assign({ layer: head.layer, head: head.head, kv_head: head.kv_head, x: head.x, y: head.y, cluster: head.cluster, cluster_label: cluster.label }, head.features);
    });
  }

  async function drawScatter() {
    const names = result.feature_names;
    const traces = result.clusters.map(function (cluster, index) {
      const heads = result.heads.filter(function (head) { return head.cluster === cluster.id; });
      return {
        type: "scatter", mode: "markers", name: plotText(cluster.label) + " (" + cluster.size + ")",
        x: heads.map(function (head) { return head.x; }), y: heads.map(function (head) { return head.y; }),
        marker: { size: 9, color: COLOURS[index % COLOURS.length], line: { width: 1, color: "#fff" } },
        customdata: heads.map(function (head) { return [head.layer, head.head, head.kv_head].concat(names.map(function (name) { return head.features[name]; })); }),
        hovertemplate: "layer %{customdata[0]}, head %{customdata[1]} (K/V %{customdata[2]})<br>" +
          names.map(function (name, i) { return name + " %{customdata[" + (i + 3) + "]:.3f}"; }).join("<br>") + "<extra>" + plotText(cluster.label) + "</extra>",
      };
    });
    await chart(panel.querySelector("[data-role=scatter-box]"), "head-clusters", traces, {
      height: 520, title: { text: result.heads.length + " heads over " + result.tokens + " tokens" },
      xaxis: { title: { text: "UMAP 1" }, zeroline: false }, yaxis: { title: { text: "UMAP 2" }, zeroline: false },
      legend: { orientation: "h", y: -0.15 },
    }, headRows, function (figure) {
      figure.on("plotly_hover", function (event) {
        const point = event.points && event.points[0];
        if (point) showHead(point.customdata[0], point.customdata[1]);
      });
      figure.on("plotly_click", function (event) {
        const point = event.points && event.points[0];
        if (point) showHead(point.customdata[0], point.customdata[1]);
      });
    });
  }

  // The hovered head's attention map, beside the scatter plot (one layer fetched, then cached).
  async function showHead(layerIndex, head) {
    const key = layerIndex + ":" + head;
    if (hovered === key) return;
    hovered = key;
    const layer = await panels.attention.layerFor(layerIndex);
    if (hovered !== key) return;
    const { z } = matrix(layer, layer.heads.indexOf(head), 128);
    const box = panel.querySelector("[data-role=hover-box]");
    await chart(box, "attention-layer" + layerIndex + "-head-" + head, [{
      type: "heatmap", z: z, colorscale: SCALE, zmin: 0, showscale: false,
      hovertemplate: "query %{y}<br>key %{x}<br>%{z:.3f}<extra></extra>",
    }], {
      height: 420, title: { text: "Layer " + layerIndex + ", head " + head }, margin: { l: 40, r: 10, t: 40, b: 40 },
      yaxis: { autorange: "reversed", title: { text: "query" } }, xaxis: { title: { text: "key" } },
    }, function () { return matrixRows(layer, z, Math.ceil(layer.n / Math.min(layer.n, 128)), "head " + head); });
  }

  function drawClusters() {
    const box = panel.querySelector("[data-role=clusters]");
    box.replaceChildren();
    const table = make("table", { class: "clusters", "data-testid": "clusters" });
    const head = make("tr");
    ["cluster", "heads", "what they do"].concat(result.feature_names).forEach(function (title) { head.appendChild(make("th", {}, title)); });
    table.appendChild(make("thead")).appendChild(head);
    const body = table.appendChild(make("tbody"));
    result.clusters.forEach(function (cluster, index) {
      const row = make("tr");
      const name = row.appendChild(make("td"));
      name.appendChild(make("span", { class: "swatch", style: "background:" + COLOURS[index % COLOURS.length] }));
      name.appendChild(document.createTextNode(cluster.label));
      row.appendChild(make("td", {}, String(cluster.size)));
      row.appendChild(make("td", { class: "muted" }, cluster.description));
      result.feature_names.forEach(function (feature) { row.appendChild(make("td", {}, cluster.mean_features[feature].toFixed(2))); });
      body.appendChild(row);
    });
    box.appendChild(table);
  }

  async function load() {
    const k = Number(panel.querySelector("[data-role=k]").value);
    await guarded(panel, "Measuring every head and drawing the map…", async function () {
      result = await runJob(panel, "heads", Object.assign(sequence(), { k: k }));
      hovered = null;
      await drawScatter();
      drawClusters();
      const first = result.heads.find(function (head) { return head.cluster === result.clusters[0].id; });
      await showHead(first.layer, first.head);
    });
  }

  panel.querySelector("[data-role=k]").addEventListener("change", load);
  return { load: load };
}
