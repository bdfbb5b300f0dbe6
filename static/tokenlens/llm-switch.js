// "Model off": everything the model says is hidden (token colours, surprisal and entropy,
// the next-token distribution, alternatives, the inside panels) and its stepping disabled,
// so a class writes the continuation itself first (with Force); on again, it all comes back
// and the distribution is read afresh. Key m; remembered in this browser.
(function () {
  const KEY = "tokenlens-llm-off";
  const MODEL_ACTIONS = "[data-action=step], [data-action=greedy], [data-action=generate], [data-action=choose], [data-action=fork]";

  function off() { return document.documentElement.classList.contains("llm-off"); }

  function disableModelActions() {
    document.querySelectorAll(MODEL_ACTIONS).forEach(function (button) {
      if (off()) {
        button.dataset.llmDisabled = "1";
        button.disabled = true;
      } else if (button.dataset.llmDisabled) {
        delete button.dataset.llmDisabled;
        button.disabled = false;
      }
    });
  }

  function show(on) {
    document.documentElement.classList.toggle("llm-off", !on);
    document.querySelectorAll("[data-action=llm-off]").forEach(function (button) {
      button.setAttribute("aria-pressed", on ? "false" : "true");
      button.textContent = on ? "Model off" : "Model on";
    });
    try { localStorage.setItem(KEY, on ? "on" : "off"); } catch (error) { /* private mode */ }
    disableModelActions();
    const next = document.getElementById("next-distribution");
    if (!on && next) next.replaceChildren();
    const sliders = document.getElementById("sliders");
    if (on && sliders && window.htmx) htmx.trigger(sliders, "refresh");
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!document.querySelector("[data-action=llm-off]")) return;
    let stored = "on";
    try { stored = localStorage.getItem(KEY) || "on"; } catch (error) { /* private mode */ }
    if (stored === "off") show(false);
  });
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-action=llm-off]")) show(off());
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "m" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (!document.querySelector("[data-action=llm-off]")) return;
    if (event.target.closest && event.target.closest("input:not([type=range]):not([type=checkbox]), textarea, select")) return;
    event.preventDefault();
    show(off());
  });
  // While off, the preview asks the model nothing, and new controls arrive disabled.
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (off() && event.target.id === "sliders" && event.detail.requestConfig.verb === "get") event.preventDefault();
  });
  ["htmx:afterSettle", "htmx:oobAfterSwap", "htmx:wsAfterMessage"].forEach(function (name) {
    document.addEventListener(name, function () {
      if (!off()) return;
      disableModelActions();
      const next = document.getElementById("next-distribution");
      if (next && next.children.length) next.replaceChildren();
    });
  });
})();
