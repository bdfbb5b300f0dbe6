// A short guided tour of the exploration page: each stop outlines one part of the page and
// says what it is for. It starts from a first visit's example (?tour=1) or the "Take the
// tour" button; Skip or Done is remembered in this browser, so it is not offered again.
(function () {
  const KEY = "tokenlens-tour";
  const STOPS = [
    ["#branch-view .generated", "The text", "Your prompt, then every token the model wrote, coloured by how sure it was: green it expected, red it did not. The bars below show surprise and how many tokens were in play."],
    ["#branch-actions", "Writing", "Step adds one token; Greedy step the likeliest one; Generate to the end writes on until it stops; Undo takes the last one back. Keys: s, g, z."],
    ["#next-panel", "The next token", "What the model would write next and how likely each candidate is. The sliders reshape it (temperature, top-k, top-p…); Choose appends a candidate yourself."],
    ["#alternatives", "Alternatives", "Click any token of the text to see what else the model considered at that moment, and branch off with another choice: the original stays."],
    ["#tree", "Branches", "Every branch you make is kept; switch between them or compare two."],
    ["#inside", "Inside the model", "How it got there: its tokens, embeddings, the sampling pipeline stage by stage, attention, what each layer predicts and which words drove a choice."],
    ["[data-action=projector]", "Teaching", "Projector mode (key p) shows the text and the distribution large; Model off (key m) hides the model while a class guesses first."],
  ];
  let index = 0;
  let box = null;

  function remember(value) {
    try { localStorage.setItem(KEY, value); } catch (error) { /* private mode */ }
  }

  function clearTarget() {
    document.querySelectorAll(".tour-target").forEach(function (node) { node.classList.remove("tour-target"); });
  }

  function end(how) {
    clearTarget();
    if (box) box.remove();
    box = null;
    remember(how);
  }

  function button(label, action) {
    const node = document.createElement("button");
    node.type = "button";
    node.textContent = label;
    node.dataset.tour = action;
    return node;
  }

  // The stop's part of the page, outlined (again after a swap replaced it, e.g. a new token).
  function mark() {
    const target = document.querySelector(STOPS[index][0]);
    if (target && !target.classList.contains("tour-target")) {
      clearTarget();
      target.classList.add("tour-target");
    }
    return target;
  }

  function show() {
    clearTarget();
    const [, title, text] = STOPS[index];
    const target = mark();
    if (target) target.scrollIntoView({ block: "center", behavior: "smooth" });
    box.replaceChildren();
    const heading = document.createElement("strong");
    heading.textContent = (index + 1) + " of " + STOPS.length + " · " + title;
    const body = document.createElement("p");
    body.textContent = text;
    const row = document.createElement("div");
    row.className = "row";
    if (index > 0) row.appendChild(button("Back", "back"));
    row.appendChild(button(index === STOPS.length - 1 ? "Done" : "Next", "next"));
    row.appendChild(button("Skip the tour", "skip"));
    box.append(heading, body, row);
    box.querySelector("[data-tour=next]").focus();
  }

  function start() {
    if (box) box.remove();
    index = 0;
    box = document.createElement("aside");
    box.className = "tour";
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-label", "Tour of the page");
    box.dataset.testid = "tour";
    document.body.appendChild(box);
    show();
  }

  document.addEventListener("click", function (event) {
    const target = event.target.closest && event.target.closest("[data-tour], [data-action=tour]");
    if (!target) return;
    if (target.dataset.action === "tour") return start();
    const action = target.dataset.tour;
    if (action === "skip") return end("skipped");
    if (action === "back") index = Math.max(0, index - 1);
    if (action === "next") {
      if (index === STOPS.length - 1) return end("done");
      index += 1;
    }
    show();
  });
  document.addEventListener("keydown", function (event) {
    if (box && event.key === "Escape") end("skipped");
  });
  ["htmx:afterSettle", "htmx:oobAfterSwap", "htmx:wsAfterMessage"].forEach(function (name) {
    document.addEventListener(name, function () { if (box) mark(); });
  });
  document.addEventListener("DOMContentLoaded", function () {
    let taken = null;
    try { taken = localStorage.getItem(KEY); } catch (error) { /* private mode */ }
    if (new URLSearchParams(location.search).get("tour") === "1" && !taken) start();
  });
})();
