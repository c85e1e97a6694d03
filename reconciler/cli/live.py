"""Progress people can watch: a live table on a terminal, plain lines everywhere else.

The engine reports through one sink (``reconciler.progress``). On a terminal (stderr
a TTY, not ``CI=true``, not ``TERM=dumb``, not ``--log-format json``) this shows a rich
live table, one row per training job and endpoint, with its state (queued, running,
polling the backend's job status, gating, rollout, done, failed, stopped), its elapsed
time ticking while it runs (the heartbeat) and its latest detail; other lines print
above the table, and the table's last frame stays as the final summary. Anywhere else
each event prints its plain line, exactly as before this display existed, so CI logs
and the tests that read them are unchanged. Both read the same ``Tracker``, which also
gives Ctrl-C's account of what finished and what was stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from reconciler import progress

REFRESH_PER_SECOND = 4  # the elapsed column ticks this often: alive, without flicker
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"  # one frame per tenth of a second, for rows still running
DETAIL_WIDTH = 60  # characters of a row's detail; the plain log has every line whole
STATE_STYLE = {
    progress.Kind.QUEUED: "dim",
    progress.Kind.RUNNING: "cyan",
    progress.Kind.POLLING: "cyan",
    progress.Kind.GATING: "yellow",
    progress.Kind.ROLLOUT: "yellow",
    progress.Kind.DONE: "green",
    progress.Kind.FAILED: "red",
    progress.Kind.STOPPED: "red",
}


def wants_live(vars: Mapping[str, str], *, tty: bool, log_format: str) -> bool:
    """Whether to draw the live table: a terminal a person watches, not a CI log."""
    ci = vars.get("CI", "").strip().lower() in ("true", "1", "yes")
    return tty and not ci and vars.get("TERM") != "dumb" and log_format == "text"


class Display:
    """The progress sink the CLI hands the engine. ``console`` None: plain lines only
    (through ``plain``, which is the CLI's stderr writer); ``scrub`` masks secrets in
    what the live table shows, as ``plain`` does for lines."""

    def __init__(
        self,
        *,
        plain: Callable[[str], None],
        scrub: Callable[[str], str],
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plain = plain
        self.scrub = scrub
        self.console = console
        self.clock = clock
        self.tracker = progress.Tracker()
        self._live: Live | None = None
        # Jobs report from worker threads while rich redraws from its own thread.
        self._rows = threading.Lock()  # the tracker
        self._screen = threading.Lock()  # starting, printing above and stopping the table

    def __call__(self, item: str | progress.Event) -> None:
        # The tracker under ``_rows`` (rich's refresh thread reads it through ``table``);
        # rich itself only outside it, since rich holds its own lock while it calls
        # ``table``: holding both the other way round would deadlock.
        with self._rows:
            now = self.clock()
            if isinstance(item, str):
                taken = self.tracker.note(item, now)
            else:
                self.tracker.apply(item, now)
        if isinstance(item, str):
            if not (taken and self._live is not None):  # else the row it names shows it
                self._print(item)
        elif self.console is None:
            if item.line:
                self.plain(item.line)
        else:
            self._draw()

    def _draw(self) -> None:
        with self._screen:
            if self._live is None:
                self._live = Live(
                    console=self.console,
                    get_renderable=self.table,
                    refresh_per_second=REFRESH_PER_SECOND,
                    transient=False,
                    redirect_stdout=False,
                    redirect_stderr=False,
                )
                self._live.start()
            self._live.refresh()

    def _print(self, line: str) -> None:
        with self._screen:
            if self._live is None or self.console is None:
                self.plain(line)
            else:
                self.console.print(Text(self.scrub(line)))

    def close(self) -> None:
        """Stop drawing; the last frame stays on the terminal as the summary."""
        with self._screen:
            if self._live is not None:
                self._live.stop()
                self._live = None

    def interrupted(self) -> list[str]:
        """Ctrl-C's account: what finished, what was stopped."""
        with self._rows:
            return self.tracker.interrupted(self.clock())

    def table(self) -> Table:
        """The rows as they stand now (rich calls this at every refresh)."""
        with self._rows:
            return self._table()

    def _table(self) -> Table:
        now = self.clock()
        frame = SPINNER[int(now * 10) % len(SPINNER)]
        table = Table(box=None, pad_edge=False, show_edge=False)
        for column in ("", "job", "state", "elapsed", "detail"):
            table.add_column(column, no_wrap=column != "detail")
        for row in self.tracker.rows.values():
            running = row.state not in progress.FINAL and row.state is not progress.Kind.QUEUED
            detail = self.scrub(row.detail)
            table.add_row(
                frame if running else _mark(row.state),
                self.scrub(row.subject),
                Text(str(row.state), style=STATE_STYLE.get(row.state, "")),
                "" if row.state is progress.Kind.QUEUED else f"{row.elapsed(now):.1f}s",
                Text(detail if len(detail) <= DETAIL_WIDTH else detail[: DETAIL_WIDTH - 1] + "…"),
            )
        return table


def _mark(state: progress.Kind) -> str:
    if state is progress.Kind.DONE:
        return "✓"
    return "·" if state is progress.Kind.QUEUED else "✗"
