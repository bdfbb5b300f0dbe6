"""Constraints (llguidance): generation under each kind produces text the constraint accepts,
checked independently (Python's re, json + jsonschema, lark), on both packaged models."""

from __future__ import annotations

import json
import re

import jsonschema
import lark
import pytest

from engine.constraints import Constraint, check_constraint
from engine.distribution import prompt_ids
from engine.matching import ConstraintMatcher
from engine.params import SamplingParams
from engine.stepping import Stepper, StepRequest
from engine.types import InputError

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Paris", "Lyon", "Nice"]},
        "population": {"type": "integer", "minimum": 0, "maximum": 99999},
    },
    "required": ["city", "population"],
    "additionalProperties": False,
}
SUM_GRAMMAR = """
start: "Total: " NUMBER " + " NUMBER " = " NUMBER "."
NUMBER: /[0-9]{1,3}/
"""
CASES = {
    "choice": (
        Constraint("choice", ["yes", "no", "it depends"]),
        "Is the sky blue? Answer:",
        lambda text: text in {"yes", "no", "it depends"},
    ),
    "regex": (
        Constraint("regex", r"[A-Z][a-z]{2,8} [0-9]{1,2}, [0-9]{4}"),
        "The treaty was signed on",
        lambda text: re.fullmatch(r"[A-Z][a-z]{2,8} [0-9]{1,2}, [0-9]{4}", text) is not None,
    ),
    "cfg": (
        Constraint("cfg", SUM_GRAMMAR),
        "Add the numbers.",
        lambda text: lark.Lark(SUM_GRAMMAR).parse(text) is not None,
    ),
    "json_schema": (
        Constraint("json_schema", ANSWER_SCHEMA),
        "Answer in JSON with a French city and its population:",
        lambda text: jsonschema.validate(json.loads(text), ANSWER_SCHEMA) is None,
    ),
}
RUNS = [SamplingParams(temperature=0), SamplingParams(temperature=1.0, seed=11)]


@pytest.fixture(scope="module")
def stepper(any_packaged_model):
    return Stepper(any_packaged_model, 1 << 28)


@pytest.mark.parametrize("kind", CASES)
@pytest.mark.parametrize("params", RUNS, ids=["greedy", "sampled"])
def test_generation_under_a_constraint_is_accepted_by_it(stepper, kind, params):
    loaded = stepper.loaded
    constraint, prompt, accepts = CASES[kind]
    request = StepRequest(
        f"{kind}-{params.temperature}",
        tuple(prompt_ids(loaded, prompt, None, False)),
        params=params,
        constraint=constraint,
        max_new_tokens=60,
    )
    results = stepper.generate(request)
    assert results[-1].finish_reason in {"eos", "constraint_complete"}
    ids = [token.id for result in results for token in result.tokens]
    ids = [token_id for token_id in ids if token_id not in stepper.eos_ids]
    text = loaded.tokenizer.decode(ids)
    assert accepts(text), text
    excluded = [
        candidate
        for result in results
        for token in result.tokens
        for candidate in token.distribution.candidates
        if not candidate.valid
    ]
    assert all(
        candidate.removed_by == "constraint" and not candidate.kept for candidate in excluded
    )


def test_a_forced_token_the_constraint_forbids_is_refused(stepper):
    loaded = stepper.loaded
    prompt = tuple(prompt_ids(loaded, "Is it raining?", None, False))
    forbidden = loaded.tokenizer.encode("maybe", add_special_tokens=False)[:1]
    request = StepRequest(
        "forced-bad",
        prompt,
        mode="force",
        force_ids=tuple(forbidden),
        constraint=Constraint("choice", ["yes", "no"]),
    )
    with pytest.raises(InputError, match="constraint does not allow"):
        stepper.step(request)


@pytest.mark.parametrize(
    ("constraint", "message"),
    [
        (Constraint("regex", "[0-9"), "Invalid regex: unclosed character class"),
        (Constraint("regex", ""), "non-empty regex"),
        (Constraint("cfg", "start: missing_rule"), "unknown name"),
        (Constraint("json_schema", {"type": "objectx"}), "Invalid JSON schema"),
        (Constraint("json_schema", "{not json"), "not valid JSON"),
        (Constraint("choice", "yes"), "non-empty list of strings"),
        (Constraint("choice", ["yes", ""]), "non-empty string"),
    ],
)
def test_an_invalid_constraint_says_what_is_wrong(constraint, message):
    with pytest.raises(InputError, match=re.escape(message)) as caught:
        check_constraint(constraint)
    assert caught.value.field == "constraint.spec"


def test_an_unknown_constraint_type_is_named():
    with pytest.raises(InputError, match="choice, regex, cfg, json_schema") as caught:
        Constraint.from_dict({"type": "xml", "spec": "<a/>"})
    assert caught.value.field == "constraint.type"


def test_the_mask_follows_the_completion_and_rolls_back(smollm2):
    constraint = Constraint("choice", ["yes", "no"])
    matcher = ConstraintMatcher(constraint, smollm2.tokenizer, smollm2.info.vocab_size)
    first = matcher.allowed_mask()
    yes = smollm2.tokenizer.encode("yes", add_special_tokens=False)
    assert bool(first[yes[0]])
    matcher.consume(yes)
    assert matcher.is_stopped
    matcher.rollback(len(yes))
    assert matcher.allowed_mask().equal(first)
