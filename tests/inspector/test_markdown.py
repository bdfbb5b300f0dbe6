"""Lesson notes are Markdown rendered safely: raw HTML and script links stay inert text."""

import pytest
from django.template import Context, Template

from inspector.lessons.markdown import render_markdown


@pytest.mark.parametrize(
    ("source", "inert"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"),
        ('<a href="https://evil.example">x</a>', "&lt;a href=&quot;https://evil.example&quot;&gt;"),
        ("<div>\n\n<iframe src=x></iframe>\n\n</div>", "&lt;iframe src=x&gt;"),
    ],
)
def test_raw_html_is_shown_as_text(source, inert):
    html = render_markdown(source)
    assert inert in html
    assert "<script" not in html and "<img" not in html and "<iframe" not in html
    assert "<a " not in html


@pytest.mark.parametrize(
    "source",
    [
        "[x](javascript:alert(1))",
        "[x](JavaScript:alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "<javascript:alert(1)>",
    ],
)
def test_script_links_are_not_links(source):
    html = render_markdown(source)
    assert "href" not in html


def test_ordinary_markdown_renders():
    html = render_markdown(
        "# Sampling\n\nSome *emphasis* and **strength**.\n\n- one\n- two\n\n"
        "1. first\n\n```\ncode <b>here</b>\n```\n\n`inline` and [a link](https://example.com/x)"
    )
    assert "<h1>Sampling</h1>" in html
    assert "<em>emphasis</em>" in html and "<strong>strength</strong>" in html
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html
    assert "<ol>\n<li>first</li>\n</ol>" in html
    assert "<pre><code>code &lt;b&gt;here&lt;/b&gt;\n</code></pre>" in html
    assert "<code>inline</code>" in html
    assert '<a href="https://example.com/x">a link</a>' in html


def test_bare_addresses_are_not_turned_into_links():
    assert "<a" not in render_markdown("see https://example.com")


def test_empty_notes_render_nothing():
    assert render_markdown("") == "" and render_markdown(None) == ""


def test_the_template_filter_renders_without_escaping_twice():
    template = Template("{% load markdown %}{{ notes|markdown }}")
    html = template.render(Context({"notes": "**bold** <b>raw</b>"}))
    assert html == "<p><strong>bold</strong> &lt;b&gt;raw&lt;/b&gt;</p>\n"
