"""Checking what an instructor types into a lesson question and what a student answers:
cleaned values, or a ServiceError naming the field."""

from __future__ import annotations

import random

from inspector.errors import ServiceError
from inspector.lessons.input import clean_lines, storable_text
from inspector.models import LessonItem, LessonQuestion

Kind = LessonQuestion.Kind
MAX_QUESTIONS = 20  # per lesson item
MAX_QUESTION_CHARS = 500
MIN_CHOICES, MAX_CHOICES = 2, 8
MAX_CHOICE_CHARS = 200
MAX_TOKEN_ANSWER = 100
MAX_FREE_ANSWER = 2000
OFFERED_CANDIDATES = 6  # recorded top candidates a next-token question offers to pick from
# "Which stage removes ' the'?": the sampling pipeline's stages, in order, by the name a step's
# recorded candidate gives in `removed_by` (engine.sampling.STAGES; None: the token was kept).
STAGE_CHOICES = {
    "repetition_penalty": "repetition penalty",
    "presence_frequency": "presence/frequency penalties",
    "constraint": "constraint",
    "temperature": "temperature",
    "top_k": "top-k",
    "top_p": "top-p",
    "min_p": "min-p",
    None: "none: it is kept",
}
SAMPLING_STAGES = tuple(STAGE_CHOICES.values())
QUESTION_FIELDS = ("kind", "text", "step_index", "choices", "correct", "token")
# What decides whether an answer is right: these cannot change once someone has answered.
ANSWER_FIELDS = ("kind", "step_index", "choices", "correct")


def clean_question(item: LessonItem, data: dict, current: LessonQuestion | None = None) -> dict:
    """The question's fields (QUESTION_FIELDS, plus `recorded` for next_token) from `data`
    over the current ones, checked as a whole."""
    base = {name: getattr(current, name) for name in QUESTION_FIELDS} if current else {}
    fields = {**base, **{name: data[name] for name in QUESTION_FIELDS if name in data}}
    kind = fields.get("kind")
    if kind not in Kind.values:
        raise ServiceError(f"A question's kind is one of {', '.join(Kind.values)}", "kind")
    if kind != Kind.MULTIPLE_CHOICE and (data.get("choices") or data.get("correct")):
        raise ServiceError("Only multiple-choice questions take choices", field="choices")
    if kind != Kind.MULTIPLE_CHOICE and data.get("token"):
        raise ServiceError("Only multiple-choice questions name a token", field="token")
    cleaned = {"kind": kind, "text": _clean_text(fields.get("text"))}
    cleaned["step_index"] = _clean_step_index(item, fields.get("step_index"), kind)
    if kind == Kind.MULTIPLE_CHOICE:
        cleaned["choices"] = _clean_choices(fields.get("choices"))
        if not fields.get("token"):
            cleaned["correct"] = _clean_correct(fields.get("correct"), cleaned["choices"])
            return {**cleaned, "recorded": None}
        # With a token the recording says which stage is right; a right choice marked by
        # hand must agree (PATCH without `correct` re-reads it, since choices may have moved).
        return {**cleaned, **_stage_answer(item, cleaned, fields["token"], data.get("correct"))}
    if kind == Kind.FREE_TEXT:
        return {**cleaned, "choices": [], "correct": [], "recorded": None}
    same_step = current and current.kind == kind and current.step_index == cleaned["step_index"]
    recorded = current.recorded if same_step else recorded_at(item, cleaned["step_index"])
    offered = current.choices if same_step else _offered(recorded, seed=cleaned["step_index"])
    return {**cleaned, "choices": offered, "correct": [], "recorded": recorded}


def _clean_text(text) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ServiceError("Write the question", field="text")
    text = storable_text(text.strip(), "text")
    if len(text) > MAX_QUESTION_CHARS:
        raise ServiceError(
            f"A question is at most {MAX_QUESTION_CHARS} characters ({len(text)} given)", "text"
        )
    return text


def main_steps(item: LessonItem) -> list:
    """The steps of the item's exploration's main branch, as the lesson page shows them."""
    return item.exploration.root.sequence()


