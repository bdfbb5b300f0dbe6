"""The app's models, one module per concept; importing from inspector.models keeps working
(and the migrations name inspector.models.new_link_token)."""

from inspector.models.audit import AuditEvent
from inspector.models.catalog import CatalogModel
from inspector.models.explorations import Branch, BranchQuerySet, Exploration, Step
from inspector.models.jobs import Job
from inspector.models.lessons import Lesson, LessonItem
from inspector.models.live import (
    LiveEvent,
    LiveParticipant,
    LivePoll,
    LivePollAnswer,
    LiveSession,
)
from inspector.models.questions import LessonQuestion, QuestionAnswer
from inspector.models.sharing import ShareLink, new_link_token

__all__ = [
    "AuditEvent",
    "Branch",
    "CatalogModel",
    "BranchQuerySet",
    "Exploration",
    "Job",
    "Lesson",
    "LessonItem",
    "LessonQuestion",
    "LiveEvent",
    "LiveParticipant",
    "LivePoll",
    "LivePollAnswer",
    "LiveSession",
    "QuestionAnswer",
    "ShareLink",
    "Step",
    "new_link_token",
]
