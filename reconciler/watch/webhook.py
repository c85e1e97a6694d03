"""The optional webhook: one Slack-compatible JSON body (``{"text": ...}``) per notice.

Slack, Mattermost, Rocket.Chat, Teams workflows and most chat tools take that body on
an incoming webhook. Posted with the standard library (this is one small POST; the
project's HTTP stack is for the cloud backends). A webhook that fails is a warning in the
log, never a failed reconcile. Its URL is a secret (it is the credential): it comes
only from ``${env:NAME}`` and is never printed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

from reconciler.watch import notices

TIMEOUT = 10  # seconds: a chat service that takes longer is down; the loop must go on


def poster(url: str, *, warn: Callable[[str], None]) -> Callable[[notices.Notice], None]:
    """A function that posts one notice to ``url``, warning (never raising) on failure."""

    def post(notice: notices.Notice) -> None:
        body = json.dumps({"text": notice.message()}).encode()
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                response.read()
        except urllib.error.HTTPError as e:
            warn(f"Warning: webhook answered {e.code} to the {notice.kind} notice")
        except (OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or type(e).__name__
            warn(f"Warning: webhook not reached for the {notice.kind} notice: {reason}")

    return post
