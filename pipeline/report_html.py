"""`docpipe report`'s page: a `Report` as one self-contained HTML file.

Charts are drawn by plotly (`pip install 'docpipe[report]'`), imported here only: its JavaScript is
inlined once in the page's head, so the page opens with no network, can be mailed as one file, and
each chart stays interactive (hover for the figures, zoom, save as PNG). Every text that comes from
the output (document ids, answers, error messages) is escaped; plotly escapes what it embeds in its
own JSON. The page's size is that of the library (about 5 MB) plus the tables: the charts hold
binned counts, not one value per document.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from .errors import ConfigError, EnvironmentFailure
from .evaluation import Evaluation, FieldScore
from .evaluation_report import METRIC_NAMES
from .report_data import Distribution, Report, ValueCounts, cell_text
from .status import money

__all__ = ["render_html", "write_page"]

INSTALL_HINT = "pip install 'docpipe[report]'"
CHART_HEIGHT_PX = 300
ACCENT = "#3b6ea8"
TOKEN_COLOURS = {"input_tokens": "#3b6ea8", "output_tokens": "#d08c2b", "cache_read_tokens": "#6aa36f",
                 "cache_write_tokens": "#9a6fb0"}
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
DISAGREEMENTS_SHOWN = 10  # per field, in the evaluation section
CHARTABLE_MAX = 1e300  # numbers beyond this magnitude are tabled, not charted

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0;
       background: #f6f7f9; }
header { background: #1f2d3d; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #c9d3de; }
nav { padding: 8px 32px; background: #fff; border-bottom: 1px solid #dde2e8; position: sticky; top: 0; z-index: 5; }
nav a { margin-right: 18px; color: #3b6ea8; text-decoration: none; }
main { padding: 8px 32px 48px; max-width: 1200px; }
section { background: #fff; border: 1px solid #dde2e8; border-radius: 6px; padding: 12px 20px; margin: 16px 0; }
h2 { font-size: 18px; margin: 6px 0 12px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #dde2e8; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.card .value { font-size: 20px; font-weight: 600; }
.card .label { color: #667; font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 12px; }
.chart { min-height: 300px; min-width: 0; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e8ebef; vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #805b00; background: #fff8e1; border-left: 3px solid #e0b000; padding: 6px 10px; margin: 6px 0; }
.muted { color: #667; }
code { font-size: 12px; }
"""


def _plotly() -> tuple[Any, Any]:
    """plotly's figure and output modules; a `ConfigError` saying how to install it when it is missing."""
    try:
        import plotly.graph_objects as go
        import plotly.io as pio
    except ImportError:
        raise ConfigError(f"docpipe report draws its charts with plotly, which is not installed: {INSTALL_HINT}") \
            from None
    return go, pio


