"""The Azure ML v2 provider: the same contract as the others, on managed online endpoints.

- Observe: per endpoint one GET of the online endpoint, one list of its deployments,
  one GET per model version serving live traffic (``rollout``, ``live``).
- The model store: model versions of the backend's model, version = fingerprint, their
  properties holding metrics and lineage; a model's one URI is that version's ARM id,
  the value a deployment's ``properties.model`` holds.
- Train: a command job named from the fingerprint (``jobs``); inputs are paths in the
  workspace's blob datastore, hashed there by content.
- Update: blue/green behind the planner's gate (``rollout``).
- History and lock: a blob container of the datastore's storage account, as for the
  classic backend (an append blob; a leased blob).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core.credentials import AccessToken

from reconciler import errors, fingerprint, model, redact
from reconciler.providers import base, common
from reconciler.providers.azurecommon import blobs, http, ledger, throttle
from reconciler.providers.azureml import arm, backend, config, jobs, live, rollout

DEFAULT_WORKERS = throttle.NETWORK_PARALLELISM  # requests at once when not given
URI_SHOWN = 200  # characters of a refused model reference put in the error
TOKEN_LIFETIME = 3600  # seconds we treat a CI-provided token as valid (it is not refreshed)


class StaticToken:
    """A bearer token obtained elsewhere (e.g. by CI), as an azure-core credential."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + TOKEN_LIFETIME)


