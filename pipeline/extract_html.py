"""Text from an HTML page: its visible text, the title first, one line per block (see `extract.py`).

The standard library's parser reads any HTML without complaint; what it refuses (a broken
declaration) becomes an `ExtractionError` like every other failure.
"""

from __future__ import annotations

from html.parser import HTMLParser

from .extract import Fail, reason

__all__ = ["html_text"]


class _VisibleText(HTMLParser):
    """Collects the visible text of an HTML page: the title first, then one line per block."""

    HIDDEN = frozenset({"script", "style", "head", "template", "noscript"})
    BLOCKS = frozenset(
        {
            "address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "dialog", "div",
            "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
            "h6", "header", "hr", "legend", "li", "main", "nav", "ol", "p", "section", "summary", "table",
            "tbody", "tfoot", "thead", "tr", "ul",
        }
    )  # fmt: skip
    CELLS = frozenset({"td", "th"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        # <title> counts as hidden too: its text is kept apart, as the first line, and only the first
        # one is kept (a later <title>, as in an inline SVG, is a tooltip).
        self.hidden_depth: dict[str, int] = dict.fromkeys((*self.HIDDEN, "title"), 0)
        self.in_title = False
        self.pre_depth = 0
        self.title: list[str] = []
        self.lines: list[str] = []
        self.current: list[str] = []
        self.cells_in_row = 0

    @property
    def hidden(self) -> bool:
        return any(self.hidden_depth.values())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = not self.title
        elif tag == "body":
            self.hidden_depth["head"] = 0  # a page that never closes <head>
        if tag in self.hidden_depth:
            self.hidden_depth[tag] += 1
        elif tag in self.BLOCKS:
            self.break_line()
            if tag == "tr":
                self.cells_in_row = 0
        elif tag in self.CELLS:
            if self.cells_in_row and not self.hidden:
                self.current.append(" | ")
            self.cells_in_row += 1
        elif tag == "pre":
            self.break_line()
            self.pre_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in self.hidden_depth:
            self.hidden_depth[tag] = max(0, self.hidden_depth[tag] - 1)
        elif tag in self.BLOCKS:
            self.break_line()
        elif tag == "pre":
            self.break_line()
            self.pre_depth = max(0, self.pre_depth - 1)

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        elif not self.hidden:
            self.current.append(data)

    def break_line(self) -> None:
        joined = "".join(self.current)
        self.current = []
        if self.pre_depth:
            self.lines.extend(line.rstrip() for line in joined.strip("\n").split("\n") if line.strip())
        else:
            line = " ".join(joined.split())
            if line.strip(" |"):
                self.lines.append(line)

    def text(self) -> str:
        self.break_line()
        title = " ".join("".join(self.title).split())
        return "\n".join([title, *self.lines] if title else self.lines)


def html_text(html: str, fail: Fail) -> str:
    """The visible text of `html`, or the error `fail` builds for malformed markup."""
    parser = _VisibleText()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError) as exc:  # _markupbase raises these on broken declarations
        raise fail(f"malformed HTML: {reason(exc)}") from None
    return parser.text()
