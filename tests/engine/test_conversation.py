"""A user's turn in the engine: the tokens the chat template adds, and stepping a conversation
(a turn's tokens recorded with the model's distribution, the reply's limits counted from its
own start, refusals that name their cause)."""

from __future__ import annotations

import pytest
import torch

from engine.constraints import Constraint
from engine.conversation import Message, reply_text, turn_ids
from engine.distribution import prompt_ids
from engine.params import SamplingParams
from engine.stepping import Stepper, StepRequest, eos_ids_of
from engine.types import InputError

GREEDY = SamplingParams(temperature=0)


@pytest.fixture(scope="module")
def stepper(smollm2):
    return Stepper(smollm2, cache_budget_bytes=1 << 28)


def _history(reply="Hello!"):
    return [Message("user", "Hi"), Message("assistant", reply)]


def test_a_turn_is_what_follows_the_reply_in_the_rendered_conversation(smollm2):
    tokenizer = smollm2.tokenizer
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    after_eos = turn_ids(tokenizer, _history(), "And you?", end_of_turn)
    after_cut = turn_ids(tokenizer, _history(), "And you?", 17)
    opening = "\n<|im_start|>user\nAnd you?<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.decode(after_eos) == opening
    assert tokenizer.decode(after_cut) == "<|im_end|>" + opening  # a reply cut short is closed
    rendered = tokenizer.apply_chat_template(
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "And you?"},
        ],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert rendered.endswith("Hello!" + tokenizer.decode(after_cut))


def test_a_reply_is_decoded_without_its_end_of_turn(smollm2):
    tokenizer = smollm2.tokenizer
    ids = tokenizer.encode("Hello there", add_special_tokens=False)
    eos = eos_ids_of(smollm2)
    assert reply_text(tokenizer, [*ids, min(eos)], eos) == "Hello there"


@pytest.mark.parametrize(
    "history, text, fragment",
    [
        (_history(), "  ", "empty"),
        ([Message("user", "Hi")], "More", "follows the assistant's reply"),
    ],
)
def test_bad_turns_are_refused(smollm2, history, text, fragment):
    with pytest.raises(InputError, match=fragment):
        turn_ids(smollm2.tokenizer, history, text, None)


def test_a_base_model_cannot_hold_a_conversation(gemma):
    with pytest.raises(InputError, match="no chat template"):
        turn_ids(gemma.tokenizer, _history(), "More", None)


def _conversation(smollm2, stepper, branch: str):
    """A first reply of 3 greedy tokens, then a turn: (prompt, completion, turn ids)."""
    prompt = tuple(prompt_ids(smollm2, "Say hello.", None, True))
    first = StepRequest(branch, prompt, params=GREEDY, max_new_tokens=3)
    reply = [t.id for result in stepper.generate(first) for t in result.tokens]
    history = [Message("user", "Say hello."), Message("assistant", "")]
    turn = turn_ids(smollm2.tokenizer, history, "Thanks!", reply[-1])
    return prompt, tuple(reply), turn


def test_a_turn_records_the_model_distribution_at_each_of_its_tokens(smollm2, stepper):
    prompt, reply, turn = _conversation(smollm2, stepper, "turns-a")
    request = StepRequest("turns-a", prompt, reply, GREEDY, "turn", turn, max_new_tokens=3)
    result = stepper.step(request)
    assert [token.id for token in result.tokens] == list(turn)
    assert {token.how for token in result.tokens} == {"turn"}
    assert result.finish_reason is None  # the reply starts after it, even past max_new_tokens
    context = torch.tensor([list(prompt) + list(reply) + list(turn)])
    with torch.no_grad():
        logits = smollm2.model(context).logits[0]
    start = len(prompt) + len(reply) - 1
    for offset, token in enumerate(result.tokens):
        expected = logits[start + offset].softmax(-1)[token.id]
        assert abs(token.distribution.chosen.p_base - float(expected)) < 1e-4


def test_the_reply_after_a_turn_counts_its_own_tokens(smollm2, stepper):
    prompt, reply, turn = _conversation(smollm2, stepper, "turns-b")
    completion = reply + turn
    request = StepRequest(
        "turns-b", prompt, completion, GREEDY, max_new_tokens=3, turn_start=len(completion)
    )
    steps = stepper.generate(request)
    assert len(steps) == 3 and steps[-1].finish_reason == "max_tokens"


def test_a_stop_sequence_counts_within_the_current_reply_only(smollm2, stepper):
    prompt, reply, turn = _conversation(smollm2, stepper, "turns-c")
    completion = reply + turn  # the turn ends with "assistant\n"
    request = StepRequest(
        "turns-c",
        prompt,
        completion,
        GREEDY,
        "force",
        tuple(smollm2.tokenizer.encode("Yes", add_special_tokens=False)),
        stop=("\nYes",),
        turn_start=len(completion),
    )
    assert stepper.step(request).finish_reason is None


def test_a_turn_needs_room_for_a_reply_and_no_constraint(smollm2, stepper):
    prompt, reply, turn = _conversation(smollm2, stepper, "turns-d")
    context = smollm2.info.context_length
    filler = (reply[0],) * (context - len(prompt) - len(turn))
    full = StepRequest("turns-d", prompt, filler, GREEDY, "turn", turn)
    with pytest.raises(InputError, match=r"room for \d+ more and a reply"):
        stepper.check(full)
    constrained = StepRequest(
        "turns-d",
        prompt,
        reply,
        GREEDY,
        "turn",
        turn,
        constraint=Constraint("choice", ["yes", "no"]),
    )
    with pytest.raises(InputError, match="constraint"):
        stepper.check(constrained)
