// A panel's status line: busy, an error, a job's progress; jobs that a newer request supersedes.

import { post } from "./api.js";
import { make } from "./dom.js";

// A long computation as a job: started, then polled; its stage ("… 12 of 32 steps") drives
// a progress bar in the panel's status line.
// A newer job on the same panel (another method, more steps) supersedes an older one: the
// older one's result must not land on top of the newer one when it happens to finish later,
// and the older one is cancelled, so the worker turns to the newer one (and the class's
// steps) at its next step instead of finishing work nobody will read.
export const SUPERSEDED = new Error("superseded by a newer request");
let jobTickets = 0;

function cancelJob(jobId) {
  return post("jobs/" + jobId + "/cancel", {}).catch(function () { /* finished meanwhile */ });
}

export async function runJob(panel, kind, params) {
  const ticket = String(++jobTickets);
  panel.dataset.jobTicket = ticket;
  const current = function () { return panel.dataset.jobTicket === ticket; };
  let job = await post("jobs", { kind: kind, params: params });
  while (job.status === "pending" || job.status === "running") {
    if (!current()) {
      cancelJob(job.id);
      throw SUPERSEDED;
    }
    showProgress(panel, job.stage || (job.status === "pending" ? "Waiting for a worker…" : "Working…"), job.id);
    await new Promise(function (resolve) { setTimeout(resolve, 400); });
    const response = await fetch("/api/v1/jobs/" + job.id + "/", { credentials: "same-origin" });
    job = await response.json();
    if (!response.ok) throw new Error(job.error ? job.error.message : "The job vanished");
  }
  if (!current()) throw SUPERSEDED;
  if (job.status === "failed") throw new Error(job.error.message);
  if (job.status === "cancelled") throw new Error(CANCELLED);
  return job.result;
}

const CANCELLED = "Cancelled: the worker went straight back to everyone else's work.";

// The progress line of a running job, with a button that cancels it (its worker stops at the
// next step and takes other work).
export function showProgress(panel, stage, jobId) {
  const box = panel.querySelector("[data-role=status]");
  const counted = /(\d+) of (\d+)/.exec(stage);
  box.replaceChildren(make("span", { class: "spinner", "aria-hidden": "true" }));
  if (counted) box.appendChild(make("progress", { value: counted[1], max: counted[2], "data-testid": "progress" }));
  box.appendChild(make("span", { class: "muted", role: "status" }, stage));
  if (!jobId) return;
  const cancel = make("button", { type: "button", class: "small", "data-action": "cancel-job" }, "Cancel");
  cancel.addEventListener("click", function () {
    cancel.disabled = true;
    cancelJob(jobId); // finished meanwhile: its result shows
  });
  box.appendChild(cancel);
}

export function setStatus(panel, message, kind) {
  const box = panel.querySelector("[data-role=status]");
  box.replaceChildren();
  if (!message) return;
  if (kind === "busy") box.appendChild(make("span", { class: "spinner", "aria-hidden": "true" }));
  box.appendChild(make("span", { class: kind === "error" ? "error" : "muted", role: kind === "error" ? "alert" : "status" }, message));
}

export async function guarded(panel, message, work) {
  setStatus(panel, message, "busy");
  try {
    await work();
    setStatus(panel, "");
  } catch (error) {
    if (error !== SUPERSEDED) setStatus(panel, error.message, "error");
  }
}
