"""The data plane: each endpoint's ``scoringUri`` really scores with its deployment's model.

Why: a smoke test against the new deployment alone, and traffic shifting itself, only mean
something if a request reaches the deployment the split says and is answered by *that*
deployment's model. So ``POST {scoringUri}`` (``{base}/inference/{region}/{endpoint}/score``,
standing in for ``https://{endpoint}.{region}.inference.ml.azure.com/score``) does what the
service does (Microsoft Learn, safe rollout and "Troubleshoot online endpoints"):

* Auth: ``Authorization: Bearer <key>`` with a ``listKeys`` key for ``authMode: Key``, a token
  from ``/token`` for ``AMLToken``, any bearer for ``AADToken`` (the fake checks no Entra
  tokens); else 401.
* The ``azureml-model-deployment`` header routes to that deployment alone (any deployment, even
  one with 0 % or only mirror traffic; unknown → 404) and is never mirrored.
* Without it, the live ``traffic`` weights pick the deployment by smooth weighted round-robin
  (deterministic, exactly the split over any window of 100 requests); with no positive weight,
  404 "no valid deployment" (docs table); mirror traffic copies that share of these requests
  to the shadow deployment, whose answer is discarded (counted in :attr:`ScoringApi.log`).
* Every answer names the deployment that served it in the ``azureml-model-deployment`` response
  header (inference from the SDK's use of the header).
* The fake's scoring script accepts ``{"data": [row, ...]}`` (or a bare list of rows) and answers
  the list of predictions. Any failure inside the "container" (bad body, model not loadable,
  deployment still ``Creating`` or ``Failed``/``Deleting``) is 424, as the docs say for a non-200
  from the container. A deployment ``Updating``/``Scaling`` keeps serving (inference: managed
  deployments update in place, rolling).

Models load from the registered model version's ``modelUri`` blobs, never by unpickling: a JSON
linear model (``tests.fakes.trainers.aml_linear_trainer``) or a skops bike-demand model
(``examples/bike_rental/train.py``'s ``load_model``, which trusts only its listed types).
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakes.httpserver import FakeHTTPServer, Request, Response
from tests.fakes.swagger import ci_get

from . import traffic as rules
from .blobs import parse_datastore_uri, parse_job_output_uri
from .online import model_ref
from .state import Deployment, Endpoint, State, Workspace

JsonObj = dict[str, Any]

DEPLOYMENT_HEADER = "azureml-model-deployment"
BIKE_TRAINER = Path(__file__).resolve().parents[3] / "examples" / "bike_rental" / "train.py"
SERVING_STATES = frozenset({"Succeeded", "Updating", "Scaling"})
MIRROR_KEY = "\0mirror"  # round-robin credit slot of the mirror share (not a deployment name)


@dataclass(frozen=True)
class Served:
    endpoint: str
    deployment: str
    mirrored: bool
    status: int


class ModelLoadError(Exception):
    pass


def load_model(data: bytes) -> Callable[[list[Any]], list[float]]:
    """Bytes of a model file → a predict function (no pickle of anything untrusted)."""
    if data[:1] == b"{":
        model = json.loads(data)
        if model.get("kind") != "linear":
            raise ModelLoadError(f"unknown JSON model kind {model.get('kind')!r}")
        a, b = float(model["a"]), float(model["b"])

        def linear(rows: list[Any]) -> list[float]:
            return [a * float(r["x"] if isinstance(r, dict) else r) + b for r in rows]

        return linear
    if data[:4] == b"PK\x03\x04":  # a zip: skops
        from .jobs import load_trainer as load

        bike_load = load(f"{BIKE_TRAINER}:load_model")
        bike_predict = load(f"{BIKE_TRAINER}:predict")
        with tempfile.TemporaryDirectory(prefix="retrain-aml-model-") as tmp:
            path = Path(tmp) / "model.skops"
            path.write_bytes(data)
            model = bike_load(path)

        def bike(rows: list[Any]) -> list[float]:
            return list(bike_predict(model, rows))

        return bike
    raise ModelLoadError("the model file is neither a JSON linear model nor a skops file")


class ScoringApi:
    def __init__(
        self, state: State, job_output_uri: Callable[[Workspace, str, str], str | None]
    ) -> None:
        self.s = state
        self.job_output_uri = job_output_uri
        self.log: list[Served] = []
        self._cache: dict[str, Callable[[list[Any]], list[float]]] = {}
        self._cache_lock = threading.Lock()

    def mount(self, server: FakeHTTPServer) -> None:
        server.add_route(
            "POST", r"/inference/(?P<region>[^/]+)/(?P<ep>[^/]+)/score", self._score, "aml.score"
        )

    def _find(self, region: str, name: str) -> tuple[Workspace, Endpoint] | None:
        for ws in self.s.workspaces.values():
            if re.sub(r"\s+", "", ws.location).lower() == region.lower():
                ep = ws.endpoints.get(name.lower())
                if ep is not None:
                    return ws, ep
        return None

    @staticmethod
    def _authorized(req: Request, ep: Endpoint) -> bool:
        token = req.bearer_token()
        if token is None:
            return False
        mode = str(ci_get(ci_get(ep.body, "properties") or {}, "authMode") or "").lower()
        if mode == "key":
            return token in ep.keys.values()
        if mode == "amltoken":
            return token in ep.tokens
        return True

    @staticmethod
    def _pick(ep: Endpoint, live: dict[str, int]) -> str | None:
        positive = {k: v for k, v in live.items() if v > 0}
        if not positive:
            return None
        total = sum(positive.values())
        for name, weight in positive.items():
            ep.rr[name] = ep.rr.get(name, 0) + weight
        chosen = max(positive, key=lambda n: (ep.rr[n], n))
        ep.rr[chosen] -= total
        return chosen

    @staticmethod
    def _mirror(ep: Endpoint, shadow: dict[str, int]) -> str | None:
        active = [(k, v) for k, v in shadow.items() if v > 0]
        if not active:
            return None
        name, pct = active[0]
        ep.rr[MIRROR_KEY] = ep.rr.get(MIRROR_KEY, 0) + pct
        if ep.rr[MIRROR_KEY] >= 100:  # percent
            ep.rr[MIRROR_KEY] -= 100
            return name
        return None

    def _route(
        self, req: Request
    ) -> Response | tuple[Workspace, Endpoint, Deployment, Deployment | None]:
        assert req.match is not None
        found = self._find(req.match["region"], req.match["ep"])
        if found is None:
            return Response.json(404, {"message": f"Endpoint {req.match['ep']!r} not found."})
        ws, ep = found
        if not self._authorized(req, ep):
            return Response.json(
                401, {"message": "Unauthorized: a valid key or token is required."}
            )
        props = ci_get(ep.body, "properties") or {}
        wanted = req.header(DEPLOYMENT_HEADER)
        mirror: Deployment | None = None
        if wanted:
            dep = ep.deployments.get(wanted.lower())
            if dep is None:
                return Response.json(404, {"message": f"Deployment {wanted!r} not found."})
            return ws, ep, dep, None
        name = self._pick(ep, rules.weights(ci_get(props, "traffic")))
        if name is None or name.lower() not in ep.deployments:
            return Response.json(
                404,
                {
                    "message": "No valid deployments to route to. Please check that the endpoint "
                    "has at least one deployment with positive weight values or use a deployment "
                    "specific header to route."
                },
            )
        shadow = self._mirror(ep, rules.weights(ci_get(props, "mirrorTraffic")))
        if shadow is not None:
            mirror = ep.deployments.get(shadow.lower())
        return ws, ep, ep.deployments[name.lower()], mirror

    def _score(self, req: Request) -> Response:
        with self.s.lock:
            routed = self._route(req)
            if isinstance(routed, Response):
                return routed
            ws, ep, dep, mirror = routed
            target = self._model_location(ws, dep)
            shadow_target = self._model_location(ws, mirror) if mirror is not None else None
        resp = self._run(dep, target, req.body)
        self.log.append(Served(ep.name, dep.name, False, resp.status))
        if mirror is not None and shadow_target is not None:
            shadow = self._run(mirror, shadow_target, req.body)
            self.log.append(Served(ep.name, mirror.name, True, shadow.status))
        resp.headers[DEPLOYMENT_HEADER] = dep.name
        return resp

    def _model_location(self, ws: Workspace, dep: Deployment) -> tuple[str, str, str] | str:
        """(cache key, container, blob path or prefix) of a deployment's model, or why not."""
        if dep.state not in SERVING_STATES:
            return f"deployment {dep.name!r} is {dep.state}, not serving"
        model = ci_get(ci_get(dep.body, "properties") or {}, "model")
        ref = model_ref(ws, str(model)) if model else None
        container = ws.models.get(ref[0].lower()) if ref else None
        version = container.versions.get(ref[1]) if container and ref else None
        if version is None:
            return f"deployment {dep.name!r} has no registered model"
        uri = str(ci_get(version.body["properties"], "modelUri") or "")
        job = parse_job_output_uri(uri)
        if job is not None:
            base = self.job_output_uri(ws, job[0], job[1]) or ""
            uri = base.rstrip("/") + ("/" + job[2] if job[2] else "/")
        blob = parse_datastore_uri(uri)
        if blob is None:
            return f"model uri {uri!r} cannot be resolved"
        rec = ws.datastores.get(blob.datastore.lower())
        if rec is None:
            return f"datastore {blob.datastore!r} does not exist"
        store = str(ci_get(rec["properties"], "containerName"))
        return f"{ws.id}/models/{ref[0] if ref else ''}/{ref[1] if ref else ''}", store, blob.path

    def _predictor(self, key: str, container: str, path: str) -> Callable[[list[Any]], list[float]]:
        with self._cache_lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        names = (
            [path]
            if path and not path.endswith("/") and self.s.blobs.exists(container, path)
            else []
        )
        if not names:
            prefix = path.rstrip("/") + "/" if path.strip("/") else ""
            listed = [n for n in self.s.blobs.list(container, prefix) if not n.endswith(".csv")]
            names = sorted(listed, key=lambda n: (Path(n).name != "model", n))[:1]
        if not names:
            raise ModelLoadError(f"no model file under {container}/{path}")
        predictor = load_model(self.s.blobs.read(container, names[0]))
        with self._cache_lock:
            self._cache[key] = predictor
        return predictor

    def _run(self, dep: Deployment, target: tuple[str, str, str] | str, body: bytes) -> Response:
        if isinstance(target, str):
            return Response.json(424, {"message": target})
        try:
            payload = json.loads(body.decode("utf-8") or "null")
            rows = payload.get("data") if isinstance(payload, dict) else payload
            if not isinstance(rows, list):
                raise ValueError('expected {"data": [row, ...]} or a list of rows')
            return Response.json(200, self._predictor(*target)(rows))
        except Exception as exc:  # the scoring container failed: 424 (docs)
            return Response.json(424, {"message": f"{dep.name}: {type(exc).__name__}: {exc}"})
