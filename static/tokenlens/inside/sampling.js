// The Sampling panel: the next token's sampling pipeline taken apart under the sliders'
// settings: each candidate through every stage, temperature, top-p and top-k swept, and the
// common sampling rules side by side with seeded draws.

import { context } from "./context.js";
import { post, sequence } from "./api.js";
import { label, make, plotLabel, plotText } from "./dom.js";
import { guarded } from "./status.js";
import { chart } from "./chart.js";

const COLOURS = ["#3451d1", "#d1495b", "#00798c", "#edae49", "#66a182", "#8d5a97", "#30638e", "#ff7f50", "#6b4226", "#2a9d8f", "#9c6644", "#e76f51", "#264653", "#b5838d"];
const STAGE_NAMES = {
  raw: "raw", repetition_penalty: "repetition", presence_frequency: "presence / frequency",
  constraint: "constraint", temperature: "temperature", top_k: "top-k", top_p: "top-p", min_p: "min-p",
};
const RULE_NAMES = {
  greedy: "greedy", temperature: "temperature only", top_k: "top-k", top_p: "top-p (nucleus)",
  min_p: "min-p", current: "these settings",
};

// The settings the Next-token panel's sliders hold now (the exploration's, where untouched).
export function sliderParams() {
  const params = Object.assign({}, context.params || {});
  document.querySelectorAll("#sliders input[type=range][name]").forEach(function (slider) {
    params[slider.name] = Number(slider.value);
  });
  params.greedy = params.temperature === 0;
  return params;
}

function ruleSettings(rule) {
  const p = rule.params;
  if (rule.name === "greedy") return "the top token";
  const parts = ["T " + p.temperature];
  if (p.top_k) parts.push("k " + p.top_k);
  if (p.top_p < 1) parts.push("p " + p.top_p);
  if (p.min_p) parts.push("min-p " + p.min_p);
  return parts.join(", ");
}

