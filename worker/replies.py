"""Work whose asker does not wait: a page's step is queued by the web side (inspector.explorations
.services.push_step), and this sends how it went to the page's own websocket, so no request,
thread or database connection of the web tier waits for the model."""

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
}


def step_and_reply(params: dict) -> dict:
    """Step the branch (in the model's next batched pass) and save it, like the API's step;
    then push the new tokens to every open page of the exploration, give the branch back (the
    lease push_step took, params["operation"]) and answer params["reply_to"]. Whatever
    happens, the branch is given back and the page is answered."""
    branch_id = params["branch"]
    outcome = {"error": FAILED}
    try:
        outcome = compute("branch_step", params)
        if "result" in outcome:
            result = outcome["result"]
            budget.charge_actual("branch_step", result, params.get("charged_to", []))
            broadcast.branch_changed(params["exploration"], branch_id, result["first_index"])
    finally:
        release_branch(branch_id, params.get("operation", ""))
        broadcast.step_done(params["reply_to"], branch_id, params["asked"], outcome.get("error"))
    return outcome
