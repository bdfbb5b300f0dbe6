// Tokens as chips, a word looked up in a vocabulary, and one text through two tokenizers:
// shared by the exploration's Tokens panel and the home page.

import { post } from "./api.js";
import { make, visibleText } from "./dom.js";

// One token as a focusable chip (data-t = its position), its id and bytes in the title.
export function piece(token, index) {
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

// The same text through each model's tokenizer, side by side, with the ratio of counts.
export async function compareTokenizers(keys, models, text) {
  const results = await Promise.all(keys.map(function (key) { return post("tokenize", { model: key, text: text }); }));
  const box = document.createDocumentFragment();
  results.forEach(function (result, column) {
    const model = models.find(function (entry) { return entry.key === keys[column]; });
    const section = make("div", { class: "compare-column", "data-testid": "compare-" + column });
    section.append(make("h4", {}, (model ? model.label : keys[column]) + ": " + result.count + " tokens"));
    const strip = make("div", { class: "tokens" });
    result.tokens.forEach(function (token, index) { strip.appendChild(piece(token, index)); });
    section.appendChild(strip);
    box.appendChild(section);
  });
  const [first, second] = results.map(function (result) { return result.count; });
  box.appendChild(make("p", { class: "muted" }, "The same " + text.length + " characters are " + first + " and " + second + " tokens (" + (second / first).toFixed(2) + "×)."));
  return box;
}

export function renderLookup(result) {
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
