// "Inside the model" panels of the exploration page. Each panel reads the REST API about the
// prompt followed by the current branch's tokens, and draws with Plotly. Every chart has PNG,
// SVG, CSV and JSON downloads.
(function () {
  "use strict";
  const root = document.getElementById("inside");
  if (!root) return;
  const context = JSON.parse(document.getElementById("inside-context").textContent);
  const timings = (window.tokenlensTimings = {});

  // ---------------------------------------------------------------- plumbing
  function csrfToken() {
    const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
    return headers["X-CSRFToken"] || "";
  }

  async function post(path, body) {
    const response = await fetch("/api/v1/" + path + "/", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    if (!response.ok) {
      const message = data && data.error ? data.error.message : "The server answered " + response.status;
      throw new Error(message);
    }
    return data;
  }

  // A long computation as a job: started, then polled; its stage ("… 12 of 32 steps") drives
  // a progress bar in the panel's status line.
  // A newer job on the same panel (another method, more steps) supersedes an older one: the
  // older one's result must not land on top of the newer one when it happens to finish later.
  const SUPERSEDED = new Error("superseded by a newer request");
  let jobTickets = 0;

  async function runJob(panel, kind, params) {
    const ticket = String(++jobTickets);
    panel.dataset.jobTicket = ticket;
    const current = function () { return panel.dataset.jobTicket === ticket; };
    let job = await post("jobs", { kind: kind, params: params });
    while (job.status === "pending" || job.status === "running") {
      if (!current()) throw SUPERSEDED;
      showProgress(panel, job.stage || (job.status === "pending" ? "Waiting for a worker…" : "Working…"));
      await new Promise(function (resolve) { setTimeout(resolve, 400); });
      const response = await fetch("/api/v1/jobs/" + job.id + "/", { credentials: "same-origin" });
      job = await response.json();
      if (!response.ok) throw new Error(job.error ? job.error.message : "The job vanished");
    }
    if (!current()) throw SUPERSEDED;
    if (job.status === "failed") throw new Error(job.error.message);
    return job.result;
  }

  function showProgress(panel, stage) {
    const box = panel.querySelector("[data-role=status]");
    const counted = /(\d+) of (\d+)/.exec(stage);
    box.replaceChildren(make("span", { class: "spinner", "aria-hidden": "true" }));
    if (counted) box.appendChild(make("progress", { value: counted[1], max: counted[2], "data-testid": "progress" }));
    box.appendChild(make("span", { class: "muted", role: "status" }, stage));
  }

  function completionIds() {
    return Array.from(document.querySelectorAll("#branch-view .generated [data-token-id]"))
      .map(function (node) { return parseInt(node.dataset.tokenId, 10); });
  }

  function sequence() {
    return {
      model: context.model,
      text: context.prompt,
      system_prompt: context.system_prompt || null,
      use_chat_template: context.use_chat_template,
      completion_ids: completionIds(),
    };
  }

  function make(tag, attributes, text) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(function ([name, value]) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
    });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  const MARKS = { " ": ["·", "space"], "\t": ["→", "tab"], "\n": ["↵", "newline"], "\r": ["␍", "carriage return"] };

  // A strip of token chips (data-q = position) that acts on a click or on Enter/Space;
  // `adding` is true when the shift (click: also ctrl/cmd) key asks to add to a selection.
  function onTokenPick(strip, act) {
    strip.addEventListener("click", function (event) {
      const node = event.target.closest("[data-q]");
      if (node) act(Number(node.dataset.q), event.shiftKey || event.ctrlKey || event.metaKey);
    });
    strip.addEventListener("keydown", function (event) {
      const node = event.target.closest("[data-q]");
      if (node && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        act(Number(node.dataset.q), event.shiftKey);
      }
    });
  }

  // Text with spaces, tabs and newlines drawn as visible marks (as DOM nodes, never as HTML).
  function visibleText(text, inline) {
    const fragment = document.createDocumentFragment();
    let plain = "";
    for (const char of text) {
      const mark = MARKS[char];
      if (!mark) { plain += char; continue; }
      if (plain) { fragment.appendChild(document.createTextNode(plain)); plain = ""; }
      fragment.appendChild(make("span", { class: "ws", title: mark[1] }, mark[0]));
      if (char === "\n" && !inline) fragment.appendChild(document.createElement("br"));
    }
    if (plain) fragment.appendChild(document.createTextNode(plain));
    return fragment;
  }

  // A token as a one-line label for chart axes and lists.
  function label(token) {
    return token.special ? token.text : token.text.replace(/[ \t\n\r]/g, function (char) { return MARKS[char][0]; });
  }

  // Text as Plotly must be given it to show it literally. Plotly reads a subset of HTML in
  // every string it draws (tick labels, hover text, text on marks, annotations, legend names,
  // titles): <b>, <i>, <sup>, <br>, <a href> and entities, and hover templates read %{...}.
  // Vocabularies hold tokens such as "<b>" and "</a>", so every text from a model or a person
  // goes through here on its way into a figure (never into the CSV and JSON downloads, which
  // keep the raw text). Plotly turns the entities back into the characters.
  const PLOT_ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "%": "&#37;" };
  function plotText(text) {
    return String(text).replace(/[&<>%]/g, function (char) { return PLOT_ENTITIES[char]; });
  }

  // A token's one-line label, ready for a figure.
  function plotLabel(token) {
    return plotText(label(token));
  }

  function setStatus(panel, message, kind) {
    const box = panel.querySelector("[data-role=status]");
    box.replaceChildren();
    if (!message) return;
    if (kind === "busy") box.appendChild(make("span", { class: "spinner", "aria-hidden": "true" }));
    box.appendChild(make("span", { class: kind === "error" ? "error" : "muted", role: kind === "error" ? "alert" : "status" }, message));
  }

  async function guarded(panel, message, work) {
    setStatus(panel, message, "busy");
    try {
      await work();
      setStatus(panel, "");
    } catch (error) {
      if (error !== SUPERSEDED) setStatus(panel, error.message, "error");
    }
  }

  // Plotly (4.6 MB) is fetched when the first chart is drawn, so the page itself stays light.
  let plotlyReady = null;
  function plotly() {
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

  // ---------------------------------------------------------------- downloads
  function download(filename, blob) {
    const link = make("a", { href: URL.createObjectURL(blob), download: filename });
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
  }

  function csvCell(value) {
    const text = value === null || value === undefined ? "" : String(value);
    return /[",\n\r]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  function toCsv(rows) {
    if (!rows.length) return "";
    const columns = Object.keys(rows[0]);
    const lines = [columns.map(csvCell).join(",")];
    rows.forEach(function (row) { lines.push(columns.map(function (name) { return csvCell(row[name]); }).join(",")); });
    return lines.join("\r\n") + "\r\n";
  }

  // One chart: a Plotly figure in `box` with a toolbar of downloads. rows() gives the chart's
  // data as flat records (CSV and JSON); the figure itself gives PNG and SVG.
  async function chart(box, name, traces, layout, rows, onReady) {
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

  // ---------------------------------------------------------------- tabs
  const panels = {};
  let current = null;

  function open(name) {
    root.querySelectorAll("[role=tab]").forEach(function (tab) {
      const selected = tab.dataset.panel === name;
      tab.setAttribute("aria-selected", selected ? "true" : "false");
      document.getElementById("panel-" + tab.dataset.panel).hidden = !selected;
    });
    current = name;
    const panel = panels[name];
    if (panel && panel.loadedFor !== JSON.stringify(sequence())) {
      panel.loadedFor = JSON.stringify(sequence());
      panel.load();
    }
  }

  root.addEventListener("click", function (event) {
    const tab = event.target.closest("[role=tab]");
    if (tab) open(tab.dataset.panel);
    if (event.target.closest("[data-action=reread]") && current) {
      panels[current].loadedFor = null;
      open(current);
    }
  });

  // ---------------------------------------------------------------- tokens
  panels.tokens = (function () {
    const panel = document.getElementById("panel-tokens");
    const links = { piece: new Map(), source: new Map() };

    function link(map, index, node) {
      if (!map.has(index)) map.set(index, []);
      map.get(index).push(node);
    }

    function piece(token, index) {
      const classes = ["tok"];
      if (token.special) classes.push("special");
      if (token.partial) classes.push("partial");
      const node = make("span", {
        class: classes.join(" "), "data-t": index, tabindex: "0",
        title: "#" + index + " · id " + token.id + (token.bytes ? " · bytes " + token.bytes : "") +
          (token.end > token.start ? " · characters " + token.start + "–" + token.end : ""),
      });
      if (token.special) node.textContent = token.text;
      else node.appendChild(visibleText(token.text));
      return node;
    }

    // The source text cut at the tokens' character offsets; a stretch covered by several
    // tokens (the bytes of one character) links to all of them.
    function sourceSpans(text, tokens) {
      const fragment = document.createDocumentFragment();
      let position = 0;
      let last = null;
      tokens.forEach(function (token, index) {
        if (token.end <= token.start) return;
        if (token.start < position && last) {
          last.dataset.t += " " + index;
          link(links.source, index, last);
          return;
        }
        if (token.start > position) fragment.appendChild(visibleText(text.slice(position, token.start)));
        last = make("span", { class: "src", "data-t": String(index) });
        last.appendChild(visibleText(text.slice(token.start, token.end)));
        link(links.source, index, last);
        fragment.appendChild(last);
        position = token.end;
      });
      if (position < text.length) fragment.appendChild(visibleText(text.slice(position)));
      return fragment;
    }

    function highlight(indices, on) {
      indices.forEach(function (index) {
        (links.piece.get(index) || []).concat(links.source.get(index) || []).forEach(function (node) {
          node.classList.toggle("hl", on);
        });
      });
    }

    ["mouseover", "mouseout", "focusin", "focusout"].forEach(function (type) {
      panel.addEventListener(type, function (event) {
        const node = event.target.closest && event.target.closest("[data-t]");
        if (!node || !panel.contains(node)) return;
        highlight(node.dataset.t.split(" ").map(Number), type === "mouseover" || type === "focusin");
      });
    });

    async function load() {
      await guarded(panel, "Tokenizing…", async function () {
        const result = await post("tokenize", sequence());
        links.piece.clear();
        links.source.clear();
        const pieces = panel.querySelector("[data-role=pieces]");
        pieces.replaceChildren();
        result.tokens.forEach(function (token, index) {
          const node = piece(token, index);
          link(links.piece, index, node);
          pieces.appendChild(node);
        });
        panel.querySelector("[data-role=source]").replaceChildren(sourceSpans(result.text, result.tokens));
        pieces.insertAdjacentElement("beforebegin", make("p", { class: "muted", "data-role": "count" }, result.count + " tokens" + (result.used_chat_template ? " (with the chat template)" : "")));
        panel.querySelectorAll("[data-role=count]").forEach(function (node, index) { if (index > 0) node.remove(); });
      });
    }

    // The compare form: the same prompt text through two models' tokenizers.
    const select = panel.querySelector("#compare-model");
    context.models.forEach(function (model) {
      if (model.key !== context.model) select.appendChild(make("option", { value: model.key }, model.label));
    });
    if (!select.options.length) panel.querySelector("[data-role=compare]").hidden = true;

    panel.querySelector("[data-role=compare]").addEventListener("submit", async function (event) {
      event.preventDefault();
      const box = panel.querySelector("[data-role=compare-result]");
      const keys = [context.model, select.value];
      await guarded(panel, "Tokenizing with both models…", async function () {
        const results = await Promise.all(keys.map(function (key) { return post("tokenize", { model: key, text: context.prompt }); }));
        box.replaceChildren();
        results.forEach(function (result, column) {
          const model = context.models.find(function (entry) { return entry.key === keys[column]; });
          const section = make("div", { class: "compare-column", "data-testid": "compare-" + column });
          section.append(make("h4", {}, (model ? model.label : keys[column]) + ": " + result.count + " tokens"));
          const strip = make("div", { class: "tokens" });
          result.tokens.forEach(function (token, index) { strip.appendChild(piece(token, index)); });
          section.appendChild(strip);
          box.appendChild(section);
        });
        const [first, second] = results.map(function (result) { return result.count; });
        box.appendChild(make("p", { class: "muted" }, "The same " + context.prompt.length + " characters are " + first + " and " + second + " tokens (" + (second / first).toFixed(2) + "×)."));
      });
    });

    panel.querySelector("[data-role=lookup]").addEventListener("submit", async function (event) {
      event.preventDefault();
      const word = event.target.elements.word.value;
      const box = panel.querySelector("[data-role=lookup-result]");
      await guarded(panel, "Looking up…", async function () {
        box.replaceChildren(renderLookup(await post("vocabulary", { model: context.model, word: word })));
      });
    });

    return { load: load };
  })();

  function renderLookup(result) {
    const table = make("table", { class: "lookup", "data-testid": "lookup" });
    const head = make("tr");
    ["form", "ids", "pieces", ""].forEach(function (title) { head.appendChild(make("th", {}, title)); });
    table.appendChild(make("thead")).appendChild(head);
    const body = table.appendChild(make("tbody"));
    result.forms.forEach(function (form) {
      const row = make("tr");
      const text = row.appendChild(make("td"));
      text.appendChild(make("span", { class: "mono" })).appendChild(visibleText(form.text));
      text.appendChild(make("div", { class: "muted" }, form.label));
      row.appendChild(make("td", { class: "mono" }, form.ids.join(" ")));
      const pieces = make("td", { class: "tokens" });
      form.tokens.forEach(function (token) {
        pieces.appendChild(make("span", { class: "tok" + (token.partial ? " partial" : ""), title: "id " + token.id + " · stored as " + token.piece })).appendChild(visibleText(token.text));
      });
      row.appendChild(pieces);
      row.appendChild(make("td", { class: "muted" }, form.single_token ? "one token" : form.ids.length + " tokens"));
      body.appendChild(row);
    });
    const box = make("div");
    box.appendChild(table);
    if (result.by_id) {
      const entry = make("p", { class: "muted" }, "Token id " + result.by_id.id + " is ");
      entry.appendChild(make("span", { class: "tok" })).appendChild(visibleText(result.by_id.text));
      entry.appendChild(document.createTextNode(" (stored as " + result.by_id.piece + ")."));
      box.appendChild(entry);
    }
    box.appendChild(make("p", { class: "muted" }, "The vocabulary has " + result.vocab_size.toLocaleString() + " entries."));
    return box;
  }

  // ---------------------------------------------------------------- embeddings panel
  panels.embeddings = (function () {
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
  })();

  // ---------------------------------------------------------------- attention data
  const SCALE = [[0, "#ffffff"], [0.1, "#c6dbef"], [0.4, "#4292c6"], [1, "#08306b"]];

  async function inflate(base64) {
    const bytes = Uint8Array.from(atob(base64), function (char) { return char.charCodeAt(0); });
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  // One layer's maps as sent: lower triangles, head by head, quantized to bytes (value / 255).
  async function readLayer(result) {
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

  function halfToFloat(raw) {
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
  function matrix(layer, which, bins) {
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

  function axisLabels(tokens, step) {
    const labels = [];
    for (let start = 0; start < tokens.length; start += step) {
      const end = Math.min(tokens.length, start + step) - 1;
      labels.push(step === 1 ? start + " " + plotLabel(tokens[start]) : start + "–" + end);
    }
    return labels;
  }

  function matrixRows(layer, z, step, headName) {
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

  // ---------------------------------------------------------------- attention panel
  panels.attention = (function () {
    const panel = document.getElementById("panel-attention");
    const controls = panel.querySelector("[data-role=controls]");
    const layerSelect = panel.querySelector("[data-role=layer]");
    const headSelect = panel.querySelector("[data-role=head]");
    const viewSelect = panel.querySelector("[data-role=view]");
    const cache = new Map();
    let layer = null;
    let selected = [];

    async function facts() {
      if (context.facts.n_layers) return context.facts;
      const catalog = await fetch("/api/v1/models/", { credentials: "same-origin" }).then(function (r) { return r.json(); });
      const entry = catalog.models.find(function (model) { return model.key === context.model; }) || {};
      context.facts = { n_layers: entry.n_layers || 1, n_heads: entry.n_heads, n_kv_heads: entry.n_kv_heads };
      return context.facts;
    }

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
      const layout = { grid: { rows: rows, columns: columns, pattern: "independent", xgap: 0.08, ygap: 0.12 }, height: 240 * rows + 60 };
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
          xref: "x" + suffix + " domain", yref: "y" + suffix + " domain", x: 0.5, y: 1.12,
        });
        records = records.concat(matrixRows(layer, z, step, "head " + head));
      });
      layout.annotations = annotations;
      layout.title = { text: "Layer " + layer.index + ": every head" + (layer.n > 128 ? " (each cell the max of " + Math.ceil(layer.n / 128) + "² tokens)" : "") };
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

    async function load() {
      const known = await facts();
      if (!layerSelect.options.length) {
        for (let index = 0; index < known.n_layers; index++) layerSelect.appendChild(make("option", { value: index }, String(index)));
      }
      await guarded(panel, "Reading the attention of layer " + layerSelect.value + "…", async function () {
        layer = await fetchLayer(Number(layerSelect.value));
        selected = selected.filter(function (index) { return index < layer.n; });
        fillHeads();
        await draw();
      });
    }

    controls.addEventListener("change", function (event) {
      if (event.target === layerSelect) load();
      else if (layer) guarded(panel, "Drawing…", draw);
    });

    return { load: load, layerFor: fetchLayer };
  })();

  // ---------------------------------------------------------------- layers (logit lens) panel
  panels.layers = (function () {
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

    return { load: load, showStep: showStep };
  })();

  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("[data-lens-step]");
    if (button) panels.layers.showStep(Number(button.dataset.lensStep));
  });

  // ---------------------------------------------------------------- attribution panel
  panels.attribution = (function () {
    const panel = document.getElementById("panel-attribution");
    const controls = panel.querySelector("[data-role=attribution-controls]");
    let tokens = [];
    let target = null; // {position, id}: explain `id` as the prediction made after `position`
    let hoverTimer = null;
    let hoverAnchor = null; // the generated token being explained on hover, if any

    let tokensFor = null;
    async function sequenceTokens() {
      const key = JSON.stringify(sequence());
      if (key !== tokensFor) {
        tokens = (await post("tokenize", sequence())).tokens;
        tokensFor = key;
      }
      return tokens;
    }

    // The text's tokens, each shaded by its score (blue raises the target, red lowers it).
    // upto: how many tokens to show (the card stops at the explained token); pickable: the
    // panel's strip, where a click explains that token.
    function shadedTokens(result, container, upto, pickable) {
      container.replaceChildren();
      const scores = result ? result.scores : [];
      const top = Math.max.apply(null, scores.map(Math.abs).concat([1e-12]));
      tokens.slice(0, upto).forEach(function (token, index) {
        const explained = target && index === target.position + 1;
        const node = make("span", {
          class: "tok" + (explained ? " selected" : ""), "data-q": index, role: pickable && "button", tabindex: pickable && "0",
          title: "#" + index + (index < scores.length ? " · score " + scores[index].toPrecision(3) : "") + (pickable && index > 0 ? " · click to explain this token" : ""),
        });
        if (index < scores.length) {
          const share = scores[index] / top;
          node.style.background = share >= 0 ? "rgba(52, 81, 209, " + share.toFixed(3) + ")" : "rgba(209, 73, 91, " + (-share).toFixed(3) + ")";
          if (Math.abs(share) > 0.55) node.style.color = "#fff";
        } else if (index > (target ? target.position : tokens.length)) {
          node.classList.add("later");
        }
        node.appendChild(token.special ? document.createTextNode(token.text) : visibleText(token.text, true));
        container.appendChild(node);
      });
    }

    function drawStrip(result) {
      shadedTokens(result, panel.querySelector("[data-role=strip]"), tokens.length, true);
    }

    // Hover explanations also show beside the hovered token, in a card over the generation view.
    const card = make("div", { class: "attribution-card", role: "status", "data-testid": "attribution-card", hidden: "" });
    document.body.appendChild(card);

    function showCard(result, anchor) {
      if (!anchor.isConnected) return;
      card.replaceChildren(make("p", { class: "muted" }, "Which earlier tokens drove "));
      card.firstChild.appendChild(make("span", { class: "tok" })).appendChild(visibleText(label(result.target), true));
      card.firstChild.appendChild(document.createTextNode(" (by " + result.method.replace(/_/g, " ") + "; blue raised it, red lowered it):"));
      shadedTokens(result, card.appendChild(make("div", { class: "tokens heat" })), result.position + 2, false);
      const box = anchor.getBoundingClientRect();
      card.style.left = Math.max(8, window.scrollX + Math.min(box.left, window.innerWidth - 520)) + "px";
      card.style.top = window.scrollY + box.bottom + 6 + "px";
      card.hidden = false;
    }

    function hideCard() {
      card.hidden = true;
      hoverAnchor = null;
    }

    function describe(result) {
      const facts = panel.querySelector("[data-role=attribution-facts]");
      facts.replaceChildren(document.createTextNode("Why "));
      facts.appendChild(make("span", { class: "tok" })).appendChild(visibleText(label(result.target), true));
      facts.appendChild(document.createTextNode(" (p = " + result.target.probability.toFixed(4) + ") after token #" + result.position + ", by " + result.method.replace(/_/g, " ") + ": " + result.explanation));
      const path = result.integrated_gradients;
      if (path) {
        facts.appendChild(make("span", { class: "muted" }, " Scores add up to " + path.f_difference.toFixed(3) + " = f(text) − f(" + path.baseline.text + " baseline), give or take Captum's convergence delta " + path.convergence_delta.toFixed(3) + "; " + path.n_steps + " steps. The first token and special tokens are kept in the baseline, so they score 0."));
        if (Math.abs(path.convergence_delta) > 0.1 * Math.abs(path.f_difference)) {
          facts.appendChild(make("span", { class: "warning", role: "note", "data-testid": "ig-warning" }, " The path integral has not converged (the delta is over 10 % of the change): read these scores as rough, or try more steps."));
        }
      }
      if (result.device !== "cpu" && result.device) facts.appendChild(make("span", { class: "muted" }, " Computed on " + result.device + "."));
    }

    async function explain() {
      if (!target) return;
      const method = panel.querySelector("[data-role=method]").value;
      const params = Object.assign(sequence(), { target_id: target.id, method: method, position: target.position, n_steps: Number(panel.querySelector("[data-role=n-steps]").value) });
      await guarded(panel, "Attributing…", async function () {
        const anchor = hoverAnchor;
        const result = await runJob(panel, "attribution", params);
        describe(result);
        drawStrip(result);
        if (anchor && anchor === hoverAnchor) showCard(result, anchor);
        await chart(panel.querySelector("[data-role=scores-box]"), "attribution-" + method + "-position" + result.position, [{
          type: "bar", x: result.tokens.map(function (token, index) { return index + " " + plotLabel(token); }), y: result.scores,
          marker: { color: result.scores.map(function (score) { return score >= 0 ? "#3451d1" : "#d1495b"; }) },
          hovertemplate: "%{x}<br>%{y:.4g}<extra></extra>",
        }], {
          title: { text: result.method.replace(/_/g, " ") + " → " + plotLabel(result.target) }, height: 320,
          xaxis: { type: "category", tickangle: -60, automargin: true }, yaxis: { title: { text: result.signed ? "contribution to log p" : "score" } },
        }, function () {
          return result.scores.map(function (score, index) { return { method: result.method, target_id: result.target.id, target: result.target.text, position: index, token_id: result.tokens[index].id, token: result.tokens[index].text, score: score }; });
        });
      });
    }

    async function load() {
      await guarded(panel, "Reading the text…", sequenceTokens);
      if (!target || target.position + 1 >= tokens.length) target = tokens.length > 1 ? { position: tokens.length - 2, id: tokens[tokens.length - 1].id } : null;
      drawStrip(null);
      await explain();
    }

    async function candidate(text) {
      const value = text.trim();
      let id = /^#\d+$/.test(value) ? Number(value.slice(1)) : null;
      if (id === null) {
        const lookup = await post("vocabulary", { model: context.model, word: text });
        const form = lookup.forms.find(function (entry) { return entry.text === text; }) || lookup.forms[0];
        id = form.ids[0];
      }
      target = { position: tokens.length - 1, id: id };
      await explain();
    }

    onTokenPick(panel.querySelector("[data-role=strip]"), function (index) {
      if (index === 0) return; // nothing comes before the first token to explain it
      target = { position: index - 1, id: tokens[index].id };
      explain();
    });
    controls.addEventListener("change", function (event) {
      if (event.target.dataset.role !== "hover") explain();
    });
    panel.querySelector("[data-role=candidate]").addEventListener("submit", function (event) {
      event.preventDefault();
      const text = event.target.elements.candidate.value;
      if (!text.trim()) return;
      guarded(panel, "Looking the token up…", function () { return candidate(text); });
    });

    // Hovering a generated token in the branch view explains it (when the box is ticked).
    document.addEventListener("mouseover", function (event) {
      const token = event.target.closest && event.target.closest("#branch-view .generated [data-token-id]");
      if (!token || !panel.querySelector("[data-role=hover]").checked || token === hoverAnchor) return;
      clearTimeout(hoverTimer);
      hoverTimer = setTimeout(function () {
        hoverAnchor = token;
        fromStep(Number(token.dataset.index), false);
      }, 350);
    });
    document.addEventListener("mouseout", function (event) {
      const from = event.target.closest && event.target.closest("#branch-view .generated [data-token-id]");
      const to = event.relatedTarget && event.relatedTarget.closest && event.relatedTarget.closest("#branch-view .generated [data-token-id]");
      if (from && !to) {
        clearTimeout(hoverTimer);
        hideCard();
      }
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape") hideCard();
    });

    // Explain generated token `index` of the branch (from its alternatives or a hover).
    async function fromStep(index, reveal) {
      if (reveal) {
        panels.attribution.loadedFor = JSON.stringify(sequence());
        open("attribution");
        root.scrollIntoView({ behavior: "smooth" });
      }
      await sequenceTokens();
      const position = tokens.length - completionIds().length + index - 1;
      target = { position: position, id: tokens[position + 1].id };
      await explain();
    }

    return { load: load, fromStep: fromStep };
  })();

  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("[data-attribution-step]");
    if (button) panels.attribution.fromStep(Number(button.dataset.attributionStep), true);
  });

  // ---------------------------------------------------------------- head clusters panel
  panels.heads = (function () {
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
  })();

  window.tokenlensInside = { open: open, panels: panels };
})();
