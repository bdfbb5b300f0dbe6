"""Predict the next token: the presenter asks, followers pick a candidate or type one, and when
the presenter's next token is saved the answers are shown beside what the model thought.

Answers are the instructors' to see: followers only see their own answer and the model's token.
"""

from __future__ import annotations

import random

from django.db import transaction
from django.dispatch import receiver
from django.template.loader import render_to_string
from django.utils import timezone

from inspector import broadcast
from inspector.errors import ServiceError
from inspector.explorations.services import next_distribution
from inspector.live import relay
from inspector.live import services as live
from inspector.models import LivePoll, LivePollAnswer, LiveSession, Step

CHOICES = 6
MAX_ANSWER = 100
PAGE = relay.PAGE


def open_poll(request, session: LiveSession) -> LivePoll:
    """A poll about the class branch's next token (the open one, if there is one)."""
    live.require_presenter(request, session)
    if session.branch is None:
        raise ServiceError("The class has no text on screen to ask about", field="live")
    current = session.polls.filter(closed_at__isnull=True).first()
    if current is not None:
        return current
    branch = session.branch
    distribution = next_distribution(branch, branch.exploration.params, top_n=10)
    texts = list(dict.fromkeys(token["text"] for token in distribution["tokens"]))[:CHOICES]
    random.shuffle(texts)  # the order must not give the answer away
    poll = LivePoll.objects.create(
        session=session, branch=branch, position=branch.length, choices=texts
    )
    relay.push_followers(session, _follower_box(poll))
    relay.push_presenters(session, presenter_box(poll))
    return poll


def answer(request, session: LiveSession, text: str) -> LivePollAnswer:
    seat = live.seat_of(request, session)
    if seat is None:
        raise ServiceError("Join the session to answer", field="live", status=403)
    poll = session.polls.filter(closed_at__isnull=True).first()
    if poll is None:
        raise ServiceError("No question is open right now", field="poll", status=409)
    # A candidate picked as it is (a newline or a space is a token too); typed text trimmed.
    cleaned = text if text in poll.choices else (text or "").strip()
    if not cleaned or len(cleaned) > MAX_ANSWER:
        raise ServiceError(f"An answer is 1 to {MAX_ANSWER} characters", field="text")
    given, _ = LivePollAnswer.objects.update_or_create(
        poll=poll, participant=seat, defaults={"text": cleaned}
    )
    relay.push_presenters(session, presenter_box(poll))
    return given


def results(poll: LivePoll) -> list[dict]:
    """Each distinct answer (case and spaces aside): how many gave it and the model's p_base
    of that token at the position, from the recorded step (None if not in its top-N)."""
    recorded = {}
    if poll.chosen:
        for token in poll.chosen.get("tokens", []):
            recorded.setdefault(_key(token["text"]), token["p_base"])
    counts: dict[str, dict] = {}
    for given in poll.answers.all():
        shown = given.text.strip() or given.text
        row = counts.setdefault(_key(given.text), {"text": shown, "count": 0})
        row["count"] += 1
    rows = sorted(counts.values(), key=lambda row: -row["count"])
    total = sum(row["count"] for row in rows) or 1
    for row in rows:
        row["share"] = row["count"] / total
        row["p_base"] = recorded.get(_key(row["text"]))
        row["chosen"] = poll.chosen is not None and _key(row["text"]) == _key(poll.chosen["text"])
    return rows


def _key(text: str) -> str:
    """Case and surrounding spaces aside; a token of spaces alone (a newline) stays itself."""
    return text.strip().casefold() or text


def _follower_box(poll: LivePoll) -> str:
    return render_to_string(f"{PAGE}#poll-follower", {"poll": poll, "oob": True})


def follower_box_of(session: LiveSession) -> str:
    """The open poll as a (late) follower's page starts with it; "" when none is open."""
    poll = session.polls.filter(closed_at__isnull=True).select_related("session").first()
    return _follower_box(poll) if poll else ""


def presenter_box(poll: LivePoll, oob: bool = True) -> str:
    context = {"poll": poll, "rows": results(poll), "answers": poll.answers.count(), "oob": oob}
    return render_to_string(f"{PAGE}#poll-presenter", context)


@receiver(broadcast.tokens_changed)
def _close_answered_polls(exploration_id, branch_id, from_index, **_):
    """The presenter's token at a poll's position is saved: the poll closes with it."""
    polls = LivePoll.objects.select_related("session").filter(
        closed_at__isnull=True, branch_id=branch_id, session__ended_at__isnull=True
    )
    for poll in polls:
        step = Step.objects.filter(branch_id=branch_id, index=poll.position).first()
        if step is None:
            continue
        with transaction.atomic():
            chosen = {"text": step.text, "token_id": step.token_id, "p_base": step.p_base}
            chosen["tokens"] = [
                {"text": token["text"], "p_base": token["p_base"]}
                for token in step.distribution.get("tokens", [])
            ]
            updated = LivePoll.objects.filter(pk=poll.pk, closed_at__isnull=True).update(
                closed_at=timezone.now(), chosen=chosen
            )
        if updated:
            poll.refresh_from_db()
            relay.push_followers(poll.session, _follower_box(poll))
            relay.push_presenters(poll.session, presenter_box(poll))
