// A preset's values on a form's range sliders and their shown values (greedy: temperature 0);
// `announce` sends each moved slider an input event.
function applyPreset(form, preset, announce) {
  const values = Object.assign({}, preset);
  if (values.greedy) values.temperature = 0;
  Object.keys(values).forEach(function (name) {
    const slider = form.querySelector("input[type=range][name=" + name + "]");
    if (!slider) return;
    slider.value = values[name];
    const output = document.getElementById("out-" + name);
    if (output) output.textContent = slider.value;
    if (announce) slider.dispatchEvent(new Event("input", { bubbles: true }));
  });
}

// Small helpers: an elapsed-time counter on pending work.
(function () {
  function tick() {
    const now = Date.now() / 1000;
    document.querySelectorAll(".elapsed[data-since]").forEach(function (el) {
      const since = parseFloat(el.dataset.since);
      if (!isNaN(since)) el.textContent = Math.max(0, Math.round(now - since)) + " s";
    });
  }
  setInterval(tick, 500);
})();

// A websocket message updates only what this page shows: an out-of-band fragment whose target
// is not on the page (the tab that stepped already shows the new tokens; another branch of the
// exploration is not shown here) is dropped instead of logging htmx:oobErrorNoTarget.
htmx.defineExtension("present-targets", {
  transformResponse: function (text) {
    const template = document.createElement("template");
    template.innerHTML = text;
    let dropped = false;
    Array.from(template.content.children).forEach(function (fragment) {
      const swap = fragment.getAttribute("hx-swap-oob");
      if (swap === null) return;
      const colon = swap.indexOf(":");
      const selector = colon >= 0 ? swap.slice(colon + 1) : "#" + CSS.escape(fragment.id);
      if (!document.querySelector(selector)) {
        fragment.remove();
        dropped = true;
      }
    });
    return dropped ? template.innerHTML : text;
  },
});

// Exploration page: keyboard shortcuts (outside text inputs) and catching up after the
// websocket reconnects (the branch panel is re-read from the server).
(function () {
  const keys = { s: "step", g: "generate", z: "undo", x: "stop", Escape: "stop" };
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input:not([type=range]):not([type=checkbox]), textarea, select")) return;
    if (event.key === "Escape" && document.querySelector(".tour")) return;  // closes the tour only
    const action = keys[event.key];
    const button = action && document.querySelector("[data-action=" + action + "]");
    if (button) {
      event.preventDefault();
      button.click();
    }
  });
  // A pushed step's answer (over the websocket) can come before the response that says the
  // step is on its way: that late response must not cover the answer.
  document.addEventListener("htmx:beforeSwap", function (event) {
    const asked = event.detail.xhr && event.detail.xhr.getResponseHeader("TokenLens-Step");
    if (asked && document.querySelector('[data-answered="' + CSS.escape(asked) + '"]')) {
      event.detail.shouldSwap = false;
    }
  });
  let lost = false;
  // body[data-socket=open] while the page's websocket is connected (tests wait for it).
  document.addEventListener("htmx:wsClose", function () {
    delete document.body.dataset.socket;
    lost = true;
    // Steps wait for their answer again until the new connection sends its channel.
    const replyTo = document.getElementById("reply-to");
    if (replyTo) replyTo.value = "";
  });
  document.addEventListener("htmx:wsOpen", function () {
    document.body.dataset.socket = "open";
    const view = document.getElementById("branch-view");
    if (!lost || !view || !view.dataset.refresh) return;
    lost = false;
    htmx.ajax("GET", view.dataset.refresh, { target: "#branch-view", swap: "outerHTML" });
  });
})();

// Preset buttons set the sliders (greedy = temperature 0) and refresh the preview once.
document.addEventListener("click", function (event) {
  const button = event.target.closest && event.target.closest("button.preset");
  if (!button) return;
  // Each slider announces its move: debounced into one preview.
  applyPreset(button.closest("form"), JSON.parse(button.dataset.preset), true);
});

// Sliders show their value beside their label (<output id="out-NAME">).
document.addEventListener("input", function (event) {
  const slider = event.target;
  if (slider.type !== "range" || !slider.name) return;
  const output = document.getElementById("out-" + slider.name);
  if (output) output.textContent = slider.value;
});

// Projector mode: large type, high contrast, fewer words (the explanations fold away); the
// keyboard still steps. A button in the top bar or the key p; remembered in this browser.
(function () {
  const KEY = "tokenlens-projector";
  function show(on) {
    document.documentElement.classList.toggle("projector", on);
    document.querySelectorAll("[data-action=projector]").forEach(function (button) {
      button.setAttribute("aria-pressed", on ? "true" : "false");
    });
    try { localStorage.setItem(KEY, on ? "on" : "off"); } catch (error) { /* private mode */ }
  }
  function toggle() { show(!document.documentElement.classList.contains("projector")); }
  document.addEventListener("DOMContentLoaded", function () {
    show(document.documentElement.classList.contains("projector"));
  });
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-action=projector]")) toggle();
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "p" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input:not([type=range]):not([type=checkbox]), textarea, select")) return;
    event.preventDefault();
    toggle();
  });
})();

// The new-exploration form: the chat-template box follows the model (ticked where the model
// has a template, unavailable where it has none), and a preset moves the sliders it sets.
(function () {
  function follow(form) {
    const data = document.getElementById("chat-templates");
    const select = form.querySelector("select[name=model]");
    const box = form.querySelector("input[name=use_chat_template]");
    const note = form.querySelector("[data-role=chat-template-note]");
    if (!data || !select || !box) return;
    const has = JSON.parse(data.textContent)[select.value];
    box.disabled = has === false;
    if (has === false) box.checked = false;
    else if (has === true && form.dataset.chatFollowed !== select.value) box.checked = true;
    form.dataset.chatFollowed = select.value;
    if (note) note.textContent = has === false ? "(this model has none)" : "";
  }
  function setUp() {
    const form = document.getElementById("exploration-form");
    if (form) follow(form);
  }
  document.addEventListener("DOMContentLoaded", setUp);
  document.addEventListener("htmx:afterSettle", setUp);
  document.addEventListener("input", function (event) {
    const form = event.target.closest && event.target.closest("#exploration-form");
    const preset = form && form.querySelector("select[name=preset]");
    if (preset && event.target.type === "range") preset.value = "";  // custom again
  });
  document.addEventListener("change", function (event) {
    const form = event.target.closest && event.target.closest("#exploration-form");
    if (!form) return;
    if (event.target.name === "model") follow(form);
    if (event.target.name === "preset" && event.target.value) {
      const presets = JSON.parse(document.getElementById("preset-values").textContent);
      applyPreset(form, presets[event.target.value], false);  // quietly: it stays the preset
    }
  });
})();
