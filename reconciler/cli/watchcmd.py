"""``retrain watch``: the controller command. Flags → a ``watch.loop.Controller``, the
health and metrics server, signal handling. The loop itself is in ``reconciler.watch``,
imported when the command runs: every other command starts without loading the HTTP
server, Starlette and the Prometheus client."""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from reconciler import engine, errors, settings
from reconciler.cli import options

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from reconciler.watch import loop, notices

DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}
DEFAULT_LISTEN = "127.0.0.1:9180"  # loopback: metrics are not for the world; a free port
ENV_REF = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$")


def seconds(_ctx: click.Context | None, _param: click.Parameter | None, value: str) -> float:
    """``90``, ``90s``, ``5m``, ``1h`` → seconds."""
    found = DURATION.match(value.strip())
    if not found:
        raise click.BadParameter(f"{value!r} is not a duration such as 30s, 5m or 1h")
    return float(found.group(1)) * UNITS[found.group(2)]


def webhook_url(env: options.Env, reference: str | None) -> str | None:
    """The webhook's URL from ``${env:NAME}`` (a literal URL is refused: it is a secret)."""
    if reference is None:
        return None
    found = ENV_REF.match(reference)
    if not found:
        raise click.BadParameter(
            "give the URL by reference, as '${env:NAME}' (a webhook URL is a credential)",
            param_hint="--webhook",
        )
    url = env.vars.get(found.group(1), "")
    if not url.startswith(("http://", "https://")):
        raise errors.ReconcilerError(
            f"--webhook: environment variable {found.group(1)} is "
            f"{'not set' if not url else 'not an http(s) URL'}"
        )
    return url


@click.command(name="watch")
@options.manifest_option
@click.option(
    "--auto-apply", is_flag=True, help="Apply what each plan says (default: report only)."
)
@click.option(
    "--interval",
    default="5m",
    show_default=True,
    callback=seconds,
    metavar="DURATION",
    help="Reconcile this often when nothing changed (0: only on changes and schedules).",
)
@click.option(
    "--poll",
    default="2s",
    show_default=True,
    callback=seconds,
    metavar="DURATION",
    help="How often the manifest, the input files and git HEAD are looked at.",
)
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    metavar="HOST:PORT",
    show_default=True,
    help="HOST:PORT for /healthz, /readyz and /metrics ('off': no server; port 0: any free).",
)
@click.option(
    "--webhook",
    "webhook_ref",
    metavar="'${env:NAME}'",
    help="Post drift, failures, gate blocks and promotions to this Slack-compatible webhook.",
)
@click.option(
    "--backoff",
    "backoff_base",
    default="10s",
    show_default=True,
    callback=seconds,
    metavar="DURATION",
    help="Wait after an endpoint's first failure; doubled after each further one.",
)
@click.option(
    "--backoff-max",
    default="15m",
    show_default=True,
    callback=seconds,
    metavar="DURATION",
    help="The longest wait between retries of a failing endpoint.",
)
@click.option(
    "--lock-timeout",
    default="0s",
    show_default=True,
    callback=seconds,
    metavar="DURATION",
    help="How long a reconcile waits for another apply's lock before trying at the next poll.",
)
@click.pass_obj
def watch_cmd(
    env: options.Env,
    manifest: Path | None,
    state_dir: Path | None,
    auto_apply: bool,
    interval: float,
    poll: float,
    listen: str,
    webhook_ref: str | None,
    backoff_base: float,
    backoff_max: float,
    lock_timeout: float,
) -> None:
    """Run as a controller: plan (and with --auto-apply, apply) on an interval, when the
    manifest, an input file or git HEAD changes, and on trainers' cron schedules.

    A failing endpoint backs off (exponentially, the others go on); the loop never stops
    on a failure. SIGTERM finishes the reconcile under way, then exits 0 (a second one
    stops at once). Serves /healthz, /readyz and Prometheus /metrics on --listen.
    """
    from reconciler.watch import backoff, loop

    env.live = False  # a controller's log is lines, never a live table
    url = webhook_url(env, webhook_ref)
    if url:
        env.redactor = env.redactor.extend([url])
    config = options.settings_for(
        env, manifest=manifest, state_dir=state_dir, lock_timeout=lock_timeout
    )
    policy = backoff.Policy(base=max(backoff_base, 0.001), cap=max(backoff_max, backoff_base))
    controller = loop.Controller(
        config=config,
        options=loop.Options(
            auto_apply=auto_apply, interval=interval or None, poll=max(poll, 0.05), policy=policy
        ),
        open=lambda cfg: _open(env, cfg),
        log=env.err,
        notify=_notify(env, url),
    )
    stop = threading.Event()
    with _serving(env, controller, listen, config), _on_sigterm(env, stop):
        env.err(f"Watching {config.manifest} ({'auto-apply' if auto_apply else 'report only'}).")
        controller.run(stop)
    env.err("Stopped.")


def _open(env: options.Env, config: settings.Settings) -> engine.Session:
    """A session as every command opens one (its redactor becomes the output's)."""
    return options.session_for(env, config, warn=False)


def _notify(env: options.Env, url: str | None) -> Callable[[notices.Notice], None]:
    from reconciler.watch import webhook

    if url is None:
        return lambda _notice: None
    return webhook.poster(url, warn=env.err)


@contextmanager
def _serving(
    env: options.Env, controller: loop.Controller, listen: str, config: settings.Settings
) -> Iterator[None]:
    """The health and metrics server for the loop's life (none with ``--listen off``)."""
    from reconciler.watch import server

    if listen == "off":
        yield
        return
    sock = server.bind(listen)
    running = server.Server(
        server.app(controller.health, controller.meters.text, extra_routes(env, config)), sock
    )
    running.start()
    env.err(f"Serving the status page, /healthz, /readyz and /metrics on {running.address}")
    try:
        yield
    finally:
        running.stop()


def extra_routes(env: options.Env, config: settings.Settings) -> list[BaseRoute]:
    """The status page at ``/`` (and its JSON at ``/api/status``) on the controller's
    server, read through a session of its own per view, as ``retrain page`` serves it."""
    from reconciler.web import page, source

    return page.page_routes(
        source.ManifestSource(lambda: engine.open_session(config, env=env.vars))
    )


@contextmanager
def _on_sigterm(env: options.Env, stop: threading.Event) -> Iterator[None]:
    """SIGTERM sets ``stop`` (the reconcile under way finishes); a second one, or Ctrl-C,
    stops at once, as for any command."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        env.err("SIGTERM: finishing the step under way, then stopping.")
        stop.set()

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, handler) if in_main else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