def _clean_step_index(item: LessonItem, index, kind: str) -> int | None:
    if index in (None, ""):
        if kind == Kind.NEXT_TOKEN:
            raise ServiceError(
                "Say which step the question asks about: its number (#) in the main branch",
                field="step_index",
            )
        return None
    if isinstance(index, bool) or not isinstance(index, int | str):
        raise ServiceError("A step number is a whole number", field="step_index")
    try:
        index = int(index)
    except ValueError:
        raise ServiceError("A step number is a whole number", field="step_index") from None
    length = item.exploration.root.length
    if not 0 <= index < length:
        recorded = f"steps #0 to #{length - 1}" if length else "no step yet"
        raise ServiceError(
            f"The main branch has no step #{index}: it recorded {recorded}", field="step_index"
        )
    return index


def recorded_at(item: LessonItem, index: int) -> dict:
    """The recorded token at `index` of the main branch and its top candidates, as the
    question keeps them (a later change to the exploration does not change the answer)."""
    step = main_steps(item)[index]
    tokens = (step.distribution or {}).get("tokens") or []
    candidates = [
        {"id": token.get("id"), "text": token.get("text", ""), "p_base": token.get("p_base")}
        for token in tokens
        if isinstance(token, dict)
    ]
    return {
        "index": index,
        "token_id": step.token_id,
        "text": step.text,
        "p_base": step.p_base,
        "candidates": candidates,
    }


def _offered(recorded: dict, seed: int) -> list[str]:
    """The recorded token and the most likely other candidates (by p_base), shuffled once so
    the order does not give the answer away, and kept so every student sees the same."""
    others = sorted(recorded["candidates"], key=lambda token: -(token.get("p_base") or 0))
    texts = list(dict.fromkeys([recorded["text"], *(token["text"] for token in others)]))
    offered = texts[:OFFERED_CANDIDATES]
    random.Random(f"{seed}:{recorded['token_id']}").shuffle(offered)
    return offered


def _clean_choices(choices) -> list[str]:
    if not isinstance(choices, list | tuple) or not all(isinstance(c, str) for c in choices):
        raise ServiceError("Choices are a list of texts", field="choices")
    kept = clean_lines(
        choices, field="choices", what="choices", most=MAX_CHOICES, longest=MAX_CHOICE_CHARS
    )
    if len(kept) < MIN_CHOICES:
        raise ServiceError(
            f"Give {MIN_CHOICES} to {MAX_CHOICES} choices ({len(kept)} given)", field="choices"
        )
    if len(set(kept)) != len(kept):
        raise ServiceError("Each choice is different from the others", field="choices")
    return kept


def _stage_answer(item: LessonItem, cleaned: dict, token, marked) -> dict:
    """ "Which stage removes this token?" answered from the recording: the right choice is the
    stage the step's recorded candidate `token` says removed it ("none: it is kept" if kept).
    A right choice marked by hand that disagrees is refused, saying what was recorded."""
    index = cleaned["step_index"]
    if index is None:
        raise ServiceError(
            "A question about a token names its step: the token is one of that step's "
            "recorded candidates",
            field="step_index",
        )
    candidate = _candidate(main_steps(item)[index], token, index)
    if "removed_by" not in candidate:
        raise ServiceError(
            f"Step #{index}'s recording does not say which stage removed its candidates",
            field="token",
        )
    stage = STAGE_CHOICES.get(candidate.get("removed_by"), str(candidate.get("removed_by")))
    said = f"At step #{index} the recording says {candidate['text']!r} was " + (
        "kept" if candidate.get("removed_by") is None else f"removed by {stage}"
    )
    if stage not in cleaned["choices"]:
        raise ServiceError(f"{said}: add the choice “{stage}”", field="choices")
    right = [cleaned["choices"].index(stage)]
    if marked and _clean_correct(marked, cleaned["choices"]) != right:
        raise ServiceError(f"{said}: mark “{stage}” (or mark none)", field="correct")
    recorded = {
        "index": index,
        "token": candidate["text"],
        "token_id": candidate.get("id"),
        "removed_by": candidate.get("removed_by"),
    }
    return {"correct": right, "recorded": recorded}


