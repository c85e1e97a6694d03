"""The status page as one HTML document. Pure.

Server-rendered with the charts inline (``web.svg``) and one stylesheet that
``retrain`` serves itself: no script, no CDN, nothing fetched from elsewhere. The
page's Content-Security-Policy (``page.CSP``) forbids scripts and inline styles
outright, so even a name that got past escaping could not run; every text from a
manifest, a history or a store goes through ``svg.esc`` anyway. Element ids are
numbered (``ep-3``), never made from names.
"""

from __future__ import annotations

from reconciler import fingerprint, status
from reconciler.web import svg, view
from reconciler.web import trend as trending
from reconciler.web.svg import esc

REFRESH = 30  # seconds between reloads: a page left open follows applies and drift
COLUMNS = ("endpoint", "state", "version", "fingerprint", "gate metric", "last change", "drift")


def page(snap: view.Snapshot) -> str:
    """The whole document for ``snap``."""
    return _document(
        "retrain status",
        [
            "<header><h1>retrain status</h1>",
            f'<p class="meta">{esc(snap.title)} · backend {esc(snap.backend)} · '
            f'read at <time datetime="{esc(snap.taken)}">{esc(snap.taken)}</time> · '
            f"reloads every {REFRESH} s</p></header>",
            "<main>",
            _table(snap.endpoints),
            '<div class="trends">',
            *(_trend_section(i, ev) for i, ev in enumerate(snap.endpoints)),
            "</div>",
            "</main>",
        ],
    )


def error_page(message: str) -> str:
    """What the page shows when the manifest or the backend cannot be read now: the same
    one line the CLI prints, and it tries again on the next reload."""
    return _document(
        "retrain status: error",
        [
            "<header><h1>retrain status</h1></header>",
            f'<main><p class="error">Error: {esc(message)}</p></main>',
        ],
    )


def _document(title: str, body: list[str]) -> str:
    head = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{REFRESH}">'
        f"<title>{esc(title)}</title>"
        '<link rel="stylesheet" href="/static/page.css">'
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
        "</head><body>"
    )
    return head + "".join(body) + "</body></html>\n"


def _table(views: tuple[view.EndpointView, ...]) -> str:
    if not views:
        return '<p class="empty">No endpoints in the manifest.</p>'
    head = "".join(f'<th scope="col">{esc(c)}</th>' for c in COLUMNS)
    rows = "".join(_row(i, ev) for i, ev in enumerate(views))
    return f'<table class="endpoints"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _row(index: int, ev: view.EndpointView) -> str:
    r = ev.row
    state = str(r.state)
    cells = [
        f'<th scope="row"><a href="#ep-{index}">{esc(r.endpoint)}</a>'
        f'<div class="sub">{esc(r.web_service)}</div></th>',
        f'<td><span class="state {_state_class(r.state)}">{esc(state)}</span></td>',
        f"<td>{esc(r.version)}</td>",
        _fingerprint_cell(r.fingerprint),
        f"<td>{_metric(ev)}</td>",
        f"<td>{_last_change(ev)}</td>",
        f'<td class="{"drift" if ev.drifted else "no-drift"}">'
        f"{'drifted' if ev.drifted else 'none'}</td>",
    ]
    return f'<tr class="endpoint" data-endpoint="{esc(r.endpoint)}">{"".join(cells)}</tr>'


def _state_class(state: status.State) -> str:
    """A class per state for its colour: the enum's name, not its words."""
    return f"state-{state.name.lower().replace('_', '-')}"


def _fingerprint_cell(fp: str) -> str:
    if not fp:
        return "<td>-</td>"
    return f'<td><code title="{esc(fp)}">{esc(fingerprint.short(fp))}</code></td>'


def _metric(ev: view.EndpointView) -> str:
    if ev.metric is None:
        return '<span class="none">no gate</span>'
    value = f"{ev.value:.4g}" if ev.value is not None else "-"
    return f'<span class="metric-name">{esc(ev.metric)}</span> <b>{esc(value)}</b>'


def _last_change(ev: view.EndpointView) -> str:
    when = ev.row.deployed
    if when == status.NONE:
        return '<span class="none">none recorded</span>'
    action = f"{esc(ev.last_action)} " if ev.last_action else ""
    return f'{action}<time datetime="{esc(when)}">{esc(when)}</time>'


def _trend_section(index: int, ev: view.EndpointView) -> str:
    t = ev.trend
    drawn = svg.chart(t, ident=f"ep-{index}-chart")
    if t.metric is None:
        body = '<p class="none">No gate: no metric to chart.</p>'
    elif not t.points:
        body = '<p class="none">No history yet.</p>'
    else:
        body = (drawn or '<p class="none">No recorded value of the metric.</p>') + _points(t)
    blocked = len(t.failed)
    tail = f' <span class="blocked-count">{blocked} gate-blocked</span>' if blocked else ""
    return (
        f'<section class="trend" id="ep-{index}" data-endpoint="{esc(ev.row.endpoint)}">'
        f"<h2>{esc(ev.row.endpoint)}{tail}</h2>{body}</section>"
    )


def _points(t: trending.Trend) -> str:
    """The chart's points as a table: the same facts for screen readers and copying."""
    rows = []
    for p in reversed(t.points):  # newest first, as a history is read
        value = f"{p.value:.4g}" if p.value is not None else "-"
        verdict = "passed" if p.passed else "gate blocked"
        rows.append(
            f'<tr class="{p.kind} {"passed" if p.passed else "failed"}">'
            f'<td><time datetime="{esc(p.time)}">{esc(p.time)}</time></td>'
            f"<td>{esc(p.kind)}</td>"
            f'<td><code title="{esc(p.fingerprint)}">{esc(fingerprint.short(p.fingerprint))}'
            f"</code></td><td>{esc(p.version or '-')}</td><td>{esc(value)}</td>"
            f"<td>{esc(verdict)}</td><td>{esc(p.note)}</td></tr>"
        )
    head = "".join(
        f'<th scope="col">{esc(c)}</th>'
        for c in ("time", "model", "fingerprint", "version", t.metric or "metric", "gate", "note")
    )
    return (
        f'<details><summary>{len(t.points)} models</summary><table class="points">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></details>"
    )
