"""The page escapes every name it did not write: endpoint, web service, metric, actor."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html import parser as html_parser

from reconciler import model, status
from reconciler.web import html, svg, view
from reconciler.web import trend as trending

HOSTILE_ENDPOINT = "<script>alert('endpoint')</script>"
HOSTILE_METRIC = '"><img src=x onerror="alert(1)">R²'
HOSTILE_SERVICE = "svc</td><td>&amp;"
HOSTILE_ACTOR = "<b onmouseover=alert(2)>eve</b>"


class Elements(html_parser.HTMLParser):
    """Every element and attribute the browser would build, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def hostile_snapshot() -> view.Snapshot:
    gate = model.Gate(HOSTILE_METRIC, minimum=0.6, max_regression=0.05)
    champion = model.HistoryEntry(
        time="2026-11-01T10:00:00+00:00",
        endpoint=HOSTILE_ENDPOINT,
        web_service=HOSTILE_SERVICE,
        action="create",
        fingerprint="a" * 64,
        version="<v1>",
        model_uri="m",
        previous_uri=None,
        previous_fingerprint=None,
        metrics=model.frozen_map({HOSTILE_METRIC: 0.8}),
        actor=HOSTILE_ACTOR,
    )
    loser = model.ModelRecord(
        "b" * 64,
        "m2",
        {HOSTILE_METRIC: 0.3},
        "2026-11-02T10:00:00+00:00",
        {"endpoints": [HOSTILE_ENDPOINT]},
    )
    row = status.Row(
        HOSTILE_ENDPOINT,
        HOSTILE_SERVICE,
        status.State.DRIFTED,
        "<v1>",
        "a" * 64,
        {HOSTILE_METRIC: 0.8},
        champion.time,
    )
    ep = view.EndpointView(
        row, HOSTILE_METRIC, "create", trending.trend(HOSTILE_ENDPOINT, gate, [champion], [loser])
    )
    return view.Snapshot("<title>m.yaml", "local", "2026-11-03T00:00:00+00:00", (ep,))


def test_hostile_names_are_text_never_markup() -> None:
    parsed = Elements()
    parsed.feed(html.page(hostile_snapshot()))
    assert "script" not in parsed.tags
    assert "img" not in parsed.tags
    assert not [name for name, _ in parsed.attrs if name.startswith("on")]
    text = "".join(parsed.text)
    for name in (HOSTILE_ENDPOINT, HOSTILE_METRIC, HOSTILE_SERVICE):
        assert name in text  # shown as written, as text
    assert f"create by {HOSTILE_ACTOR}" in text


def test_hostile_names_keep_the_chart_well_formed_svg() -> None:
    drawn = svg.chart(hostile_snapshot().endpoints[0].trend, ident="ep-0-chart")
    root = ET.fromstring(drawn)  # raises on broken markup
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    assert root.find(f"{ns}title") is not None
    assert HOSTILE_ENDPOINT in (root.findtext(f"{ns}title") or "")
    blocked = [el for el in root.iter(f"{ns}path") if el.get("class") == "blocked"]
    assert len(blocked) == 2  # the challenger's cross and the legend's


def test_ids_are_numbered_never_made_from_names() -> None:
    parsed = Elements()
    parsed.feed(html.page(hostile_snapshot()))
    ids = [value for name, value in parsed.attrs if name == "id"]
    assert ids and all(value and value.startswith("ep-0") for value in ids)


def test_an_error_page_escapes_the_message() -> None:
    parsed = Elements()
    parsed.feed(html.error_page(f"no endpoint named {HOSTILE_ENDPOINT}"))
    assert "script" not in parsed.tags
    assert f"Error: no endpoint named {HOSTILE_ENDPOINT}" in "".join(parsed.text)