def _candidate(step, token, index: int) -> dict:
    """The step's recorded candidate whose text is `token` (exactly, else apart from
    surrounding spaces when only one candidate reads so)."""
    if not isinstance(token, str):
        raise ServiceError("A token is a text", field="token")
    tokens = [t for t in (step.distribution or {}).get("tokens") or [] if isinstance(t, dict)]
    exact = [t for t in tokens if t.get("text") == token]
    loose = [t for t in tokens if token_key(t.get("text", "")) == token_key(token)]
    found = exact or loose
    if len(found) == 1:
        return found[0]
    shown = ", ".join(repr(t.get("text", "")) for t in tokens[:12])
    why = "several candidates read" if found else "no recorded candidate is"
    raise ServiceError(
        f"At step #{index} {why} {token!r}; its candidates are {shown}", field="token"
    )


def _clean_correct(correct, choices: list[str]) -> list[int]:
    if not isinstance(correct, list | tuple) or not correct:
        raise ServiceError("Say which choice is right (one or more)", field="correct")
    picked = _clean_picks(correct, choices, field="correct")
    return sorted(picked)


def _clean_picks(picks, choices: list[str], field: str) -> list[int]:
    if not all(isinstance(pick, int) and not isinstance(pick, bool) for pick in picks):
        raise ServiceError("Choices are named by their index (0 is the first)", field=field)
    if len(set(picks)) != len(picks):
        raise ServiceError("Name each choice once", field=field)
    for pick in picks:
        if not 0 <= pick < len(choices):
            raise ServiceError(
                f"There is no choice {pick}: the choices are 0 to {len(choices) - 1}", field=field
            )
    return list(picks)


def choices_from_lines(text: str) -> tuple[list[str], list[int]]:
    """A form's choices, one per line, the right ones starting with "*": (choices, right)."""
    choices, right = [], []
    for line in str(text or "").splitlines():
        line = line.strip()
        if line.startswith("*"):
            line = line[1:].strip()
            if line:
                right.append(len(choices))
        if line:
            choices.append(line)
    return choices, right


def clean_answer(question: LessonQuestion, data: dict) -> dict:
    """A student's answer: {"text", "picked", "correct"} (correct None for free text)."""
    if question.kind == Kind.MULTIPLE_CHOICE:
        picks = data.get("picked")
        if not isinstance(picks, list | tuple) or not picks:
            raise ServiceError("Pick a choice", field="picked")
        picked = sorted(_clean_picks(list(picks), question.choices, field="picked"))
        text = " + ".join(question.choices[pick] for pick in picked)
        return {"text": text, "picked": picked, "correct": picked == sorted(question.correct)}
    text = data.get("text")
    if not isinstance(text, str):
        raise ServiceError("Give your answer as a text", field="text")
    if question.kind == Kind.FREE_TEXT:
        text = storable_text(text.strip(), "text")
        if not 1 <= len(text) <= MAX_FREE_ANSWER:
            raise ServiceError(f"An answer is 1 to {MAX_FREE_ANSWER} characters", field="text")
        return {"text": text, "picked": [], "correct": None}
    # A candidate picked as it is (a space or a newline is a token too); typed text trimmed.
    text = storable_text(text if text in question.choices else text.strip(), "text")
    if not 1 <= len(text) <= MAX_TOKEN_ANSWER:
        raise ServiceError(f"A token is 1 to {MAX_TOKEN_ANSWER} characters", field="text")
    right = token_key(text) == token_key(question.recorded["text"])
    return {"text": text, "picked": [], "correct": right}


def token_key(text: str) -> str:
    """What makes two token answers the same: surrounding spaces aside (a typed "Paris" is
    the token " Paris"), case kept (" paris" is another token); a token of spaces alone (a
    newline) stays itself."""
    return text.strip() or text
