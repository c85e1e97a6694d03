"""What apply will do for one change, in this backend's words: the plan shows it. Pure.

From the change (what is trained, which model after), the endpoint's rollout settings
and the lines ``observe`` gave about the live endpoint (which deployment serves what,
at what weight), so a reviewer sees train → register → deploy → smoke → shift in steps
→ remove, or, for a revert, only the shift back to the kept deployment.
"""

from __future__ import annotations

import re

from reconciler import fingerprint, model, plan
from reconciler.providers.azureml import backend, live, names

FULL = 100  # percent
DEPLOYMENT_LINE = re.compile(r"^deployment (?P<name>[^:]+): (?P<weight>\d+)%, model (?P<ref>\S+)")


def steps(
    ep: model.Endpoint, state: model.ServiceState | None, change: plan.Change
) -> tuple[str, ...]:
    """The ordered steps apply takes for ``change`` on ``ep``."""
    settings = backend.online(ep)
    after = change.after or plan.ABSENT
    fp = after.fingerprint or ""
    out: list[str] = []
    if state is None:
        out.append(f"create online endpoint {ep.web_service} from azureml.create.endpoint")
    if change.train:
        out.append(f"train model {fingerprint.short(fp)} as command job {names.job_name(fp)}")
        out.append(
            f"register it as a model version tagged with fingerprint {fingerprint.short(fp)}"
        )
    kept = _kept(state, after.model_uri)
    if kept is None:
        source = "the serving deployment" if state is not None else "azureml.create.deployment"
        target, weight = names.free_deployment_name(fp, _deployments(state)), 0
        out.append(
            f"deploy it as {target} at 0% traffic (cloned from {source}, "
            "only the model changed) and wait for Succeeded"
        )
    else:
        target, weight = kept
    if settings.smoke is not None and weight < FULL:
        out.append(f"smoke-test {target} alone with the sample request")
    if settings.mirror and weight == 0 and state is not None:
        out.append(f"mirror {settings.mirror}% of live traffic to {target} for {settings.hold:g}s")
    out.append(_shift(target, weight, settings, first=state is None))
    if kept is None and state is not None:
        out.append(f"remove retrain's idle deployments beyond the newest {settings.keep}")
    return tuple(out)


def _kept(state: model.ServiceState | None, model_uri: str | None) -> tuple[str, int] | None:
    """The live deployment already serving ``model_uri`` and its weight, if there is one."""
    if state is None or model_uri is None:
        return None
    wanted = live.short_model(model_uri)
    for line in state.detail:
        m = DEPLOYMENT_LINE.match(line)
        if m and m["ref"].rstrip(",") == wanted:
            return m["name"], int(m["weight"])
    return None


def _deployments(state: model.ServiceState | None) -> list[str]:
    """The names of the live deployments ``observe`` listed."""
    lines = state.detail if state is not None else ()
    return [m["name"] for m in map(DEPLOYMENT_LINE.match, lines) if m]


def _shift(target: str, weight: int, settings: backend.OnlineEndpoint, *, first: bool) -> str:
    if first:
        return f"give {target} 100% of the traffic, with retrain's tags"
    schedule = [s for s in settings.steps if s > weight] or [FULL]
    held = (
        f", holding {settings.hold:g}s between steps" if settings.hold and len(schedule) > 1 else ""
    )
    route = " → ".join(f"{s}%" for s in schedule)
    return f"shift traffic to {target}: {route}{held} (tags move with the step to 100%)"
