"""Text from an HTML page: its main content through trafilatura, the title first (see `extract.py`).

Main content is what a reader came for: trafilatura drops navigation, sidebars, cookie banners,
footers, share buttons and comment threads, and keeps the article, its headings and its tables
(`| cell | cell |` rows). Before it looks, the elements a browser never shows (script, style,
noscript, template, HTML comments) are taken out of the tree: trafilatura's fallback extractors
would keep some of them.

A page too small to tell content from boilerplate is read whole. When trafilatura finds less than
`MIN_MAIN_CONTENT_CHARS` of main content (its own threshold, under which it falls back to cruder
extractors that split sentences at every inline tag), or none, or fails on the markup, the page's
visible text is taken instead (`visible_text`, the standard library's parser): a short page is not
an "empty document". What that parser refuses (a broken declaration) is an `ExtractionError`.

trafilatura and lxml are imported with the first HTML page, not with the pipeline; both log to
their own loggers (silent unless the application configures logging) and emit no Python warnings.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from .extract import Fail, reason

__all__ = ["MIN_MAIN_CONTENT_CHARS", "html_text", "visible_text"]

MIN_MAIN_CONTENT_CHARS = 250  # trafilatura's MIN_EXTRACTED_SIZE
NEVER_SHOWN = ("script", "style", "noscript", "template")


def html_text(html: str, fail: Fail) -> str:
    """The page's title, then its main content; its visible text when it has no main content to find."""
    main = _main_content(html)
    if main is None:
        return visible_text(html, fail)
    title, content = main
    lines = [line.rstrip() for line in content.split("\n") if line.strip()]
    if title and (not lines or lines[0].strip() != title):
        lines.insert(0, title)
    return "\n".join(lines)


def _main_content(html: str) -> tuple[str, str] | None:
    """(the page's title, trafilatura's main content), or None when it finds too little or fails."""
    import trafilatura
    from lxml import etree
    from trafilatura.utils import load_html

    try:
        tree = load_html(html)
        if tree is None:
            return None
        title = _title(tree)
        etree.strip_elements(tree, *NEVER_SHOWN, etree.Comment, etree.ProcessingInstruction, with_tail=False)
        content = trafilatura.extract(
            tree,
            favor_precision=True,
            include_comments=False,
            include_tables=True,
            include_images=False,
            include_links=False,
            with_metadata=False,
        )
    except (etree.LxmlError, ValueError, TypeError, LookupError, AttributeError, AssertionError, RecursionError):
        return None  # markup trafilatura cannot read: the visible-text parser reads anything
    if content is None or len(content.strip()) < MIN_MAIN_CONTENT_CHARS:
        return None
    return title, content


def _title(tree: Any) -> str:
    """The text of the page's first <title> (a later one, as in an inline SVG, is a tooltip)."""
    element = tree.find(".//title")
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())


# -- visible text ----------------------------------------------------------------------------------


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


def visible_text(html: str, fail: Fail) -> str:
    """Every visible line of `html`, the title first, or the error `fail` builds for malformed markup."""
    parser = _VisibleText()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError) as exc:  # _markupbase raises these on broken declarations
        raise fail(f"malformed HTML: {reason(exc)}") from None
    return parser.text()
