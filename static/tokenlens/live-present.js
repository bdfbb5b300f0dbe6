// The presenter's page tells the live class what it shows: the branch on screen, the open
// "Inside the model" panel with its choices, the selected token. Steps, generation and the
// next-token preview reach the class from the server by themselves.
(function () {
  const bar = document.querySelector("[data-live]");
  if (!bar || bar.dataset.presenting !== "yes") return;  // another instructor presents
  const url = "/api/v1/live/" + bar.dataset.live + "/state/";
  const MAX_CHOICES = 20;

  function csrf() {
    return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  }

  function tell(change) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify(change),
    });
  }

  function spotlight(participant, names) {
    const path = "/api/v1/live/" + bar.dataset.live + "/spotlight/";
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify({ participant: participant, names: names }),
    });
  }

  function choicesOf(name) {
    const choices = {};
    const panel = document.getElementById("panel-" + name);
    if (!panel) return choices;
    panel.querySelectorAll("select[name], input[name]").forEach(function (field) {
      if (Object.keys(choices).length >= MAX_CHOICES || field.type === "hidden") return;
      if (field.type === "checkbox") choices[field.name] = field.checked;
      else if (field.value.length <= 200) choices[field.name] = field.value;
    });
    return choices;
  }

  let panelTimer = null;
  function tellPanel() {
    clearTimeout(panelTimer);
    panelTimer = setTimeout(function () {
      const tab = document.querySelector("#inside [role=tab][aria-selected=true]");
      const name = tab ? tab.dataset.panel : null;
      tell({ panel: name ? { name: name, choices: choicesOf(name) } : {} });
    }, 300);
  }

  const view = document.getElementById("branch-view");
  if (view && view.dataset.branch !== bar.dataset.liveBranch) tell({ branch: view.dataset.branch });

  document.addEventListener("click", function (event) {
    if (event.target.closest("#inside [role=tab]")) tellPanel();
    const spot = event.target.closest("[data-spotlight]");
    if (spot) {
      const names = document.querySelector("[data-spotlight-names]");
      const participant = spot.dataset.spotlight ? parseInt(spot.dataset.spotlight, 10) : null;
      spotlight(participant, !!(names && names.checked && participant !== null));
    }
    const token = event.target.closest("#branch-view button.gen[data-index]");
    if (token) tell({ selection: [parseInt(token.dataset.index, 10)] });
  });
  document.addEventListener("change", function (event) {
    if (event.target.closest("#inside [role=tabpanel]")) tellPanel();
    if (event.target.matches("[data-live-pacing]")) tell({ pacing: event.target.value });
    if (event.target.matches("[data-spotlight-names]")) {
      spotlight(parseInt(event.target.dataset.spotlightNames, 10), event.target.checked);
    }
  });
})();