export function createSamplingPanel() {
  const panel = document.getElementById("panel-sampling");
  let anatomy = null;

  function stageRows() {
    const records = [];
    anatomy.traces.forEach(function (trace) {
      anatomy.stages.forEach(function (stage, index) {
        records.push({ token_id: trace.token.id, token: trace.token.text, logit: trace.logit, stage: stage, probability: trace.probabilities[index], removed_by: trace.removed_by });
      });
    });
    return records;
  }

  async function drawStages() {
    const x = anatomy.stages.map(function (stage) { return STAGE_NAMES[stage] || stage; });
    const traces = anatomy.traces.map(function (trace, index) {
      const removedAt = trace.removed_by ? anatomy.stages.indexOf(trace.removed_by) : -1;
      return {
        type: "scatter", mode: "lines+markers", name: plotLabel(trace.token), x: x, y: trace.probabilities,
        line: { color: COLOURS[index % COLOURS.length], dash: removedAt >= 0 ? "dot" : "solid" },
        marker: {
          size: trace.probabilities.map(function (_p, i) { return i === removedAt ? 13 : 6; }),
          symbol: trace.probabilities.map(function (_p, i) { return i === removedAt ? "x" : "circle"; }),
        },
        hovertemplate: plotLabel(trace.token) + " after %{x}: %{y:.4f}" + (removedAt >= 0 ? "<br>removed by " + plotText(STAGE_NAMES[trace.removed_by]) : "") + "<extra></extra>",
      };
    });
    await chart(panel.querySelector("[data-role=stages-box]"), "sampling-stages", traces, {
      height: 420, title: { text: "Each candidate's probability after every stage (× where a stage removes it)" },
      yaxis: { title: { text: "probability" }, rangemode: "tozero" }, xaxis: { type: "category" },
      legend: { orientation: "v" }, margin: { l: 60, r: 20, t: 50, b: 60 },
    }, stageRows);
  }

  function drawStageTable() {
    const box = panel.querySelector("[data-role=stage-table]");
    box.replaceChildren();
    const table = make("table", { class: "alternatives", "data-testid": "sampling-stages" });
    const head = make("tr");
    ["token", "logit"].concat(anatomy.stages.map(function (stage) { return STAGE_NAMES[stage] || stage; })).forEach(function (title) { head.appendChild(make("th", {}, title)); });
    table.appendChild(make("thead")).appendChild(head);
    const body = table.appendChild(make("tbody"));
    anatomy.traces.forEach(function (trace) {
      const row = make("tr", { class: trace.removed_by ? "removed" : "", "data-token-id": trace.token.id });
      row.appendChild(make("td", { class: "mono" }, label(trace.token)));
      row.appendChild(make("td", {}, trace.logit.toFixed(2)));
      trace.probabilities.forEach(function (p, index) {
        const removedHere = trace.removed_by && anatomy.stages[index] === trace.removed_by;
        row.appendChild(make("td", { class: removedHere ? "removed-here" : "" }, removedHere ? "removed" : (100 * p).toFixed(1) + " %"));
      });
      body.appendChild(row);
    });
    box.appendChild(table);
  }

  async function drawTemperature() {
    const t = anatomy.temperature;
    const traces = t.curves.map(function (curve, index) {
      return {
        type: "scatter", mode: "lines", name: plotLabel(curve.token), x: t.values, y: curve.p_final,
        line: { color: COLOURS[index % COLOURS.length] },
        hovertemplate: plotLabel(curve.token) + " at T %{x}: %{y:.4f}<extra></extra>",
      };
    });
    await chart(panel.querySelector("[data-role=temperature-box]"), "sampling-temperature", traces, {
      height: 360, title: { text: "The model's top tokens as temperature sweeps (other settings held)" },
      xaxis: { title: { text: "temperature" } }, yaxis: { title: { text: "p_final" }, rangemode: "tozero" },
      shapes: [currentMark(t.current)], annotations: [currentNote(t.current)],
    }, function () {
      const records = [];
      t.curves.forEach(function (curve) { t.values.forEach(function (value, i) { records.push({ token_id: curve.token.id, token: curve.token.text, temperature: value, p_final: curve.p_final[i] }); }); });
      return records;
    });
  }

  function currentMark(value) {
    return { type: "line", xref: "x", yref: "paper", x0: value, x1: value, y0: 0, y1: 1, line: { color: "#1d2230", dash: "dash", width: 1 } };
  }

  function currentNote(value) {
    return { xref: "x", yref: "paper", x: value, y: 1, yanchor: "bottom", text: "now " + value, showarrow: false, font: { size: 10 } };
  }

  async function drawSweep(name, title) {
    const sweep = anatomy.sweeps.find(function (entry) { return entry.name === name; });
    const x = sweep.values.map(function (value) { return name === "top_k" && value === 0 ? "off" : String(value); });
    const current = name === "top_k" && sweep.current === 0 ? "off" : String(sweep.current);
    await chart(panel.querySelector("[data-role=" + name + "-box]"), "sampling-" + name.replace("_", "-"), [
      { type: "bar", name: "tokens kept", x: x, y: sweep.n_kept, marker: { color: x.map(function (v) { return v === current ? "#d1495b" : "#9fb0ff"; }) }, hovertemplate: "%{x}: %{y} tokens kept<extra></extra>" },
      { type: "scatter", mode: "lines+markers", name: "kept mass (p_base)", x: x, y: sweep.kept_mass, yaxis: "y2", line: { color: "#1d2230" }, hovertemplate: "%{x}: %{y:.1%} of the model's probability<extra></extra>" },
    ], {
      height: 320, title: { text: title }, xaxis: { type: "category", title: { text: name.replace("_", "-") + " (red: now)" } },
      yaxis: { title: { text: "tokens kept" }, type: "log" },
      yaxis2: { title: { text: "kept mass" }, overlaying: "y", side: "right", range: [0, 1.05], tickformat: ".0%" },
      legend: { orientation: "h", y: -0.3 }, margin: { l: 60, r: 60, t: 40, b: 80 },
    }, function () {
      return sweep.values.map(function (value, i) { return { setting: name, value: value, n_kept: sweep.n_kept[i], kept_mass: sweep.kept_mass[i], entropy_bits: sweep.entropy[i] }; });
    });
  }

  async function drawRules() {
    const box = panel.querySelector("[data-role=rules]");
    box.replaceChildren();
    const table = make("table", { class: "rules", "data-testid": "sampling-rules" });
    const head = make("tr");
    ["rule", "settings", "kept", "entropy", anatomy.n_draws + " seeded draws"].forEach(function (title) { head.appendChild(make("th", {}, title)); });
    table.appendChild(make("thead")).appendChild(head);
    const body = table.appendChild(make("tbody"));
    anatomy.rules.forEach(function (rule) {
      const row = make("tr", { "data-rule": rule.name });
      row.appendChild(make("td", {}, RULE_NAMES[rule.name] || rule.name));
      row.appendChild(make("td", { class: "muted" }, ruleSettings(rule)));
      row.appendChild(make("td", {}, rule.n_kept.toLocaleString() + " (" + (100 * rule.kept_mass).toFixed(1) + " %)"));
      row.appendChild(make("td", {}, rule.entropy.toFixed(2) + " bits"));
      const draws = row.appendChild(make("td"));
      rule.draws.forEach(function (draw) {
        const chip = draws.appendChild(make("span", { class: "tok", title: draw.count + " of " + anatomy.n_draws }));
        chip.appendChild(document.createTextNode(label(draw.token) + " ×" + draw.count));
      });
      body.appendChild(row);
    });
    box.appendChild(table);
    const names = anatomy.rules.map(function (rule) { return RULE_NAMES[rule.name] || rule.name; });
    await chart(panel.querySelector("[data-role=rules-box]"), "sampling-rules", [
      { type: "bar", name: "entropy (bits)", x: names, y: anatomy.rules.map(function (rule) { return rule.entropy; }), marker: { color: "#3451d1" } },
      { type: "bar", name: "different tokens drawn", x: names, y: anatomy.rules.map(function (rule) { return rule.draws.length; }), marker: { color: "#edae49" } },
    ], {
      height: 320, barmode: "group", title: { text: "The same prefix under each rule" }, xaxis: { type: "category" },
      legend: { orientation: "h", y: -0.25 },
    }, function () {
      const records = [];
      anatomy.rules.forEach(function (rule) {
        rule.draws.forEach(function (draw) { records.push({ rule: rule.name, settings: ruleSettings(rule), n_kept: rule.n_kept, kept_mass: rule.kept_mass, entropy_bits: rule.entropy, token_id: draw.token.id, token: draw.token.text, draws: draw.count }); });
      });
      return records;
    });
  }

  async function load() {
    const draws = Number(panel.querySelector("[data-role=draws]").value);
    await guarded(panel, "Taking the sampling apart…", async function () {
      const seq = sequence();
      anatomy = await post("sampling", {
        model: seq.model, prompt: seq.text, system_prompt: seq.system_prompt,
        use_chat_template: seq.use_chat_template, completion_ids: seq.completion_ids,
        constraint: context.constraint || null, params: sliderParams(), draws: draws,
      });
      panel.querySelector("[data-role=settings]").textContent = "Settings: " + ruleSettings({ name: "current", params: anatomy.params }) +
        (anatomy.params.repetition_penalty !== 1 ? ", repetition " + anatomy.params.repetition_penalty : "") +
        "; seed " + anatomy.params.seed + ". Move a slider above to take these apart again.";
      await drawStages();
      drawStageTable();
      await drawTemperature();
      await drawSweep("top_p", "Top-p swept: tokens kept, and their share of p_base");
      await drawSweep("top_k", "Top-k swept: tokens kept, and their share of p_base");
      await drawRules();
    });
  }

  panel.querySelector("[data-role=draws]").addEventListener("change", load);
  let timer = null;
  document.addEventListener("input", function (event) {
    if (panel.hidden || !event.target.closest("#sliders")) return;
    clearTimeout(timer);
    timer = setTimeout(load, 400);
  });
  return { load: load };
}
