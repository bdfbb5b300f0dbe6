"""Work whose asker does not wait: a page's or an API request's step is queued by the web side
(inspector.explorations.branches.push_step), and this sends how it went to the asker's own
channel (the page's websocket, or inspector.explorations.answered_later), so no request, thread or
database connection of the web tier waits for the model."""

from __future__ import annotations

import logging

from inspector import broadcast
from inspector.compute import budget
from inspector.explorations.branches import release_branch
from worker.computations import compute

logger = logging.getLogger(__name__)
FAILED = {
    "field": "non_field_errors",
    "message": "The worker failed while stepping; nothing was saved. Try again",
    "status": 500,
}


def step_and_reply(params: dict) -> dict:
    """Step the branch (in the model's next batched pass) and save it, like the API's step;
    then push the new tokens to every open page of the exploration, give the branch back (the
    lease push_step took, params["operation"]) and answer params["reply_to"]. Whatever
    happens, the branch is given back and the page is answered."""
    branch_id = params["branch"]
    outcome, saved = {"error": FAILED}, None
    try:
        outcome = compute("branch_step", params)
        if "result" in outcome:
            result = outcome["result"]
            # A copy: the outcome keeps what the step cost for the worker's log.
            budget.charge_actual("branch_step", dict(result), params.get("charged_to", []))
            broadcast.branch_changed(params["exploration"], branch_id, result["first_index"])
            saved = {"step_ids": result["step_ids"], "finish_reason": result["finish_reason"]}
    finally:
        release_branch(branch_id, params.get("operation", ""))
        error = outcome.get("error")
        broadcast.step_done(params["reply_to"], branch_id, params["asked"], error, saved)
    return outcome
