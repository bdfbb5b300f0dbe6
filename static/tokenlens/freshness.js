// The exploration page's panels describe the branch as it is now. Whenever the branch's tokens
// change on the page (a step, an undo, a pushed or streamed token, a generation's end), every
// panel that shows what the model said about those tokens is checked against them:
// - Next token: re-read when the tokens it was computed after are not the ones shown;
// - Alternatives: cleared when the token it explains is gone or replaced;
// - Branches: re-read when the branch ended or went on again.
(function () {
  function shownIds() {
    return Array.from(document.querySelectorAll("#branch-view .generated [data-token-id]"))
      .map(function (token) { return token.dataset.tokenId; }).join(",");
  }

  function generating() {
    return !!document.querySelector("#branch-view [data-testid=generating]");
  }

  let askedFor = null;  // what the Next-token panel was last asked about

  function freshenNext(ids) {
    const sliders = document.getElementById("sliders");
    const panel = document.getElementById("next-distribution");
    if (!sliders || !panel) return;
    const wanted = generating() ? "generating" : ids;
    const shown = panel.querySelector("[data-for]");
    if (shown && shown.dataset.for === wanted) {
      askedFor = wanted;
      return;
    }
    if (wanted === askedFor) return;  // asked already; its answer is on the way
    askedFor = wanted;
    htmx.trigger(sliders, "refresh");
  }

  let alternativesIntro = null;

  function freshenAlternatives() {
    const panel = document.getElementById("alternatives");
    if (!panel) return;
    const heading = panel.querySelector("h2[data-step]");
    if (!heading) {
      alternativesIntro = panel.innerHTML;
      return;
    }
    const token = document.querySelector(
      '#branch-view .generated [data-index="' + heading.dataset.step + '"]');
    if (token && token.dataset.tokenId === heading.dataset.tokenId) return;
    if (alternativesIntro === null) return;
    panel.innerHTML = alternativesIntro;
    const note = document.createElement("p");
    note.className = "notice";
    note.setAttribute("role", "status");
    note.textContent = "Token #" + heading.dataset.step + " is no longer in this branch.";
    panel.appendChild(note);
  }

  function freshenTree() {
    const tree = document.getElementById("tree");
    const current = tree && tree.querySelector("li.current");
    const actions = document.getElementById("branch-actions");
    if (!current || !actions || !tree.dataset.refresh) return;
    if (current.dataset.finish === actions.dataset.finish) return;
    current.dataset.finish = actions.dataset.finish;  // ask once per change
    htmx.ajax("GET", tree.dataset.refresh, { target: "#tree", swap: "outerHTML" });
  }

  let scheduled = false;

  function freshen() {
    scheduled = false;
    freshenNext(shownIds());
    freshenAlternatives();
    freshenTree();
  }

  function soon() {
    if (scheduled || !document.getElementById("branch-view")) return;
    scheduled = true;
    setTimeout(freshen, 30);  // once for a burst of swaps
  }

  ["htmx:afterSettle", "htmx:oobAfterSwap", "htmx:wsAfterMessage"].forEach(function (name) {
    document.addEventListener(name, soon);
  });
  document.addEventListener("DOMContentLoaded", function () {
    askedFor = generating() ? "generating" : shownIds();  // the panel's own "load" asks
    const panel = document.getElementById("alternatives");
    if (panel) alternativesIntro = panel.innerHTML;
  });
})();
