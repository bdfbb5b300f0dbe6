// The home page: look a word up in a model's vocabulary and tokenize one text with two
// models (the same tools as an exploration's Tokens panel); the examples skip the tour once
// it has been taken or skipped.

import { post } from "./inside/api.js";
import { compareTokenizers, renderLookup } from "./inside/vocabulary.js";
import { guarded } from "./inside/status.js";

const tools = document.getElementById("vocabulary-tools");
const models = JSON.parse(document.getElementById("home-models").textContent);

tools.querySelector("[data-role=lookup]").addEventListener("submit", async function (event) {
  event.preventDefault();
  const form = event.target;
  await guarded(tools, "Looking up…", async function () {
    const result = await post("vocabulary", { model: form.elements.model.value, word: form.elements.word.value });
    tools.querySelector("[data-role=lookup-result]").replaceChildren(renderLookup(result));
  });
});

tools.querySelector("[data-role=compare]").addEventListener("submit", async function (event) {
  event.preventDefault();
  const form = event.target;
  const keys = [form.elements.first.value, form.elements.second.value];
  await guarded(tools, "Tokenizing with both models…", async function () {
    const result = await compareTokenizers(keys, models, form.elements.text.value);
    tools.querySelector("[data-role=compare-result]").replaceChildren(result);
  });
});

try {
  if (localStorage.getItem("tokenlens-tour")) {
    document.querySelectorAll("[data-role=tour-flag]").forEach(function (flag) { flag.remove(); });
  }
} catch (error) { /* private mode: the tour is offered each time */ }
