// The Tokens panel: the pieces and the source text linked both ways, two tokenizers
// compared, and a word looked up in the vocabulary.

import { context } from "./context.js";
import { post, sequence } from "./api.js";
import { make, visibleText } from "./dom.js";
import { guarded } from "./status.js";
import { compareTokenizers, piece, renderLookup } from "./vocabulary.js";

export function createTokensPanel() {
  const panel = document.getElementById("panel-tokens");
  const links = { piece: new Map(), source: new Map() };

  function link(map, index, node) {
    if (!map.has(index)) map.set(index, []);
    map.get(index).push(node);
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
    const node = event.target.closest && event.target.closest("[data-role=pieces] [data-t], [data-role=source] [data-t]");
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
      box.replaceChildren(await compareTokenizers(keys, context.models, context.prompt));
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
