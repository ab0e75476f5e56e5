"""Text from run folders (names, messages, reasons) shown as plain text: a hand-edited run.json may hold Markdown,
HTML or 5,000 characters, and none of it may turn into links, images, tags or formatting."""

from __future__ import annotations

import html
import re

NAME_LIMIT = 80  # a run name's length when shown (the store's own limit on rename); longer ones end in "…"
# Characters with a meaning anywhere in a line of Streamlit's Markdown: CommonMark's inline ones, HTML's, $ (math),
# : (icons, colours) and ~ (strikethrough). The text becomes one line, so those that make a heading or a list item
# (#, -, +, "1.") or a heading's underline (=) matter only at its start.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>|~$:&])")
_LINE_START = re.compile(r"^(\d*)([#+\-.=])")


def shorten(text: str, limit: int = NAME_LIMIT) -> str:
    """One line of at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def markdown_literal(text: str) -> str:
    """``text`` for st.markdown and every widget that renders Markdown (captions, alerts, toasts, radio options,
    button labels, st.table cells): each special character backslash-escaped, line breaks made spaces."""
    return _LINE_START.sub(r"\1\\\2", _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split())))


def plotly_literal(text: str) -> str:
    """``text`` for Plotly titles and legend names, which render a subset of HTML (<b>, <a href>, <br>)."""
    return html.escape(text, quote=False)


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """"1 drawing", "30 drawings", "0 drawings": what a person writes, rather than "drawing(s)"."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"
