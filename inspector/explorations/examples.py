"""The examples a first visit starts from: one click makes an exploration and starts it
writing, so a new user sees what TokenLens is for before reading anything."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from engine.params import PRESETS


@dataclass(frozen=True)
class Example:
    key: str
    title: str
    prompt: str
    preset: str
    use_chat_template: bool
    max_new_tokens: int
    what_to_watch: str

    def request(self) -> dict:
        """The exploration as the API would be asked for it."""
        return {
            "model": settings.TOKENLENS_DEFAULT_MODEL,
            "prompt": self.prompt,
            "use_chat_template": self.use_chat_template,
            "params": PRESETS[self.preset].to_dict(),
            "max_new_tokens": self.max_new_tokens,
        }


EXAMPLES = {
    example.key: example
    for example in (
        Example(
            key="story",
            title="Watch it tell a story",
            prompt="Once upon a time, in a village by the sea,",
            preset="balanced",
            use_chat_template=False,
            max_new_tokens=40,
            what_to_watch="green tokens were easy guesses, red ones surprises",
        ),
        Example(
            key="fact",
            title="Watch it recall a fact",
            prompt="The capital of France is",
            preset="greedy",
            use_chat_template=False,
            max_new_tokens=12,
            what_to_watch="how sure it is of “Paris”",
        ),
        Example(
            key="chat",
            title="Watch the chat model answer",
            prompt="In two sentences: why is the sky blue?",
            preset="reliable",
            use_chat_template=True,
            max_new_tokens=60,
            what_to_watch="the special tokens the chat template adds around your question",
        ),
    )
}
