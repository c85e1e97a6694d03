"""Blue/green on one online endpoint: a new deployment beside the champion, traffic in steps.

The new model goes to a deployment cloned from the serving one (every field kept but
``properties.model`` and retrain's tags), at 0 %; once it is Succeeded, an optional
smoke request is sent to it alone (the ``azureml-model-deployment`` header), and an
optional share of live traffic is mirrored to it for one hold; then the
endpoint is read and written back with only ``traffic`` changed, once per step of the
manifest's schedule, holding between steps. The ownership tags change in the same
PUT that gives the new deployment 100 %, so they always name what serves.

Level-based, so crash-safe: each run starts from live state. The deployment already
serving the wanted model is reused (a revert, or a run resumed after a crash: no
second deployment), and the schedule resumes at the first step above its live
weight. Any failure (the deployment ending Failed, the smoke test, a refused write,
a timeout) puts all traffic back on the champion and says why. Once the new
deployment holds 100 %, retrain's older deployments beyond ``keep`` are deleted (a
deployment retrain did not make is never deleted).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from typing import Any

from reconciler import errors, model
from reconciler.providers.azureml import arm, backend, live, names

FULL = 100  # percent
READ_ONLY = ("id", "name", "type", "systemData")
DEPLOYMENT_HEADER = "azureml-model-deployment"  # routes a scoring request to one deployment
OPERATION_TIMEOUT = 3600.0  # seconds a deployment may take to provision: an hour is stuck


def endpoint_path(name: str) -> str:
    return f"/onlineEndpoints/{name}"


class Rollout:
    """Reads an endpoint and its deployments; rolls a model out on it."""

    def __init__(
        self,
        ws: arm.Workspace,
        *,
        log: Callable[[str], None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ws = ws
        self.log = log
        self.sleep = sleep

    def read(self, name: str) -> live.Live | None:
        """One GET of the endpoint, one list of its deployments; None when it is missing."""
        found = self.ws.get(endpoint_path(name), f"GET online endpoint {name}")
        if found is None:
            return None
        items = self.ws.list(f"{endpoint_path(name)}/deployments", f"list deployments of {name}")
        return live.Live(found, {str(d.get("name")): d for d in items})

    # -- create ------------------------------------------------------------------
    def create(self, ep: model.Endpoint, model_id: str, tags: Mapping[str, str]) -> None:
        """Create the missing endpoint from the manifest's body, then roll the model out
        on it (its first deployment from the manifest's deployment body)."""
        template = backend.online(ep).create
        if template is None:
            raise errors.ProviderError("no azureml.create to create it from", where=ep.web_service)
        body = copy.deepcopy(dict(template["endpoint"]))
        body.setdefault("properties", {})["traffic"] = {}
        body["tags"] = {**(body.get("tags") or {}), model.TAG_MANAGED_BY: model.MANAGED_BY}
        self.ws.put_and_wait(
            endpoint_path(ep.web_service),
            body,
            f"PUT online endpoint {ep.web_service}",
            OPERATION_TIMEOUT,
        )
        self.log(f"{ep.name}: created online endpoint {ep.web_service}")
        self.apply(ep, model_id, tags)

    # -- roll out ----------------------------------------------------------------
    def apply(self, ep: model.Endpoint, model_id: str, tags: Mapping[str, str]) -> None:
        """Bring ``model_id`` to 100 % of ``ep``'s traffic, from wherever it stands."""
        state = self.read(ep.web_service)
        if state is None:
            raise errors.ProviderError("the online endpoint does not exist", where=ep.web_service)
        target = state.with_model(model_id)
        champion = state.leader(besides=target)
        try:
            if target is None or state.state_of(target) != "Succeeded":
                target = self._deploy(ep, state, target, model_id, tags, champion)
            settings = backend.online(ep)
            if settings.smoke is not None and state.traffic.get(target, 0) < FULL:
                self._smoke(ep, state, target, settings.smoke)
            self._shift(ep, target, champion, settings, tags, state.traffic.get(target, 0))
        except errors.ProviderError as e:
            if champion is None:
                raise
            self._restore(ep, champion, target)
            raise errors.ProviderError(
                f"rollout failed: {e}; all traffic is back on {champion}", where=ep.web_service
            ) from e
        self._prune(ep, target, backend.online(ep).keep)

    def _deploy(
        self,
        ep: model.Endpoint,
        state: live.Live,
        existing: str | None,
        model_id: str,
        tags: Mapping[str, str],
        champion: str | None,
    ) -> str:
        """A deployment of ``model_id`` cloned from the champion (or the endpoint's only
        deployment, or the manifest's template), at 0 %, waited for until Succeeded."""
        name = existing or names.free_deployment_name(
            tags[model.TAG_FINGERPRINT], state.deployments
        )
        source = existing or champion or next(iter(sorted(state.deployments)), None)
        template: Any = state.deployments.get(source) if source else None
        if template is None:
            template = (backend.online(ep).create or {}).get("deployment")
        if template is None:
            raise errors.ProviderError(
                "no deployment to clone and no azureml.create.deployment", where=ep.web_service
            )
        body = clone(template, model_id, ep.name, tags)
        what = f"PUT deployment {ep.web_service}/{name}"
        self.log(f"{ep.name}: deploying {live.short_model(model_id)} as {name} (0% traffic)")
        final = self.ws.put_and_wait(
            f"{endpoint_path(ep.web_service)}/deployments/{name}", body, what, OPERATION_TIMEOUT
        )
        status = str((final.get("properties") or {}).get("provisioningState", ""))
        if status != "Succeeded":
            raise errors.ProviderError(f"deployment {name} ended {status}", where=ep.web_service)
        return name

    def _smoke(self, ep: model.Endpoint, state: live.Live, target: str, request: Any) -> None:
        """One scoring request to ``target`` alone: 200, and one answer per row sent."""
        uri = str(state.properties.get("scoringUri") or "")
        if not uri:
            raise errors.ProviderError("the endpoint has no scoringUri", where=ep.web_service)
        answer = self.ws.client.request(
            "POST",
            uri,
            what=f"smoke test of deployment {target}",
            token=self._scoring_token(ep, state),
            body=request,
            ok=(200,),
            idempotent=True,  # scoring changes nothing
            headers={DEPLOYMENT_HEADER: target},
        )
        rows = _rows(request)
        got = _rows(answer.json())
        if rows is not None and got != rows:
            raise errors.ProviderError(
                f"smoke test of deployment {target}: sent {rows} rows, got {got} answers",
                where=ep.web_service,
            )
        self.log(f"{ep.name}: smoke test of {target} passed")

    def _scoring_token(self, ep: model.Endpoint, state: live.Live) -> str:
        """The endpoint's key (authMode Key) or an AML token (AMLToken); else ours."""
        mode = str(state.properties.get("authMode", ""))
        suffix = endpoint_path(ep.web_service)
        if mode == "Key":
            found = self.ws.call(
                "POST",
                self.ws.cfg.url(f"{suffix}/listKeys"),
                "list endpoint keys",
                idempotent=True,
            ).json()
            return str(found.get("primaryKey", ""))
        if mode == "AMLToken":
            found = self.ws.call(
                "POST", self.ws.cfg.url(f"{suffix}/token"), "get endpoint token", idempotent=True
            ).json()
            return str(found.get("accessToken", ""))
        return self.ws.token()

    def _shift(
        self,
        ep: model.Endpoint,
        target: str,
        champion: str | None,
        settings: backend.OnlineEndpoint,
        tags: Mapping[str, str],
        current: int,
    ) -> None:
        """The schedule from the first step above ``target``'s live weight ``current``;
        the tags ride on the step to 100 %."""
        steps = [s for s in settings.steps if s > current] if champion else [FULL]
        if not steps:  # already at 100 %: only the tags may differ
            steps = [FULL]
        if champion and settings.mirror and current == 0:
            self._set_traffic(ep, {champion: FULL}, None, mirror={target: settings.mirror})
            self.log(f"{ep.name}: mirroring {settings.mirror}% of live traffic to {target}")
            self.sleep(settings.hold)
        for step in steps:
            weights = {target: step} | ({champion: FULL - step} if champion else {})
            self._set_traffic(ep, weights, tags if step == FULL else None)
            self.log(f"{ep.name}: traffic {target} {step}%")
            if step < FULL and settings.hold:
                self.sleep(settings.hold)

    def _set_traffic(
        self,
        ep: model.Endpoint,
        weights: Mapping[str, int],
        tags: Mapping[str, str] | None,
        *,
        mirror: Mapping[str, int] | None = None,
        unmirror: str | None = None,
    ) -> None:
        """GET the endpoint, change only ``traffic`` (and the tags when given), PUT it.
        ``mirrorTraffic`` keeps its entries but for a deployment that now gets live
        traffic (the service allows one or the other) and ``unmirror``; ``mirror`` adds."""
        suffix = endpoint_path(ep.web_service)
        body = self.ws.get(suffix, f"GET online endpoint {ep.web_service}")
        if body is None:
            raise errors.ProviderError("the online endpoint disappeared", where=ep.web_service)
        props = body.setdefault("properties", {})
        props["traffic"] = {k: v for k, v in weights.items() if v}
        kept = {
            k: v
            for k, v in (props.get("mirrorTraffic") or {}).items()
            if not weights.get(k) and k != unmirror
        }
        if kept or mirror or props.get("mirrorTraffic"):
            props["mirrorTraffic"] = kept | dict(mirror or {})
        if tags is not None:
            body["tags"] = {**(body.get("tags") or {}), **tags}
        self.ws.put_and_wait(suffix, body, f"PUT traffic of {ep.web_service}", OPERATION_TIMEOUT)

    def disown(self, name: str) -> str:
        """Remove retrain's ownership tags from online endpoint ``name``; nothing else."""
        suffix = endpoint_path(name)
        body = self.ws.get(suffix, f"GET online endpoint {name}")
        if body is None:
            return f"online endpoint {name} is gone already"
        body["tags"] = model.disowned(body.get("tags") or {})
        self.ws.put_and_wait(suffix, body, f"PUT tags of {name}", OPERATION_TIMEOUT)
        return f"removed retrain's ownership tags from online endpoint {name}"

    def _restore(self, ep: model.Endpoint, champion: str, target: str | None) -> None:
        self.log(f"{ep.name}: returning all traffic to {champion}")
        self._set_traffic(ep, {champion: FULL}, None, unmirror=target)

    def _prune(self, ep: model.Endpoint, target: str, keep: int) -> None:
        """Delete retrain's idle deployments beyond the ``keep`` newest (never another's)."""
        state = self.read(ep.web_service)
        if state is None:
            return
        mirror = {str(k).lower() for k in (state.properties.get("mirrorTraffic") or {})}
        idle = [
            name
            for name, body in state.deployments.items()
            if name != target
            and state.traffic[name] == 0
            and name.lower() not in mirror
            and (body.get("tags") or {}).get(model.TAG_MANAGED_BY) == model.MANAGED_BY
        ]
        idle.sort(key=lambda n: _created(state.deployments[n]), reverse=True)
        for name in idle[keep:]:
            self.log(f"{ep.name}: removing old deployment {name}")
            self.ws.delete_and_wait(
                f"{endpoint_path(ep.web_service)}/deployments/{name}",
                f"DELETE deployment {ep.web_service}/{name}",
                OPERATION_TIMEOUT,
            )


def clone(
    template: Mapping[str, Any], model_id: str, endpoint: str, tags: Mapping[str, str]
) -> dict[str, Any]:
    """``template`` with only ``properties.model`` and retrain's tags changed, and what the
    service fills (ids, system data, provisioning state) left for it to fill."""
    body = {k: copy.deepcopy(v) for k, v in template.items() if k not in READ_ONLY}
    props = body.setdefault("properties", {})
    props.pop("provisioningState", None)
    props["model"] = model_id
    kept = {k: v for k, v in (body.get("tags") or {}).items() if k not in model.OWNED_TAGS}
    body["tags"] = kept | {
        model.TAG_MANAGED_BY: model.MANAGED_BY,
        model.TAG_ENDPOINT: endpoint,
        model.TAG_FINGERPRINT: tags[model.TAG_FINGERPRINT],
    }
    return body


def _created(body: Mapping[str, Any]) -> str:
    return str((body.get("systemData") or {}).get("createdAt", ""))


def _rows(value: Any) -> int | None:
    """How many rows a scoring request (or answer) carries: ``{"data": [...]}`` or a list."""
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    return len(value) if isinstance(value, list) else None
