"""A branch of a chat exploration as a conversation: its turns, read from its steps.

The prompt (and the system prompt) open the conversation; the model's reply is the branch's
steps; a user's later turn is a run of steps of mode "turn" (engine.conversation says which
tokens). So a branch made inside an earlier reply holds the turns before it and none after.
Torch-free: the web side lists turns, the worker builds the next turn's messages from them."""

from __future__ import annotations

from dataclasses import dataclass

from inspector.errors import ServiceError
from inspector.models import Branch, Exploration, Step

# A reply that ended for one of these reasons may be followed by a user's turn.
REPLY_ENDINGS = ("eos", "stop_sequence", "max_tokens")


@dataclass(frozen=True)
class Turn:
    """One message. first_index/last_index: its tokens in the branch's completion (None for
    the system prompt and the first user turn, which are the exploration's prompt)."""

    role: str  # "system", "user" or "assistant"
    text: str
    first_index: int | None = None
    last_index: int | None = None
    token_ids: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return {
            "role": self.role,
            "text": self.text,
            "first_index": self.first_index,
            "last_index": self.last_index,
        }


def _runs(steps: list[Step]) -> list[list[Step]]:
    """The steps cut where a user's turn starts or ends."""
    runs: list[list[Step]] = []
    for step in steps:
        is_turn = step.mode == Step.Mode.TURN
        starts_turn = is_turn and step.turn is not None
        if not runs or starts_turn or (runs[-1][-1].mode == Step.Mode.TURN) != is_turn:
            runs.append([])
        runs[-1].append(step)
    return runs


def _shown_text(steps: list[Step]) -> str:
    """A reply's text as the page shows it, without the special token that ended it."""
    shown = list(steps)
    while shown and (shown[-1].piece or {}).get("special"):
        shown.pop()
    return "".join(step.text for step in shown)


def turns_of(exploration: Exploration, steps: list[Step]) -> list[Turn]:
    """The conversation a chat exploration's branch holds ([] without the chat template)."""
    if not exploration.use_chat_template:
        return []
    turns = []
    if exploration.system_prompt:
        turns.append(Turn("system", exploration.system_prompt))
    turns.append(Turn("user", exploration.prompt))
    for run in _runs(steps):
        is_user = run[0].mode == Step.Mode.TURN
        text = (run[0].turn or {}).get("text", "") if is_user else _shown_text(run)
        ids = tuple(step.token_id for step in run)
        role = "user" if is_user else "assistant"
        turns.append(Turn(role, text, run[0].index, run[-1].index, ids))
    return turns


def reply_start(steps: list[Step]) -> int:
    """Where the assistant's current reply starts in the completion (after the last turn)."""
    for step in reversed(steps):
        if step.mode == Step.Mode.TURN:
            return step.index + 1
    return 0


def ended_message(branch: Branch) -> str:
    """What to tell someone who steps or generates on a branch that has ended."""
    how = branch.finish_reason.replace("_", " ")
    if branch.exploration.use_chat_template and branch.finish_reason in REPLY_ENDINGS:
        return (
            f"The model's reply has ended ({how}); add your turn to go on, or undo its last "
            "token or branch off an earlier one"
        )
    return (
        f"This branch has ended ({how}); undo its last token or branch off an earlier one to go on"
    )


def check_turn_allowed(branch: Branch) -> None:
    """A 400 saying why, unless the branch's last reply has ended and the chat goes on."""
    exploration = branch.exploration
    if not exploration.use_chat_template:
        raise ServiceError(
            "This exploration reads its prompt as plain text, not as a chat; start one with "
            "the chat template on to hold a conversation",
            field="text",
        )
    if exploration.constraint:
        raise ServiceError(
            "This exploration has a constraint on what the model writes; it cannot go on as a "
            "conversation",
            field="text",
        )
    if branch.finish_reason == "context_full":
        raise ServiceError(
            "The context window is full; there is no room for another turn. Branch off an "
            "earlier token to go on",
            field="text",
        )
    if branch.finish_reason not in REPLY_ENDINGS:
        raise ServiceError(
            "The model's reply has not ended yet; step or generate until it ends (the end of "
            "its turn, a stop sequence or the maximum new tokens), then add your turn",
            field="text",
        )


def check_fork_outside_turn(branch: Branch, at_index: int) -> None:
    """A branch starts at a token the model chose, never inside a user's turn (a turn is
    what the person typed, through the template: edit it by undoing it and adding another)."""
    steps = branch.sequence(only=("index", "mode"))
    if at_index < len(steps) and steps[at_index].mode == Step.Mode.TURN:
        raise ServiceError(
            "This token belongs to a user's turn; a branch can start at a token the model "
            "chose. To change the turn, undo it and write another",
            field="at_index",
        )


@dataclass(frozen=True)
class Message:
    """A turn as the exploration page draws it: its steps (the reply's tokens, or what the
    model read of a user's turn) and where the "Inside the model" panels read up to for it."""

    role: str
    text: str
    steps: tuple[Step, ...]
    read_up_to: int | None  # the last completion index read (-1: the prompt alone)


def messages_of(exploration: Exploration, steps: list[Step]) -> list[Message]:
    """The page's messages of a chat exploration's branch ([] without the chat template)."""
    by_index = {step.index: step for step in steps}
    messages = []
    for turn in turns_of(exploration, steps):
        own = ()
        if turn.first_index is not None:
            own = tuple(by_index[index] for index in range(turn.first_index, turn.last_index + 1))
        read_up_to = turn.last_index if turn.first_index is not None else None
        if turn.role == "user" and turn.first_index is None:
            read_up_to = -1
        messages.append(Message(turn.role, turn.text, own, read_up_to))
    return messages
