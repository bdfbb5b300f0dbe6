// The REST API as the panels call it: JSON posts with the CSRF token, and the sequence every
// analysis is about (the prompt followed by the current branch's tokens).

import { context } from "./context.js";

export function csrfToken() {
  const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
  return headers["X-CSRFToken"] || "";
}

export async function post(path, body) {
  const response = await fetch("/api/v1/" + path + "/", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
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
