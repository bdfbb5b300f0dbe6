// The Tokens panel: the pieces and the source text linked both ways, two tokenizers
// compared, and a word looked up in the vocabulary.

import { context } from "./context.js";
import { post, sequence } from "./api.js";
import { make, visibleText } from "./dom.js";
import { guarded } from "./status.js";

export function createTokensPanel() {
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
        node.classList.toggle("hl", on || node.classList.contains("pinned"));
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

  // A tap (or click) does what hovering does on a desktop, and says what the title says.
  panel.addEventListener("click", function (event) {
    const node = event.target.closest && event.target.closest("[data-t]");
    if (!node || !panel.contains(node)) return;
    const indices = node.dataset.t.split(" ").map(Number);
    panel.querySelectorAll(".pinned").forEach(function (pinned) { pinned.classList.remove("pinned", "hl"); });
    indices.forEach(function (index) {
      (links.piece.get(index) || []).concat(links.source.get(index) || []).forEach(function (linked) {
        linked.classList.add("pinned", "hl");
      });
    });
    const first = (links.piece.get(indices[0]) || [])[0];
    const facts = panel.querySelector("[data-role=piece-facts]");
    if (facts && first) facts.textContent = first.title;
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
}

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
