"""What a live session looks like now: the snapshot and the instructors' view of the class."""

from __future__ import annotations

from django.urls import reverse

from inspector.models import LiveSession

# The next-token panel's settings a presenter's preview shows the class.
SLIDER_LABELS = {
    "temperature": "temperature",
    "top_k": "top-k",
    "top_p": "top-p",
    "min_p": "min-p",
    "repetition_penalty": "repetition penalty",
    "presence_penalty": "presence penalty",
    "frequency_penalty": "frequency penalty",
    "top_n": "candidates shown",
}
SLIDER_NAMES = tuple(SLIDER_LABELS)


def slider_rows(values: dict) -> list[tuple[str, object]]:
    """(label, value) of each slider in `values`, in the panel's order."""
    return [(label, values[name]) for name, label in SLIDER_LABELS.items() if name in values]


def snapshot(session: LiveSession) -> dict:
    """The exact current state, in one read (GET /api/v1/live/{id}/)."""
    branch = session.branch
    return {
        "id": str(session.pk),
        "code": session.code,
        "join_url": reverse("live-join", args=[session.code]),
        "state": "running" if session.running else "ended",
        "lesson": str(session.lesson_id),
        "item": session.item_id,
        "exploration": str(session.exploration_id) if session.exploration_id else None,
        "branch": str(branch.pk) if branch else None,
        "length": branch.length if branch else 0,
        "panel": session.panel,
        "selection": session.selection,
        "preview": session.preview,
        "presenter": session.presenter.get_username(),
        "pacing": session.pacing,
        "followers": session.participants.filter(following=True).count(),
        "spotlight": session.spotlight_id,
        "version": session.version,
        "started_at": session.started_at.isoformat(),
        "ended_at": session.ended_at.isoformat() if session.ended_at else None,
    }


def class_view(session: LiveSession) -> list[dict]:
    """For the instructors: each participant, following or not, and for those who broke away
    their branch's length and the first token where it leaves the class's text."""
    class_ids = session.branch.token_ids() if session.branch else []
    rows = []
    for seat in session.participants.select_related("branch"):
        row = {"id": seat.pk, "name": seat.name, "following": seat.following}
        row |= {"length": None, "left_at": None, "exploration": None}
        if seat.branch is not None:
            own = seat.branch.token_ids()
            row["length"] = len(own)
            row["left_at"] = _first_difference(class_ids, own)
            row["exploration"] = seat.branch.exploration_id
        rows.append(row)
    return rows


def _first_difference(ours: list[int], theirs: list[int]) -> int | None:
    """The first index where two texts differ (None when one is the other's start)."""
    for index, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        if a != b:
            return index
    return None if len(ours) == len(theirs) else min(len(ours), len(theirs))
