"""Markdown for lesson notes, rendered safely: raw HTML is shown as text, never run.

markdown-it-py's CommonMark preset with `html` off escapes every tag; its link validator
refuses javascript:, vbscript:, file: and (non-image) data: URLs, which then stay plain text.
"""

from __future__ import annotations

from functools import lru_cache

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def render_markdown(text: str | None) -> SafeString:
    """The HTML of a Markdown text, safe to put in a page as is."""
    return mark_safe(_parser().render(text or ""))  # html is off: every tag is escaped
