"""Traffic rules of an online endpoint, checked on every endpoint PUT.

Sources: the swagger (``OnlineEndpoint.traffic``: "Traffic values need to sum to 100";
``mirrorTraffic``: "need to sum to utmost 50") and Microsoft Learn "Perform safe rollout of new
deployments" (MicrosoftDocs/azure-docs ``how-to-safely-rollout-online-endpoints.md``): "The total
traffic percentage must be either 0 percent, to disable traffic, or 100 percent", "You can mirror
traffic to only one deployment in an endpoint", "The maximum percentage of traffic you can mirror
is 50 percent", "You can configure a deployment to receive only live traffic or mirrored traffic,
not both", and "You can't delete a deployment that has live traffic allocated to it".
A deployment absent from ``traffic`` has 0 (the map is a partial function).

The error codes for these refusals are not documented; the fake answers MFE's usual 400
``UserError`` with ``innerError.code`` ``BadArgument`` (inference) and a message naming the
offending deployment or total.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# swagger: mirror traffic "need to sum to utmost 50"; the docs give the same cap.
MAX_MIRROR_PERCENT = 50
LIVE_TOTALS = (0, 100)  # docs: "either 0 percent, to disable traffic, or 100 percent"


def weights(raw: Any) -> dict[str, int]:
    """A stored traffic map as {name: int}; null or absent is empty (every weight 0)."""
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): int(v) for k, v in raw.items() if v is not None}


def weight_of(raw: Any, deployment: str) -> int:
    """A deployment's weight, matching its name case-insensitively; absent is 0."""
    low = deployment.lower()
    return sum(v for k, v in weights(raw).items() if k.lower() == low)


def check(traffic: Any, mirror: Any, deployments: Iterable[str]) -> str | None:
    """The first broken rule as a message, or None when the maps are acceptable."""
    known = {d.lower() for d in deployments}
    live, shadow = weights(traffic), weights(mirror)
    for label, table in (("traffic", live), ("mirrorTraffic", shadow)):
        for name, value in table.items():
            if name.lower() not in known:
                return f"{label} names deployment {name!r}, which does not exist in this endpoint."
            if not 0 <= value <= 100:  # a percentage
                return f"{label} of deployment {name!r} must be between 0 and 100, got {value}."
    total = sum(live.values())
    if total not in LIVE_TOTALS:
        return f"Traffic values need to sum to 100 (or 0 to disable traffic); they sum to {total}."
    mirrored = {k: v for k, v in shadow.items() if v > 0}
    if sum(mirrored.values()) > MAX_MIRROR_PERCENT:
        return (
            f"Mirror traffic values need to sum to utmost {MAX_MIRROR_PERCENT}; "
            f"they sum to {sum(mirrored.values())}."
        )
    if len(mirrored) > 1:
        return "Traffic can be mirrored to only one deployment in an endpoint."
    for name in mirrored:
        if weight_of(live, name) > 0:
            return f"Deployment {name!r} cannot receive both live traffic and mirrored traffic."
    return None
