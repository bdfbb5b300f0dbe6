"""The `markdown` filter: lesson notes rendered safely (inspector.lessons.markdown)."""

from django import template

from inspector.lessons.markdown import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text):
    """{{ lesson.notes|markdown }}: Markdown as HTML, raw HTML shown as text."""
    return render_markdown(text)
