"""Constrained generation with llguidance: choice, regex, Lark grammar (cfg) and JSON schema.

The constraint is one stage of the sampling pipeline: given the completion so far it yields a
boolean mask over the vocabulary (False = the constraint forbids the token). A matcher follows
the completion token by token (engine.matching); an invalid spec is an InputError that says
what is wrong. This module is torch-free: the web side checks constraints with it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from engine.types import InputError

CONSTRAINT_TYPES = ("choice", "regex", "cfg", "json_schema")
SPEC_FIELD = "constraint.spec"


@dataclass(frozen=True)
class Constraint:
    """type: one of CONSTRAINT_TYPES. spec: a list of strings (choice), a regex, a Lark grammar
    (cfg) or a JSON schema (a dict, or its JSON text)."""

    type: str
    spec: object

    @classmethod
    def from_dict(cls, data: dict | None) -> Constraint | None:
        """A Constraint from API data ({"type", "spec"}); None when absent or empty."""
        if not data:
            return None
        kind = data.get("type")
        if kind not in CONSTRAINT_TYPES:
            raise InputError(
                f"Constraint type must be one of {', '.join(CONSTRAINT_TYPES)}, got {kind!r}",
                field="constraint.type",
            )
        return cls(kind, data.get("spec"))

    def to_dict(self) -> dict:
        return {"type": self.type, "spec": self.spec}

    @property
    def cache_key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _choice_grammar(spec) -> str:
    from llguidance import LLMatcher

    if not isinstance(spec, list) or not spec:
        raise InputError("A choice constraint needs a non-empty list of strings", SPEC_FIELD)
    for option in spec:
        if not isinstance(option, str) or not option:
            raise InputError(f"Every choice must be a non-empty string, got {option!r}", SPEC_FIELD)
    # Lark string literals use JSON escapes.
    alternatives = " | ".join(json.dumps(option) for option in dict.fromkeys(spec))
    return LLMatcher.grammar_from_lark(f"start: {alternatives}")


def _text_spec(spec, what: str) -> str:
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"A {what} constraint needs a non-empty {what} string", SPEC_FIELD)
    return spec


def _json_schema_grammar(spec) -> str:
    from llguidance import LLMatcher

    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise InputError(f"The JSON schema is not valid JSON: {exc}", SPEC_FIELD) from None
    if not isinstance(spec, dict):
        raise InputError("A json_schema constraint needs a JSON object (the schema)", SPEC_FIELD)
    try:
        return LLMatcher.grammar_from_json_schema(spec)
    except ValueError as exc:
        raise InputError(f"Invalid JSON schema: {exc}", SPEC_FIELD) from None


def grammar_of(constraint: Constraint) -> str:
    """The llguidance grammar text of a constraint (not yet validated)."""
    from llguidance import LLMatcher

    if constraint.type == "choice":
        return _choice_grammar(constraint.spec)
    if constraint.type == "regex":
        return LLMatcher.grammar_from_regex(_text_spec(constraint.spec, "regex"))
    if constraint.type == "cfg":
        return LLMatcher.grammar_from_lark(_text_spec(constraint.spec, "grammar"))
    return _json_schema_grammar(constraint.spec)


_DIAGRAM_LINE = re.compile(r"^\s*(\d+\s*\||\^|\|)")


def readable_error(kind: str, error: str) -> str:
    """llguidance's error without the source diagram it draws under it."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    detail = [line for line in lines if line.startswith("error:")]
    if kind == "regex" and detail:
        return f"Invalid regex: {detail[0].removeprefix('error:').strip()}"
    kept = [line for line in lines if not _DIAGRAM_LINE.match(line)]
    label = {"regex": "regex", "cfg": "grammar", "json_schema": "JSON schema"}.get(kind, kind)
    return f"Invalid {label}: {' '.join(kept)}"


def check_constraint(constraint: Constraint) -> None:
    """InputError naming what is wrong with a constraint's spec (checked without a tokenizer)."""
    from llguidance import LLMatcher

    is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar_of(constraint))
    if is_error:
        raise InputError(readable_error(constraint.type, messages[0]), field=SPEC_FIELD)
