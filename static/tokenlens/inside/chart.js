// Plotly charts (the library is fetched on the first one) with PNG, SVG, CSV and JSON downloads.

import { root } from "./context.js";
import { make } from "./dom.js";

// Plotly (4.6 MB) is fetched when the first chart is drawn, so the page itself stays light.
let plotlyReady = null;
export function plotly() {
  if (!plotlyReady) {
    plotlyReady = new Promise(function (resolve, reject) {
      const script = make("script", { src: root.dataset.plotly });
      script.onload = resolve;
      script.onerror = function () { plotlyReady = null; reject(new Error("The charting library did not load; reload the page")); };
      document.head.appendChild(script);
    });
  }
  return plotlyReady;
}

export function download(filename, blob) {
  const link = make("a", { href: URL.createObjectURL(blob), download: filename });
  document.body.appendChild(link);
  link.click();
  setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
}

export function csvCell(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n\r]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}

export function toCsv(rows) {
  if (!rows.length) return "";
  const columns = Object.keys(rows[0]);
  const lines = [columns.map(csvCell).join(",")];
  rows.forEach(function (row) { lines.push(columns.map(function (name) { return csvCell(row[name]); }).join(",")); });
  return lines.join("\r\n") + "\r\n";
}

// One chart: a Plotly figure in `box` with a toolbar of downloads. rows() gives the chart's
// data as flat records (CSV and JSON); the figure itself gives PNG and SVG.
export async function chart(box, name, traces, layout, rows, onReady) {
  await plotly();
  box.replaceChildren();
  const figure = make("div", { class: "chart", "data-chart": name });
  const toolbar = make("div", { class: "downloads", role: "group", "aria-label": "Download " + name });
  box.append(figure, toolbar);
  const filename = "tokenlens-" + name;
  [["PNG", "png"], ["SVG", "svg"]].forEach(function ([title, format]) {
    const button = make("button", { type: "button", "data-export": format }, title);
    button.addEventListener("click", async function () {
      const size = { width: figure.clientWidth || 900, height: figure.clientHeight || 500 };
      const url = await Plotly.toImage(figure, Object.assign({ format: format }, size));
      download(filename + "." + format, await (await fetch(url)).blob());
    });
    toolbar.appendChild(button);
  });
  const csv = make("button", { type: "button", "data-export": "csv" }, "CSV");
  csv.addEventListener("click", function () { download(filename + ".csv", new Blob([toCsv(rows())], { type: "text/csv" })); });
  const json = make("button", { type: "button", "data-export": "json" }, "JSON");
  json.addEventListener("click", function () { download(filename + ".json", new Blob([JSON.stringify(rows(), null, 1)], { type: "application/json" })); });
  toolbar.append(csv, json);
  const base = { margin: { l: 60, r: 20, t: 30, b: 60 }, font: { size: 11 }, paper_bgcolor: "#fff", plot_bgcolor: "#fff" };
  await Plotly.newPlot(figure, traces, Object.assign(base, layout), {
    responsive: true, displaylogo: false, toImageButtonOptions: { filename: filename },
  });
  figure.dataset.rendered = "1";
  if (onReady) onReady(figure);
  return figure;
}
