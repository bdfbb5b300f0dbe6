"""Conversations: the tokens a chat model reads when the person adds a turn.

A conversation is one branch: the prompt is the first user turn, the model's reply is the
completion, and each later user turn is appended to the completion as tokens (a step of mode
"turn"), so branching, undo and every analysis see exactly what the model read. What those
tokens are comes from the model's own chat template, rendered for the whole conversation: the
end of the assistant's reply, the user's turn and the generation prompt of the next reply.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.types import InputError

# Stands for the assistant's last reply while the template is rendered: the tokens the model
# already read (the reply as it was sampled) are never re-tokenized, only what follows them.
_REPLY_MARK = "TOKENLENSREPLYMARK"


@dataclass(frozen=True)
class Message:
    role: str  # "system", "user" or "assistant"
    content: str


def reply_text(tokenizer, token_ids, eos_ids=frozenset()) -> str:
    """An assistant reply's text as a chat template takes it: its tokens decoded, without the
    end-of-sequence token that ended it."""
    ids = list(token_ids)
    while ids and ids[-1] in eos_ids:
        ids.pop()
    return tokenizer.decode(ids, skip_special_tokens=False)


def turn_ids(tokenizer, history: list[Message], text: str, last_token_id: int | None) -> tuple:
    """The ids a user's turn appends to a conversation whose last message (in `history`) is
    the assistant's reply that just ended with `last_token_id`.

    The template is rendered for history + the new user turn with its generation prompt; the
    ids are what follows the reply: the template's end of turn (left out when the reply's own
    last token is that end of turn, e.g. SmolLM2's <|im_end|>), the user's turn and the next
    reply's opening. InputError for empty text, a model without a chat template, or a template
    that refuses the conversation (it names the template's reason)."""
    if not text or not text.strip():
        raise InputError("Type what you say to the model (the turn is empty)", field="text")
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(
            "This model has no chat template (it is a base model), so it cannot hold a "
            "conversation",
            field="text",
        )
    if not history or history[-1].role != "assistant":
        raise InputError("A user's turn follows the assistant's reply", field="text")
    messages = [{"role": m.role, "content": m.content} for m in history[:-1]]
    messages += [
        {"role": "assistant", "content": _REPLY_MARK},
        {"role": "user", "content": text},
    ]
    try:
        rendered = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
    except Exception as error:  # jinja2's TemplateError, or the template's raise_exception
        raise InputError(
            f"This model's chat template refuses the conversation: {error}", field="text"
        ) from None
    where = rendered.rfind(_REPLY_MARK)
    if where < 0:
        raise InputError(
            "This model's chat template leaves out the assistant's replies, so a conversation "
            "cannot be read through it",
            field="text",
        )
    ids = list(tokenizer.encode(rendered[where + len(_REPLY_MARK) :], add_special_tokens=False))
    if ids and last_token_id is not None and ids[0] == last_token_id:
        ids = ids[1:]
    return tuple(ids)
