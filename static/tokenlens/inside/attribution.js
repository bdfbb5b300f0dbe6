// The Attribution panel: which earlier tokens drove a prediction, by method, with a job's
// progress for the slow ones.

import { context, root } from "./context.js";
import { completionIds, post, sequence } from "./api.js";
import { label, make, onTokenPick, plotLabel, visibleText } from "./dom.js";
import { guarded, runJob } from "./status.js";
import { chart } from "./chart.js";
import { open, panels } from "./tabs.js";

export function createAttributionPanel() {
  const panel = document.getElementById("panel-attribution");
  const controls = panel.querySelector("[data-role=attribution-controls]");
  let tokens = [];
  let target = null; // {position, id}: explain `id` as the prediction made after `position`
  let hoverTimer = null;
  let hoverAnchor = null; // the generated token being explained on hover, if any

  let tokensFor = null;
  async function sequenceTokens() {
    const key = JSON.stringify(sequence());
    if (key !== tokensFor) {
      tokens = (await post("tokenize", sequence())).tokens;
      tokensFor = key;
    }
    return tokens;
  }

  // The text's tokens, each shaded by its score (blue raises the target, red lowers it).
  // upto: how many tokens to show (the card stops at the explained token); pickable: the
  // panel's strip, where a click explains that token.
  function shadedTokens(result, container, upto, pickable) {
    container.replaceChildren();
    const scores = result ? result.scores : [];
    const top = Math.max.apply(null, scores.map(Math.abs).concat([1e-12]));
    tokens.slice(0, upto).forEach(function (token, index) {
      const explained = target && index === target.position + 1;
      const node = make("span", {
        class: "tok" + (explained ? " selected" : ""), "data-q": index, role: pickable && "button", tabindex: pickable && "0",
        title: "#" + index + (index < scores.length ? " · score " + scores[index].toPrecision(3) : "") + (pickable && index > 0 ? " · click to explain this token" : ""),
      });
      if (index < scores.length) {
        const share = scores[index] / top;
        node.style.background = share >= 0 ? "rgba(52, 81, 209, " + share.toFixed(3) + ")" : "rgba(209, 73, 91, " + (-share).toFixed(3) + ")";
        if (Math.abs(share) > 0.55) node.style.color = "#fff";
      } else if (index > (target ? target.position : tokens.length)) {
        node.classList.add("later");
      }
      node.appendChild(token.special ? document.createTextNode(token.text) : visibleText(token.text, true));
      container.appendChild(node);
    });
  }

  function drawStrip(result) {
    shadedTokens(result, panel.querySelector("[data-role=strip]"), tokens.length, true);
  }

  // Hover explanations also show beside the hovered token, in a card over the generation view.
  const card = make("div", { class: "attribution-card", role: "status", "data-testid": "attribution-card", hidden: "" });
  document.body.appendChild(card);

  function showCard(result, anchor) {
    if (!anchor.isConnected) return;
    card.replaceChildren(make("p", { class: "muted" }, "Which earlier tokens drove "));
    card.firstChild.appendChild(make("span", { class: "tok" })).appendChild(visibleText(label(result.target), true));
    card.firstChild.appendChild(document.createTextNode(" (by " + result.method.replace(/_/g, " ") + "; blue raised it, red lowered it):"));
    shadedTokens(result, card.appendChild(make("div", { class: "tokens heat" })), result.position + 2, false);
    const box = anchor.getBoundingClientRect();
    card.style.left = Math.max(8, window.scrollX + Math.min(box.left, window.innerWidth - 520)) + "px";
    card.style.top = window.scrollY + box.bottom + 6 + "px";
    card.hidden = false;
  }

  function hideCard() {
    card.hidden = true;
    hoverAnchor = null;
  }

  function describe(result) {
    const facts = panel.querySelector("[data-role=attribution-facts]");
    facts.replaceChildren(document.createTextNode("Why "));
    facts.appendChild(make("span", { class: "tok" })).appendChild(visibleText(label(result.target), true));
    facts.appendChild(document.createTextNode(" (p = " + result.target.probability.toFixed(4) + ") after token #" + result.position + ", by " + result.method.replace(/_/g, " ") + ": " + result.explanation));
    const path = result.integrated_gradients;
    if (path) {
      const change = Math.abs(path.f_difference);
      const share = change > 0 ? Math.abs(path.convergence_delta) / change : 0;
      const baseline = path.baseline.text.trim() ? path.baseline.text : "blank (a space)";
      const how = path.adaptive
        ? path.n_steps + " steps in " + path.segments + " segments, refined until the delta was at most 5 % of the change"
        : path.n_steps + " steps";
      facts.appendChild(make("span", { class: "muted" }, " Scores add up to " + path.f_difference.toFixed(3) + " = f(text) − f(" + baseline + " baseline), give or take the convergence delta "));
      facts.appendChild(make("strong", { "data-testid": "ig-delta" }, path.convergence_delta.toFixed(3) + " (" + (100 * share).toFixed(1) + " % of the change)"));
      facts.appendChild(make("span", { class: "muted" }, "; " + how + ". The first token and special tokens are kept in the baseline, so they score 0."));
      if (path.converged === false) {
        facts.appendChild(make("span", { class: "warning", role: "note", "data-testid": "ig-warning" }, " The path integral did not converge within " + path.n_steps + " steps (the delta is " + (100 * share).toFixed(0) + " % of the change, and one segment of the path still misses by " + (100 * path.largest_segment_delta / Math.max(change, 1e-12)).toFixed(0) + " %): read these scores as rough."));
      } else if (!path.adaptive && share > 0.05) {
        facts.appendChild(make("span", { class: "warning", role: "note", "data-testid": "ig-warning" }, " The path integral has not converged (the delta is over 5 % of the change): read these scores as rough, or set Steps to “until it converges”."));
      }
    }
    if (result.bfloat16) {
      facts.appendChild(make("span", { class: "muted", "data-testid": "bfloat16-facts" }, " Computed in bfloat16: its scores correlate with float32's at r = " + result.bfloat16.correlation.toFixed(4) + " on a calibration text, and its matrix multiply runs " + result.bfloat16.speedup.toFixed(1) + "× as fast here."));
    }
    if (result.device !== "cpu" && result.device) facts.appendChild(make("span", { class: "muted" }, " Computed on " + result.device + "."));
  }

  async function explain() {
    if (!target) return;
    const method = panel.querySelector("[data-role=method]").value;
    const params = Object.assign(sequence(), { target_id: target.id, method: method, position: target.position, n_steps: Number(panel.querySelector("[data-role=n-steps]").value) || null, precision: panel.querySelector("[data-role=precision]").value });
    await guarded(panel, "Attributing…", async function () {
      const anchor = hoverAnchor;
      const result = await runJob(panel, "attribution", params);
      describe(result);
      drawStrip(result);
      if (anchor && anchor === hoverAnchor) showCard(result, anchor);
      await chart(panel.querySelector("[data-role=scores-box]"), "attribution-" + method + "-position" + result.position, [{
        type: "bar", x: result.tokens.map(function (token, index) { return index + " " + plotLabel(token); }), y: result.scores,
        marker: { color: result.scores.map(function (score) { return score >= 0 ? "#3451d1" : "#d1495b"; }) },
        hovertemplate: "%{x}<br>%{y:.4g}<extra></extra>",
      }], {
        title: { text: result.method.replace(/_/g, " ") + " → " + plotLabel(result.target) }, height: 320,
        xaxis: { type: "category", tickangle: -60, automargin: true }, yaxis: { title: { text: result.signed ? "contribution to log p" : "score" } },
      }, function () {
        return result.scores.map(function (score, index) { return { method: result.method, target_id: result.target.id, target: result.target.text, position: index, token_id: result.tokens[index].id, token: result.tokens[index].text, score: score }; });
      });
    });
  }

  async function load() {
    await guarded(panel, "Reading the text…", sequenceTokens);
    if (!target || target.position + 1 >= tokens.length) target = tokens.length > 1 ? { position: tokens.length - 2, id: tokens[tokens.length - 1].id } : null;
    drawStrip(null);
    await explain();
  }

  async function candidate(text) {
    const value = text.trim();
    let id = /^#\d+$/.test(value) ? Number(value.slice(1)) : null;
    if (id === null) {
      const lookup = await post("vocabulary", { model: context.model, word: text });
      const form = lookup.forms.find(function (entry) { return entry.text === text; }) || lookup.forms[0];
      id = form.ids[0];
    }
    target = { position: tokens.length - 1, id: id };
    await explain();
  }

  onTokenPick(panel.querySelector("[data-role=strip]"), function (index) {
    if (index === 0) return; // nothing comes before the first token to explain it
    target = { position: index - 1, id: tokens[index].id };
    explain();
  });
  controls.addEventListener("change", function (event) {
    if (event.target.dataset.role !== "hover") explain();
  });
  panel.querySelector("[data-role=candidate]").addEventListener("submit", function (event) {
    event.preventDefault();
    const text = event.target.elements.candidate.value;
    if (!text.trim()) return;
    guarded(panel, "Looking the token up…", function () { return candidate(text); });
  });

  // Hovering a generated token in the branch view explains it (when the box is ticked).
  document.addEventListener("mouseover", function (event) {
    const token = event.target.closest && event.target.closest("#branch-view .generated [data-token-id]");
    if (!token || !panel.querySelector("[data-role=hover]").checked || token === hoverAnchor) return;
    clearTimeout(hoverTimer);
    hoverTimer = setTimeout(function () {
      hoverAnchor = token;
      fromStep(Number(token.dataset.index), false);
    }, 350);
  });
  document.addEventListener("mouseout", function (event) {
    const from = event.target.closest && event.target.closest("#branch-view .generated [data-token-id]");
    const to = event.relatedTarget && event.relatedTarget.closest && event.relatedTarget.closest("#branch-view .generated [data-token-id]");
    if (from && !to) {
      clearTimeout(hoverTimer);
      hideCard();
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") hideCard();
  });

  // Explain generated token `index` of the branch (from its alternatives or a hover).
  async function fromStep(index, reveal) {
    if (reveal) {
      panels.attribution.loadedFor = JSON.stringify(sequence());
      open("attribution");
      root.scrollIntoView({ behavior: "smooth" });
    }
    await sequenceTokens();
    const position = tokens.length - completionIds().length + index - 1;
    target = { position: position, id: tokens[position + 1].id };
    await explain();
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("[data-attribution-step]");
    if (button) fromStep(Number(button.dataset.attributionStep), true);
  });

  return { load: load, fromStep: fromStep };
}
