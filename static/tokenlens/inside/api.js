// The REST API as the panels call it: JSON posts with the CSRF token, and the sequence every
// analysis is about (the prompt followed by the current branch's tokens).

import { context, root } from "./context.js";

export function csrfToken() {
  const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
  return headers["X-CSRFToken"] || "";
}

// A page in a live session (following it, or presenting it) names the session, so analyses of
// the text the whole class reads are computed once for the class (inspector/live/following.py,
// class_scope); the server checks the page may follow it and that the text is the class's.
function liveHeaders() {
  const live = document.querySelector("[data-live-session], [data-live]");
  if (!live) return {};
  return { "X-TokenLens-Live": live.dataset.liveSession || live.dataset.live };
}

export async function post(path, body) {
  const response = await fetch("/api/v1/" + path + "/", {
    method: "POST",
    credentials: "same-origin",
    headers: Object.assign({ "Content-Type": "application/json", "X-CSRFToken": csrfToken() }, liveHeaders()),
    body: JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (error) { data = null; }
  if (!response.ok) {
    const message = data && data.error ? data.error.message : "The server answered " + response.status;
    throw new Error(message);
  }
  return data;
}

// The model's layer and head counts: from the page, else from the catalog.
export async function modelFacts() {
  if (context.facts.n_layers) return context.facts;
  const catalog = await fetch("/api/v1/models/", { credentials: "same-origin" }).then(function (r) { return r.json(); });
  const entry = catalog.models.find(function (model) { return model.key === context.model; }) || {};
  context.facts = { n_layers: entry.n_layers || 1, n_heads: entry.n_heads, n_kv_heads: entry.n_kv_heads };
  return context.facts;
}

// The branch's tokens the panels read: all of them, or up to the end of the conversation's
// message chosen with "Look inside" (turns.js keeps that index on the panels' container).
export function completionIds() {
  const ids = Array.from(document.querySelectorAll("#branch-view .generated [data-token-id]"))
    .map(function (node) { return parseInt(node.dataset.tokenId, 10); });
  const upTo = root ? root.dataset.readUpTo : undefined;
  return upTo === undefined ? ids : ids.slice(0, parseInt(upTo, 10) + 1);
}

export function sequence() {
  return {
    model: context.model,
    text: context.prompt,
    system_prompt: context.system_prompt || null,
    use_chat_template: context.use_chat_template,
    completion_ids: completionIds(),
  };
}