class AzureMLProvider(ledger.BlobLedger):
    name = "azureml"

    def __init__(
        self,
        cfg: config.AzureMLConfig,
        *,
        env: Mapping[str, str],
        scrub: redact.Redactor,
        log: Callable[[str], None] = lambda _line: None,
        credential: Any = None,
        workers: int = DEFAULT_WORKERS,
        pacer: throttle.Pacer | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.scrub = scrub.extend([cfg.connection_string.reveal()])
        self.workers = workers
        self.client = http.Client(verify=cfg.verify, retries=cfg.retries, scrub=self.scrub, log=log)
        pause = sleep or time.sleep
        self.ws = arm.Workspace(
            cfg,
            credential or _credential(cfg, env),
            self.client,
            pacer=pacer or throttle.Pacer(in_flight=workers),
            sleep=pause,
        )
        self.state = blobs.BlobStore(
            cfg.connection_string.reveal(),
            cfg.state_container,
            verify=cfg.verify,
            retries=cfg.retries,
            scrub=self.scrub,
        )
        self._datastore: blobs.BlobStore | None = None
        self.trainer = jobs.Trainer(
            self.ws, cfg, self.datastore, scrub=self.scrub, log=log, sleep=pause
        )
        self.rollout = rollout.Rollout(self.ws, log=log, sleep=pause)

    def datastore(self) -> blobs.BlobStore:
        """The workspace's blob datastore's container (looked up once, by one GET)."""
        if self._datastore is None:
            name = self.cfg.datastore
            found = self.ws.get(f"/datastores/{name}", f"GET datastore {name}")
            container = ((found or {}).get("properties") or {}).get("containerName")
            if not container:
                raise errors.ProviderError(
                    f"datastore {name!r} is not a blob datastore of the workspace",
                    where=self.cfg.workspace,
                )
            self._datastore = blobs.BlobStore(
                self.cfg.connection_string.reveal(),
                str(container),
                verify=self.cfg.verify,
                retries=self.cfg.retries,
                scrub=self.scrub,
            )
        return self._datastore

    # -- digests -------------------------------------------------------------------
    def trainer_digest(self, trainer: model.Trainer) -> str:
        spec = backend.command(trainer)
        identity = {"code": spec.code, "command": spec.command, "environment": spec.environment}
        return fingerprint.combine(trainer_digest="command", input_digests=identity, parameters={})

    def input_digest(self, location: str) -> str:
        store = self.datastore()
        return store.digest(f"{store.container}/{location}")

    def model_uri(self, fp: str) -> str:
        """The ARM id of model version ``fp``: what a deployment's ``model`` names."""
        return f"{self.cfg.workspace_id}{self.trainer.version_suffix(fp)}"

    # -- observe -------------------------------------------------------------------
    def observe(
        self, endpoints: Sequence[model.Endpoint]
    ) -> Mapping[str, model.ServiceState | None]:
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            states = list(pool.map(self._observe_one, endpoints))
        return {ep.name: state for ep, state in zip(endpoints, states, strict=True)}

    def _observe_one(self, ep: model.Endpoint) -> model.ServiceState | None:
        found = self.rollout.read(ep.web_service)
        if found is None:
            return None
        tags = self._model_tags(found)
        return live.essence(found, web_service=ep.web_service, uri_for=self.model_uri, models=tags)

    def _model_tags(self, found: live.Live) -> dict[str, str]:
        """The fingerprint tag of each model version serving live traffic (one GET each)."""
        prefix = f"{self.cfg.workspace_id}/models/".lower()
        out: dict[str, str] = {}
        for name, weight in found.traffic.items():
            ref = found.model_of(name)
            if weight == 0 or not ref or not ref.lower().startswith(prefix) or ref in out:
                continue
            suffix = ref[len(self.cfg.workspace_id) :]
            version = self.ws.get(suffix, f"GET model version {live.short_model(ref)}") or {}
            tag = ((version.get("properties") or {}).get("tags") or {}).get(model.TAG_FINGERPRINT)
            out[ref] = str(tag or "")
        return out

    def managed(self, endpoints: Sequence[model.Endpoint]) -> Sequence[model.Managed]:
        """The workspace's online endpoints tagged as retrain's (its tags are written with
        the last traffic step): one list of the workspace's online endpoints, paged (one
        request per page of the service's page size)."""
        items = self.ws.list("/onlineEndpoints", "list online endpoints")
        found = (
            model.managed_from_tags(
                str(item.get("name")), item.get("tags") or {}, "online endpoint"
            )
            for item in items
        )
        return tuple(m for m in found if m is not None)

    def stored(self) -> Sequence[model.ModelRecord]:
        """The versions of the backend's model: one paged list of them, the records read
        from the listed versions' own properties (no further request)."""
        try:
            items = self.ws.list(self.trainer.versions_suffix(), "list model versions")
        except errors.NotFound:  # no model registered yet: no container either
            return ()
        found = (self.trainer.record_of(item, self.model_uri) for item in items)
        return tuple(r for r in found if r is not None)

    def forget(self, fp: str) -> str:
        """Delete model version ``fp``, never one a deployment references: first one list of
        the online endpoints and one list of each one's deployments."""
        uri = self.model_uri(fp).lower()
        for item in self.ws.list("/onlineEndpoints", "list online endpoints"):
            name = str(item.get("name"))
            for dep in self.ws.list(
                f"/onlineEndpoints/{name}/deployments", f"list deployments of {name}"
            ):
                if str((dep.get("properties") or {}).get("model", "")).lower() == uri:
                    raise errors.ProviderError(
                        f"model version {fingerprint.short(fp)} is referenced by deployment "
                        f"{dep.get('name')} of online endpoint {name}; not deleting it"
                    )
        suffix = self.trainer.version_suffix(fp)
        self.ws.delete_and_wait(suffix, f"DELETE model version {fingerprint.short(fp)}", 600)
        return f"deleted model version {self.cfg.model_name}:{fp}"

    deletes = False  # an online endpoint's URL and keys are what clients call: never deleted

    def disown(self, orphan: model.Managed, *, delete: bool = False) -> str:
        """GET the online endpoint, PUT it back without the owned tags (its deployments
        and traffic untouched): one read, one write and the polls the service asks for."""
        if delete:
            raise errors.ProviderError("azureml never deletes an online endpoint")
        return self.rollout.disown(orphan.web_service)

    def models(self, fingerprints: Iterable[str]) -> Mapping[str, model.ModelRecord]:
        fps = list(fingerprints)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            found = list(pool.map(lambda fp: self.trainer.record(fp, self.model_uri(fp)), fps))
        return {fp: rec for fp, rec in zip(fps, found, strict=True) if rec is not None}

    # -- act -----------------------------------------------------------------------
    def train(self, job: base.TrainingJob) -> model.ModelRecord:
        stored = self.models([job.fingerprint]).get(job.fingerprint)
        if stored is not None:
            return stored
        text = self.trainer.train(job)
        where = f"model {self.cfg.model_name}:{fingerprint.short(job.fingerprint)}"
        uri = self.model_uri(job.fingerprint)
        return common.model_record_from_text(job.fingerprint, text, uri=uri, where=where)

    def create(self, endpoint: model.Endpoint, model_uri: str, tags: Mapping[str, str]) -> None:
        self._confined(endpoint, model_uri)
        self.rollout.create(endpoint, model_uri, tags)

    def update(self, endpoint: model.Endpoint, model_uri: str, tags: Mapping[str, str]) -> None:
        self._confined(endpoint, model_uri)
        self.rollout.apply(endpoint, model_uri, tags)

    def _confined(self, ep: model.Endpoint, uri: str) -> str:
        """The fingerprint whose registered model version ``uri`` exactly is; anything
        else (another workspace, model or version, a path trick) is refused before any
        write, as is a version not registered."""
        fp = common.canonical_fingerprint(uri, self.model_uri)
        shown = self.scrub(uri)[:URI_SHOWN].encode("unicode_escape").decode("ascii")
        if fp is None:
            raise errors.ProviderError(
                f"refusing model {shown} for endpoint {ep.name}: this backend serves only "
                f"versions of {self.model_uri('<fingerprint>')}",
                where=ep.web_service,
            )
        if fp not in self.models([fp]):
            raise errors.ProviderError(
                f"model version {shown} for endpoint {ep.name} is not registered; "
                "not pointing at it",
                where=ep.web_service,
            )
        return fp

    # -- history and lock come from ledger.BlobLedger; cancel and recover -------
    def cancel(self) -> None:
        """Command jobs run remotely under names from their fingerprints: an interrupted
        apply leaves them running, and the next run resumes watching them."""

    def recover(self) -> list[str]:
        """Nothing to sweep: jobs and deployments are found again by name and resumed."""
        return []


def _credential(cfg: config.AzureMLConfig, env: Mapping[str, str]) -> Any:
    """A CI-provided token from the named variable, else DefaultAzureCredential."""
    if cfg.token_env:
        token = env.get(cfg.token_env)
        if not token:
            raise errors.ReconcilerError(
                f"environment variable {cfg.token_env} (auth.tokenEnv) is not set"
            )
        return StaticToken(token)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def create(section: Mapping[str, Any], context: base.Context) -> AzureMLProvider:
    """The provider for a manifest's ``backend.azureml`` section."""
    cfg = config.from_section(section, manifest_dir=context.manifest_dir, env=context.env)
    return AzureMLProvider(
        cfg, env=context.env, scrub=context.scrub, log=context.log, workers=context.requests
    )
