// A follower's page applies the live state the server pushes (#live-state): another branch or
// lesson item reloads the page (it renders the state as it is now); the presenter's panel opens
// with their choices; the token they selected is selected here too. Tokens and the next-token
// table arrive already drawn.
(function () {
  if (!document.querySelector(".live-follow")) return;
  let applied = null;

  function current() {
    const node = document.getElementById("live-state");
    return node && node.dataset.state ? JSON.parse(node.dataset.state) : null;
  }

  function same(a, b) {
    return JSON.stringify(a) === JSON.stringify(b);
  }

  function openPanel(panel) {
    if (!panel || !panel.name || !window.tokenlensInside) return;
    window.tokenlensInside.open(panel.name);
    const node = document.getElementById("panel-" + panel.name);
    Object.entries(panel.choices || {}).forEach(function ([name, value]) {
      const field = node && node.querySelector("[name='" + CSS.escape(name) + "']");
      if (!field) return;
      if (field.type === "checkbox") field.checked = !!value;
      else field.value = value;
      field.dispatchEvent(new Event("change", { bubbles: true }));
    });
  }

  function select(selection) {
    document.querySelectorAll(".live-selected").forEach(function (node) { node.classList.remove("live-selected"); });
    if (!selection || !selection.length) return;
    const token = document.querySelector("#branch-view button.gen[data-index='" + selection[0] + "']");
    if (!token) return;
    token.classList.add("live-selected");
    token.click();
  }

  function pace(now, sameText) {
    const mark = document.querySelector("[data-testid=pace]");
    if (!mark) return;
    mark.textContent = "";
    if (!now) return;
    mark.append("At your own pace: " + now.presenter + " is at token #" + now.length +
      (sameText ? " of this text. " : " of another text. "));
    if (!sameText) {
      const go = document.createElement("button");
      go.type = "button";
      go.textContent = "Go to the presenter's text";
      go.dataset.action = "go-to-presenter";
      go.addEventListener("click", function () { window.location.reload(); });
      mark.append(go);
    }
  }

  function apply() {
    const now = current();
    if (!now || same(now, applied)) return;
    const before = applied;
    applied = now;
    const view = document.getElementById("branch-view");
    const shown = view ? view.dataset.branch : null;
    if (now.pacing === "student") {  // free: only where the presenter is, marked
      pace(now, (now.branch || null) === shown);
      return;
    }
    pace(null);
    if ((now.branch || null) !== shown) {
      window.location.reload();
      return;
    }
    if (!before || !same(before.panel, now.panel)) openPanel(now.panel);
    if (!before || !same(before.selection, now.selection)) select(now.selection);
  }

  ["htmx:oobAfterSwap", "htmx:wsAfterMessage"].forEach(function (name) {
    document.addEventListener(name, apply);
  });
  // After htmx has wired the page (on DOMContentLoaded), so a selected token's click loads it.
  if (document.readyState === "complete") apply();
  else window.addEventListener("load", apply);
})();
