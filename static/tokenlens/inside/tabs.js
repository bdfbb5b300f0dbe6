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
}

export function wireTabs() {
  root.addEventListener("click", function (event) {
    const tab = event.target.closest("[role=tab]");
    if (tab) open(tab.dataset.panel);
    if (event.target.closest("[data-action=reread]") && current) {
      panels[current].loadedFor = null;
      open(current);
    }
  });
}
