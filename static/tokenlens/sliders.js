// The Next-token panel's sliders keep what was moved but not yet kept ("Use these settings")
// in this browser, per exploration, so a reload loses nothing; Reset goes back to the
// settings the next steps use.
(function () {
  function form() { return document.getElementById("sliders"); }
  function key(sliders) { return "tokenlens-sliders-" + sliders.dataset.exploration; }
  function sliders() { return Array.from(form().querySelectorAll("input[type=range][name]")); }

  function read(sliders) {
    try { return JSON.parse(localStorage.getItem(key(sliders)) || "null"); } catch (error) { return null; }
  }

  function write(values) {
    const f = form();
    try {
      if (values) localStorage.setItem(key(f), JSON.stringify(values));
      else localStorage.removeItem(key(f));
    } catch (error) { /* storage full or private mode: only a reload loses the moves */ }
  }

  function moved() {
    const values = {};
    sliders().forEach(function (slider) {
      if (Number(slider.value) !== Number(slider.dataset.kept)) values[slider.name] = slider.value;
    });
    return Object.keys(values).length ? values : null;
  }

  function set(slider, value) {
    slider.value = value;
    const output = document.getElementById("out-" + slider.name);
    if (output) output.textContent = slider.value;
  }

  function status(text) {
    const box = document.getElementById("params-status");
    if (!box) return;
    box.replaceChildren();
    if (!text) return;
    const note = document.createElement("p");
    note.className = "notice";
    note.setAttribute("role", "status");
    note.dataset.testid = "params-restored";
    note.textContent = text;
    box.appendChild(note);
  }

  document.addEventListener("DOMContentLoaded", function () {
    const f = form();
    if (!f || !f.dataset.exploration) return;
    const stored = read(f);
    if (!stored) return;
    let restored = 0;
    sliders().forEach(function (slider) {
      if (slider.name in stored && Number(stored[slider.name]) !== Number(slider.dataset.kept)) {
        set(slider, stored[slider.name]);
        restored += 1;
      }
    });
    if (!restored) { write(null); return; }
    htmx.trigger(f, "refresh");  // the preview follows the restored settings
    status("Restored " + restored + " slider setting" + (restored > 1 ? "s" : "") +
      " you had moved but not kept: the preview uses them; the next steps do not until you keep them.");
  });

  document.addEventListener("input", function (event) {
    const f = form();
    if (!f || !f.contains(event.target) || event.target.type !== "range") return;
    write(moved());
  });

  document.addEventListener("click", function (event) {
    if (!event.target.closest || !event.target.closest("[data-action=reset-params]")) return;
    sliders().forEach(function (slider) { set(slider, slider.dataset.kept); });
    write(null);
    status("");
    htmx.trigger(form(), "refresh");
  });

  // Kept: the kept values are the sliders' new starting point.
  document.addEventListener("htmx:afterSettle", function (event) {
    const kept = event.target.querySelector && event.target.querySelector("[data-testid=params-kept]");
    if (!kept) return;
    const params = JSON.parse(kept.dataset.kept);
    sliders().forEach(function (slider) {
      if (slider.name in params) slider.dataset.kept = params[slider.name];
    });
    write(moved());
  });
})();
