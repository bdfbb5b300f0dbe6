"""Fixtures of the inspector tests: recorded explorations, their exports, an instructor's
browser and two explorations to build lessons from."""

import pytest

from inspector.models import Exploration, Lesson
from tests.conftest import client_for
from tests.inspector.makers import (
    browser,
    export_once,
    make_exploration,
    make_lesson,
    record_exploration,
    small_recording,
)


@pytest.fixture
def recorded(api) -> Exploration:
    return record_exploration(api)


@pytest.fixture
def exported(db) -> dict:
    """The export of a recording like `recorded`'s (made once per session; a copy each test)."""
    return export_once("recorded", record_exploration)


@pytest.fixture
def valid_file(db) -> dict:
    """A small real export (see small_recording); each refusal edits it."""
    return export_once("small", small_recording)


@pytest.fixture
def no_rate_limit(settings):
    """For tests that record explorations step by step as one user: many steps a minute."""
    settings.TOKENLENS_GENERATION_RATE = "100000/m"


@pytest.fixture
def published_item(instructor):
    """The one item of a published lesson: an exploration of three recorded steps."""
    exploration = make_exploration(client_for(instructor), "The capital of France is", "Cap", 3)
    return make_lesson(instructor, Lesson.Visibility.PUBLISHED, [exploration]).items.get()


@pytest.fixture
def teacher(instructor):
    return browser(instructor)


@pytest.fixture
def two_explorations(instructor):
    api = client_for(instructor)
    return [
        make_exploration(api, "The capital of France is", "Capitals"),
        make_exploration(api, "Once upon a time", "Stories", steps=1),
    ]
