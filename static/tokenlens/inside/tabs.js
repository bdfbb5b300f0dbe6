// The panels' tabs: which panel is open, and loading a panel when its sequence changed.

import { root } from "./context.js";
import { sequence } from "./api.js";

export const panels = {};
let current = null;

export function open(name) {
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
  markStale();
}

// An open panel drawn for other tokens than the branch shows now says so on its "Read again"
// button (it is not redrawn by itself: an analysis per streamed token would swamp the worker).
function markStale() {
  const button = root.querySelector("[data-action=reread]");
  const panel = current && panels[current];
  const stale = !!panel && panel.loadedFor !== JSON.stringify(sequence());
  button.classList.toggle("stale", stale);
  button.textContent = stale ? "The text changed: read again" : "Read again";
}

export function wireTabs() {
  ["htmx:afterSettle", "htmx:oobAfterSwap", "htmx:wsAfterMessage"].forEach(function (name) {
    document.addEventListener(name, markStale);
  });
  root.addEventListener("click", function (event) {
    const tab = event.target.closest("[role=tab]");
    if (tab) open(tab.dataset.panel);
    if (event.target.closest("[data-action=reread]") && current) {
      panels[current].loadedFor = null;
      open(current);
    }
  });
}
