// A conversation's messages: "Look inside" on a message makes every panel read the
// conversation only up to the end of that message, so its attention, attribution and
// layer-by-layer predictions are drawn as they were for that turn. The reading point is kept
// on the panels' container (api.js completionIds reads it) until "Read the whole
// conversation".

import { root } from "./context.js";
import { make } from "./dom.js";
import { open, panels } from "./tabs.js";

function note() {
  return root.querySelector("[data-role=inside-reading]");
}

function openPanel() {
  const selected = root.querySelector("[role=tab][aria-selected=true]");
  const name = selected ? selected.dataset.panel : "attention";
  if (panels[name]) panels[name].loadedFor = null;
  open(name);
}

// The message being read stays outlined after the branch panel is swapped in again.
function markMessage() {
  const upTo = root.dataset.readUpTo;
  document.querySelectorAll("#branch-view [data-action=inside-turn]").forEach(function (button) {
    const message = button.closest(".message");
    message.classList.toggle("reading", upTo !== undefined && button.dataset.readUpTo === upTo);
  });
}

function readUpTo(button) {
  const messages = Array.from(document.querySelectorAll("#branch-view .message"));
  const message = button.closest(".message");
  const number = messages.indexOf(message) + 1;
  const who = message.dataset.role === "assistant" ? "the model's reply" : "your message";
  root.dataset.readUpTo = button.dataset.readUpTo;
  const whole = make("button", { type: "button", class: "small", "data-action": "read-whole" }, "Read the whole conversation");
  const text = make("p", { class: "inside-reading", "data-role": "inside-reading", "data-testid": "inside-reading", role: "status" });
  text.append("The panels read the conversation up to the end of message " + number + " (" + who + "), as the model had it then. ", whole);
  if (note()) note().replaceWith(text);
  else root.querySelector("h2").after(text);
  markMessage();
  openPanel();
  root.scrollIntoView({ behavior: "smooth", block: "start" });
}

function readWhole() {
  delete root.dataset.readUpTo;
  if (note()) note().remove();
  markMessage();
  openPanel();
}

// A step's "Layer by layer" or "Which input tokens drove it" for a token after the message
// being read: the panels read the whole conversation again first (capture phase, so before
// the panels' own handlers count positions).
function stepAfterReadingPoint(event) {
  const button = event.target.closest && event.target.closest("[data-lens-step], [data-attribution-step]");
  if (!button || root.dataset.readUpTo === undefined) return;
  const index = Number(button.dataset.lensStep || button.dataset.attributionStep);
  if (index > Number(root.dataset.readUpTo)) {
    delete root.dataset.readUpTo;
    if (note()) note().remove();
    markMessage();
  }
}

export function wireTurns() {
  document.addEventListener("click", stepAfterReadingPoint, true);
  document.addEventListener("click", function (event) {
    const look = event.target.closest("[data-action=inside-turn]");
    if (look) readUpTo(look);
    if (event.target.closest("[data-action=read-whole]")) readWhole();
  });
  ["htmx:afterSettle", "htmx:oobAfterSwap", "htmx:wsAfterMessage"].forEach(function (name) {
    document.addEventListener(name, markMessage);
  });
}
