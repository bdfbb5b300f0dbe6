// The charts drawn by the server as inline SVG (surprisal and entropy under the text) export
// like the Plotly ones: PNG and SVG of the figure, CSV and JSON of its rows (data-row).
(function () {
  function download(filename, blob) {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = filename;
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
  }

  // The figure as a standalone SVG: its computed colours written in, at its drawn size.
  function standalone(svg) {
    const copy = svg.cloneNode(true);
    const box = svg.getBoundingClientRect();
    copy.setAttribute("xmlns", "http://www.w3.org/2000/svg");
    copy.setAttribute("width", Math.round(box.width));
    copy.setAttribute("height", Math.round(box.height));
    const originals = svg.querySelectorAll("*");
    copy.querySelectorAll("*").forEach(function (node, index) {
      const style = getComputedStyle(originals[index]);
      ["fill", "stroke", "stroke-width", "stroke-dasharray"].forEach(function (name) {
        node.setAttribute(name, style.getPropertyValue(name));
      });
      node.removeAttribute("class");
    });
    const background = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    ["x", "y"].forEach(function (name) { background.setAttribute(name, "0"); });
    background.setAttribute("width", "100%");
    background.setAttribute("height", "100%");
    background.setAttribute("fill", "#fafbff");
    copy.insertBefore(background, copy.firstChild);
    return { text: new XMLSerializer().serializeToString(copy), width: box.width, height: box.height };
  }

  function rows(svg) {
    return Array.from(svg.querySelectorAll("[data-row]")).map(function (node) { return JSON.parse(node.dataset.row); });
  }

  function csv(records) {
    if (!records.length) return "";
    const columns = Object.keys(records[0]);
    const cell = function (value) {
      const text = String(value);
      return /[",\n\r]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
    };
    return [columns.join(",")].concat(records.map(function (row) {
      return columns.map(function (name) { return cell(row[name]); }).join(",");
    })).join("\r\n") + "\r\n";
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("[data-svg-export]");
    if (!button) return;
    const svg = button.closest("figure").querySelector("svg");
    const name = "tokenlens-" + svg.dataset.name;
    const kind = button.dataset.svgExport;
    if (kind === "csv") return download(name + ".csv", new Blob([csv(rows(svg))], { type: "text/csv" }));
    if (kind === "json") return download(name + ".json", new Blob([JSON.stringify(rows(svg), null, 1)], { type: "application/json" }));
    const figure = standalone(svg);
    const blob = new Blob([figure.text], { type: "image/svg+xml" });
    if (kind === "svg") return download(name + ".svg", blob);
    const image = new Image();
    image.onload = function () {
      const canvas = document.createElement("canvas");
      canvas.width = Math.round(figure.width * 2);
      canvas.height = Math.round(figure.height * 2);
      const context = canvas.getContext("2d");
      context.scale(2, 2);
      context.drawImage(image, 0, 0, figure.width, figure.height);
      URL.revokeObjectURL(image.src);
      canvas.toBlob(function (png) { download(name + ".png", png); }, "image/png");
    };
    image.src = URL.createObjectURL(blob);
  });
})();