def _plain(text: str) -> str:
    """Text for plotly to show as it is: plotly reads `<b>`, `<br>`, `<a href>` and entities in labels and titles,
    and decodes these three entities back to the characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-") or "field"


class _Charts:
    """Figures to HTML fragments: one layout for all, stable element ids (`chart-<name>`) for readers and tests."""

    def __init__(self) -> None:
        self.go, self.pio = _plotly()

    def html(self, figure: Any, name: str, *, title: str, x_title: str = "", y_title: str = "documents",
             height_px: int = CHART_HEIGHT_PX) -> str:
        figure.update_layout(
            title={"text": _plain(title), "font": {"size": 14}},
            template="plotly_white",
            height=height_px,
            bargap=0.25,
            margin={"l": 56, "r": 16, "t": 40, "b": 48},
            xaxis_title=_plain(x_title),
            yaxis_title=_plain(y_title),
            showlegend=len(figure.data) > 1,
        )
        body: str = self.pio.to_html(
            figure, include_plotlyjs=False, full_html=False, config=PLOT_CONFIG, div_id=f"chart-{_slug(name)}"
        )
        return f'<div class="chart">{body}</div>'

    def counts(self, counts: ValueCounts) -> str:
        labels = [_plain(label) for label, _ in counts.counts]
        figure = self.go.Figure(self.go.Bar(x=labels, y=[count for _, count in counts.counts], marker_color=ACCENT))
        missing = f" ({counts.missing} empty)" if counts.missing else ""
        return self.html(figure, counts.name, title=f"{counts.name}{missing}")

    def distribution(self, spread: Distribution, *, name: str, title: str, x_title: str) -> str:
        centres = [low / 2 + high / 2 for low, high in zip(spread.edges, spread.edges[1:], strict=False)]
        widths = [high - low for low, high in zip(spread.edges, spread.edges[1:], strict=False)]
        bars = self.go.Bar(x=centres, y=list(spread.counts), width=widths, marker_color=ACCENT,
                           marker_line={"color": "#fff", "width": 1},
                           customdata=list(zip(spread.edges, spread.edges[1:], strict=False)),
                           hovertemplate="%{customdata[0]:.4g} to %{customdata[1]:.4g}: %{y}<extra></extra>")
        figure = self.go.Figure(bars)
        for rank, colour in (("p50", "#6aa36f"), ("p95", "#c0504d")):
            if rank in spread.percentiles:
                figure.add_vline(x=spread.percentiles[rank], line_dash="dash", line_color=colour,
                                 annotation_text=rank, annotation_position="top")
        return self.html(figure, name, title=title, x_title=x_title)

    def curve(self, spread: Distribution, *, name: str, title: str, unit: str) -> str:
        """Value by percentile, on a log scale: a long tail stays readable (latency)."""
        line = self.go.Scatter(x=list(range(len(spread.curve))), y=list(spread.curve), mode="lines",
                               line={"color": ACCENT, "width": 2},
                               hovertemplate="p%{x}: %{y:.4g} " + unit + "<extra></extra>")
        figure = self.go.Figure(line)
        figure.update_yaxes(type="log" if spread.minimum and spread.minimum > 0 else "linear")
        return self.html(figure, name, title=title, x_title="percentile of answered documents", y_title=unit)

    def runs(self, report: Report) -> str:
        labels = [f"{index + 1}. {(run.started_at or '?')[:16].replace('T', ' ')}" for index, run in
                  enumerate(report.runs)]
        costs = self.go.Figure(self.go.Bar(x=labels, y=[run.cost_usd for run in report.runs], marker_color=ACCENT,
                                           hovertemplate="%{x}: $%{y:.4f}<extra></extra>"))
        tokens = self.go.Figure([
            self.go.Bar(x=labels, y=[getattr(run, kind) for run in report.runs], name=kind.replace("_", " "),
                        marker_color=colour)
            for kind, colour in TOKEN_COLOURS.items()
        ])
        tokens.update_layout(barmode="stack")
        return (self.html(costs, "run-cost", title="cost per run (USD)", x_title="run", y_title="USD")
                + self.html(tokens, "run-tokens", title="tokens per run", x_title="run", y_title="tokens"))

    def confusion(self, score: FieldScore) -> str:
        """Expected by answered, one order on both axes, so the right answers are the diagonal."""
        labels = list(score.confusion)
        labels += sorted({label for row in score.confusion.values() for label in row} - set(labels))
        z = [[score.confusion.get(row, {}).get(label, 0) for label in labels] for row in labels]
        shown = [_plain(label) for label in labels]
        figure = self.go.Figure(self.go.Heatmap(z=z, x=shown, y=shown, colorscale="Blues", texttemplate="%{z}",
                                                hovertemplate="expected %{y}, answered %{x}: %{z}<extra></extra>"))
        figure.update_yaxes(autorange="reversed")
        return self.html(figure, f"confusion-{score.name}", title=f"{score.name}: expected (rows) by answered",
                         x_title="answered", y_title="expected", height_px=max(CHART_HEIGHT_PX, 120 + 30 * len(labels)))


# -- tables ----------------------------------------------------------------------------------------


def _table(header: Sequence[str] | None, rows: Iterable[Sequence[Any]], *, numeric: Sequence[int] = ()) -> str:
    """An HTML table, every cell escaped; `numeric` columns right-aligned; no header row when `header` is None."""
    def cell(tag: str, index: int, value: Any) -> str:
        kind = ' class="num"' if index in numeric else ""
        return f"<{tag}{kind}>{escape(str(value))}</{tag}>"

    head = "".join(cell("th", index, name) for index, name in enumerate(header or ()))
    body = "".join("<tr>" + "".join(cell("td", index, value) for index, value in enumerate(row)) + "</tr>"
                   for row in rows)
    return f"<table>{f'<thead><tr>{head}</tr></thead>' if header else ''}<tbody>{body}</tbody></table>"


def _number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 1000 or abs(value) >= 1e12 else f"{value:,.0f}"


def _spread_table(spreads: Sequence[Distribution], *, unit: str = "") -> str:
    ranks = ("p50", "p90", "p95", "p99")
    rows = [
        (spread.name, spread.count, spread.missing, _number(spread.minimum), _number(spread.mean),
         *(_number(spread.percentiles.get(rank)) for rank in ranks), _number(spread.maximum))
        for spread in spreads
    ]
    header = ("field", "values", "empty", "min" + unit, "mean", *ranks, "max")
    return _table(header, rows, numeric=range(1, 10))


def _card(label: str, value: str) -> str:
    return f'<div class="card"><div class="value">{escape(value)}</div><div class="label">{escape(label)}</div></div>'


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def _notes(lines: Iterable[str]) -> str:
    return "".join(f'<p class="note">{escape(line)}</p>' for line in lines)


# -- sections --------------------------------------------------------------------------------------


def _overview(report: Report) -> str:
    tokens = sum(report.tokens.values())
    cards = [
        _card("documents", f"{report.documents:,}"),
        _card("answered ok", f"{report.ok:,}"),
        _card("in error", f"{report.error:,}"),
        _card("cost of these rows", money(report.cost_usd)),
        _card("spent over all runs", money(_spent(report))),
        _card("tokens", f"{tokens:,}"),
    ]
    facts = [("jobs", ", ".join(report.jobs) or "-"), ("models", ", ".join(report.models) or "-"),
             *((kind.replace("_", " "), f"{count:,}") for kind, count in report.tokens.items())]
    waiting = _notes(f"pending: {line}" for line in report.pending)
    return (f'<div class="cards">{"".join(cards)}</div>' + _table(None, facts)
            + waiting + _notes(report.notes))


def _spent(report: Report) -> float | None:
    costs = [run.cost_usd for run in report.runs]
    if not costs or any(cost is None for cost in costs):
        return None
    return sum(cost for cost in costs if cost is not None)


def _chartable(spread: Distribution) -> bool:
    """Whether plotly can draw the values: its axis padding overflows near the largest float (the table shows
    them all the same)."""
    return max(abs(spread.minimum or 0.0), abs(spread.maximum or 0.0)) < CHARTABLE_MAX


def _fields(report: Report, charts: _Charts) -> str:
    if not report.ok:
        return '<p class="muted">No document was answered ok: there is nothing to count.</p>'
    parts = [charts.counts(counts) for counts in report.counts]
    parts += [charts.distribution(spread, name=spread.name, title=spread.name, x_title=spread.name)
              for spread in report.distributions if spread.count and _chartable(spread)]
    body = f'<div class="grid">{"".join(parts)}</div>' if parts else ""
    if report.distributions:
        body += "<h3>Numeric fields</h3>" + _spread_table(report.distributions)
    return body or '<p class="muted">The job has no enum, boolean or numeric field to chart.</p>'


def _runs(report: Report, charts: _Charts) -> str:
    if not report.runs:
        return '<p class="muted">No run summary is saved in this directory.</p>'
    rows = [
        (index + 1, run.started_at or "?", run.run_id, run.mode or "?", run.stopped,
         "?" if run.exit_code is None else run.exit_code, _number(run.wall_s, 3), run.ok, run.errors,
         run.already_done, f"{run.tokens:,}", money(run.cost_usd))
        for index, run in enumerate(report.runs)
    ]
    header = ("#", "started (UTC)", "run", "mode", "ended", "exit", "wall s", "ok", "errors", "already done",
              "tokens", "cost")
    return (f'<div class="grid">{charts.runs(report)}</div>'
            + _table(header, rows, numeric=(0, 5, 6, 7, 8, 9, 10, 11)))


def _latency(report: Report, charts: _Charts) -> str:
    if report.latency is None and not report.ok:
        return '<p class="muted">No document answered ok yet: latency is that of the answers.</p>'
    if report.latency is None:
        return '<p class="muted">No realtime answer: Message Batches do not time single requests.</p>'
    chart = charts.curve(report.latency, name="latency", title="latency by percentile (ms, log scale)", unit="ms")
    return f'<div class="grid">{chart}</div>' + _spread_table([report.latency])


def _errors(report: Report) -> str:
    if not report.errors:
        return '<p class="muted">No document is in error.</p>'
    summary = _table(("error type", "documents"), ((group.error_type, group.count) for group in report.errors),
                     numeric=(1,))
    rows = [(group.error_type, doc["doc_id"], doc["error_message"]) for group in report.errors
            for doc in group.documents]
    more = [f"{group.error_type}: {group.more} more not listed" for group in report.errors if group.more]
    return (summary + _table(("error type", "document", "message"), rows)
            + "".join(f'<p class="muted">{escape(line)}</p>' for line in more))


def _review(report: Report) -> str:
    if not report.review_by:
        return '<p class="muted">No confidence field to sort by (see the notes above).</p>'
    intro = (f'<p class="muted">The {len(report.review)} documents answered with the lowest '
             f'<code>{escape(report.review_by)}</code>, lowest first: check these before the others.</p>')
    columns = report.review_columns
    return intro + _table(columns, ([row[column] for column in columns] for row in report.review),
                          numeric=(1,))


def _evaluation(evaluation: Evaluation, charts: _Charts) -> str:
    intro = (f'<p class="muted">{evaluation.scored} of {evaluation.truth_rows} labelled documents scored; '
             f"{len(evaluation.missing)} without an ok answer. Numbers count as right within "
             f"{evaluation.tolerance:.0%} of the expected value.</p>")
    rows = [
        (score.name, score.type, score.compared, score.matched,
         ", ".join(f"{METRIC_NAMES.get(name, name)} {_number(value)}" for name, value in score.metrics.items()))
        for score in evaluation.fields
    ]
    table = _table(("field", "type", "compared", "right", "scores"), rows, numeric=(2, 3))
    matrices = [charts.confusion(score) for score in evaluation.fields if score.confusion]
    grid = f'<div class="grid">{"".join(matrices)}</div>' if matrices else ""
    wrong = [(score.name, item.doc_id, cell_text(item.expected), cell_text(item.actual))
             for score in evaluation.fields for item in score.disagreements[:DISAGREEMENTS_SHOWN]]
    wrong_table = ("<h3>Answers that differ from the truth (first of each field)</h3>"
                   + _table(("field", "document", "expected", "answered"), wrong)) if wrong else ""
    return intro + table + grid + wrong_table


def render_html(report: Report) -> str:
    """The whole page; `ConfigError` with the install command when plotly is missing."""
    charts = _Charts()
    from plotly.offline import get_plotlyjs

    sections = [
        ("overview", "Overview", _overview(report)),
        ("fields", "Answers", _fields(report, charts)),
        ("review", "Review first", _review(report)),
        ("errors", "Errors", _errors(report)),
        ("runs", "Runs: cost and tokens", _runs(report, charts)),
        ("latency", "Latency", _latency(report, charts)),
    ]
    if report.evaluation is not None:
        sections.insert(2, ("evaluation", "Against the truth file", _evaluation(report.evaluation, charts)))
    nav = "".join(f'<a href="#{anchor}">{escape(title)}</a>' for anchor, title, _ in sections)
    body = "".join(_section(anchor, title, html) for anchor, title, html in sections)
    title = f"docpipe report: {report.out}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f"<header><h1>{escape(title)}</h1><p>generated {escape(report.generated_at)} by docpipe report</p></header>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>\n"
    )


def write_page(path: Path, page: str) -> None:
    """The page written whole or not at all (a temporary file beside it, then renamed over it)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(page, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise EnvironmentFailure(f"cannot write the report to {path}: {exc.strerror or exc}; give another --to",
                                 path=path) from None
