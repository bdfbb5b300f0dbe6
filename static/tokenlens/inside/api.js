// The REST API as the panels call it: JSON posts with the CSRF token, and the sequence every
// analysis is about (the prompt followed by the current branch's tokens).

import { context } from "./context.js";

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

export function completionIds() {
  return Array.from(document.querySelectorAll("#branch-view .generated [data-token-id]"))
    .map(function (node) { return parseInt(node.dataset.tokenId, 10); });
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
