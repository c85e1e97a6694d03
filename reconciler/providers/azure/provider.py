"""The Azure provider: the same contract as the local one, on Azure ML Studio.

- Resource Manager ("new") web services: observed and updated through
  azure-mgmt-resource generic resources (``arm``).
- Classic web service endpoints: the management API (``classic``).
- Training: BES jobs (``bes``) writing to deterministic blob locations.
- Model store, history, ownership of classic endpoints, lock: blob storage (``blobs``).

Reads fan out over a bounded pool (``parallelism``); every HTTP call that is
safe to repeat retries resets, 429 and 5xx with backoff (a POST only 429), and
Resource Manager calls are paced to its buckets with a margin. A web service is
only ever pointed at ``model_uri(fp)`` of an existing blob in our own container.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reconciler import errors, fingerprint, model, redact
from reconciler.providers import base, common, webservice
from reconciler.providers.azure import arm, backend, bes, classic, config, services
from reconciler.providers.azurecommon import blobs, http, ledger, throttle

DEFAULT_WORKERS = throttle.NETWORK_PARALLELISM  # requests at once when not given
URI_SHOWN = 200  # characters of a refused URI put in the error (it may be hostile and huge)


class AzureProvider(ledger.BlobLedger):
    name = "azure"

    def __init__(
        self,
        cfg: config.AzureConfig,
        *,
        env: Mapping[str, str],
        scrub: redact.Redactor,
        log: Callable[[str], None] = lambda _line: None,
        credential: Any = None,
        workers: int = DEFAULT_WORKERS,
        pacer: throttle.Pacer | None = None,
    ) -> None:
        self.cfg = cfg
        self.scrub = scrub.extend([cfg.connection_string.reveal()])
        self.workers = workers
        self.client = http.Client(verify=cfg.verify, retries=cfg.retries, scrub=self.scrub, log=log)
        self.state = blobs.BlobStore(
            cfg.connection_string.reveal(),
            cfg.container,
            verify=cfg.verify,
            retries=cfg.retries,
            scrub=self.scrub,
        )
        self.arm = arm.WebServices(
            cfg,
            credential or _credential(cfg, env),
            scrub=self.scrub,
            log=log,
            pacer=pacer or throttle.Pacer(in_flight=workers),
        )
        self.classic = classic.Endpoints(self.client, self.state, cfg.classic_url)
        self.resource_manager_services = services.ResourceManager(self.arm, self.model_uri)
        self.classic_services = services.Classic(self.classic, self.model_uri)
        self.trainer = bes.Trainer(
            self.client, self.state, poll=cfg.poll_seconds, log=log, url_for=cfg.bes_url
        )

    # -- digests ---------------------------------------------------------------
    def trainer_digest(self, trainer: model.Trainer) -> str:
        b = backend.bes(trainer)
        identity = {  # the manifest's names, as declared: fingerprints must not move
            "url": b.url,
            "modelOutput": b.model_output,
            "evaluationOutput": b.evaluation_output,
            "codeVersion": b.code_version,
        }
        return fingerprint.combine(trainer_digest="bes", input_digests=identity, parameters={})

    def input_digest(self, location: str) -> str:
        return self.state.digest(location)

    def model_uri(self, fp: str) -> str:
        """The canonical blob URL of fingerprint ``fp``'s model: the one location a web
        service is ever pointed at."""
        return self.state.url(bes.model_path(fp))

    # -- observe ---------------------------------------------------------------
    def observe(
        self, endpoints: Sequence[model.Endpoint]
    ) -> Mapping[str, model.ServiceState | None]:
        observers = {kind: kind.observer() for kind in self._kinds(endpoints)}
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            states = list(pool.map(lambda ep: observers[self.services_for(ep)](ep), endpoints))
        return {ep.name: state for ep, state in zip(endpoints, states, strict=True)}

    def services_for(self, ep: model.Endpoint) -> services.Services:
        """Whether ``ep`` is a classic endpoint or a Resource Manager web service: decided
        here, once, and everything else dispatches through what this returns."""
        classic_endpoint = backend.classic_address(ep) is not None
        return self.classic_services if classic_endpoint else self.resource_manager_services

    def _kinds(self, endpoints: Sequence[model.Endpoint]) -> list[services.Services]:
        """The kinds of web service among ``endpoints``, in order of first appearance."""
        return list(dict.fromkeys(self.services_for(ep) for ep in endpoints))

    def managed(self, endpoints: Sequence[model.Endpoint]) -> Sequence[model.Managed]:
        """Resource Manager web services tagged as retrain's in the backend's resource
        group and every group an endpoint names (one paged list per group), and the
        classic endpoints in the ownership records of the workspaces the manifest's
        classic endpoints use (one blob read, when it has any)."""
        groups = dict.fromkeys(
            [self.cfg.resource_group]
            + [
                ep.address.resource_group or self.cfg.resource_group
                for ep in endpoints
                if isinstance(ep.address, backend.ResourceManager)
            ]
        )
        found: list[model.Managed] = []
        for group in groups:
            for item in self.arm.list(group):
                tags = item.get(webservice.key(item, "tags")) or {}
                name = str(item.get("name"))
                rid = self.arm.resource_id(name, group)
                listed = model.managed_from_tags(name, tags, f"resource group {group}", rid)
                if listed is not None:
                    found.append(listed)
        return (*found, *self.classic_services.managed(endpoints))

    def stored(self) -> Sequence[model.ModelRecord]:
        """The models whose metadata blob is in the store: one paged list of the blobs
        under ``models/``, then one read per model's metadata."""
        fps = sorted(
            {
                parts[1]
                for name in self.state.names("models/")
                if len(parts := name.split("/")) == 3 and name == bes.metadata_path(parts[1])
            }
        )
        return tuple(self.models(fps).values())

    def forget(self, fp: str) -> str:
        """Delete the model's blobs (the .ilearner and its metadata), metadata last, so an
        interrupted forget leaves a model still listed, never an orphaned record."""
        prefix = f"models/{fp}/"
        names = sorted(self.state.names(prefix), key=lambda n: n == bes.metadata_path(fp))
        for name in names:
            self.state.delete(name)
        return f"removed {len(names)} blob{'s' if len(names) != 1 else ''} under {prefix}"

    deletes = False  # a Studio web service cannot be made again (Studio takes no new ones)

    def disown(self, orphan: model.Managed, *, delete: bool = False) -> str:
        """Remove the owned tags: a classic endpoint's ownership record (one blob write),
        or a Resource Manager web service's tags (one read, one PATCH of the tags)."""
        if delete:
            raise errors.ProviderError("azure never deletes a Studio web service")
        if orphan.where == services.CLASSIC_WHERE:
            self.classic.drop_record(orphan.locator)
            return f"removed retrain's ownership record of classic endpoint {orphan.locator}"
        self.arm.set_tags(orphan.locator, model.disowned)
        return f"removed retrain's ownership tags from web service {orphan.web_service}"

    def models(self, fingerprints: Iterable[str]) -> Mapping[str, model.ModelRecord]:
        fps = list(fingerprints)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            texts = list(pool.map(lambda fp: self.state.read_text(bes.metadata_path(fp)), fps))
        return {
            fp: self._record(fp, text)
            for fp, text in zip(fps, texts, strict=True)
            if text is not None
        }

    def _record(self, fp: str, text: str) -> model.ModelRecord:
        where = self.state.relative(bes.metadata_path(fp))
        return common.model_record_from_text(fp, text, uri=self.model_uri(fp), where=where)

    # -- act -------------------------------------------------------------------
    def train(self, job: base.TrainingJob) -> model.ModelRecord:
        stored = self.models([job.fingerprint]).get(job.fingerprint)
        if stored is not None:
            return stored
        metadata = self.trainer.train(job)
        self.state.write_text(bes.metadata_path(job.fingerprint), json.dumps(metadata, indent=2))
        return self._record(job.fingerprint, json.dumps(metadata))

    def create(self, endpoint: model.Endpoint, model_uri: str, tags: Mapping[str, str]) -> None:
        fp = self._confined(endpoint, model_uri)
        self.services_for(endpoint).create(endpoint, fp, model_uri, tags)

    def update(self, endpoint: model.Endpoint, model_uri: str, tags: Mapping[str, str]) -> None:
        fp = self._confined(endpoint, model_uri)
        self.services_for(endpoint).update(endpoint, fp, model_uri, tags)

    def _confined(self, ep: model.Endpoint, uri: str) -> str:
        """The fingerprint whose model ``uri`` is, refusing anything but exactly
        ``model_uri(fp)`` of a 64-hex fingerprint whose blob exists: no other scheme,
        host, container, path, ``..`` or query (a saved plan may have been edited).
        Exact equality with the canonical form is the check; no parsing to fool."""
        fp = common.canonical_fingerprint(uri, self.model_uri)
        shown = self.scrub(uri)[:URI_SHOWN].encode("unicode_escape").decode("ascii")  # one line
        if fp is None:
            canonical = self.model_uri("<fingerprint>")
            raise errors.ProviderError(
                f"refusing model URI {shown} for endpoint {ep.name}: "
                f"this backend serves models only from {canonical}",
                where=ep.web_service,
            )
        if not self.state.exists(bes.model_path(fp)):
            raise errors.ProviderError(
                f"model blob {shown} for endpoint {ep.name} does not exist; not pointing at it",
                where=ep.web_service,
            )
        return fp

    # -- history and lock come from ledger.BlobLedger; cancel and recover -------
    def cancel(self) -> None:
        """BES jobs run remotely and are recorded before they start: an interrupted apply
        leaves them running, and the next run resumes them rather than paying twice."""

    def recover(self) -> list[str]:
        """Nothing to sweep: BES jobs are recorded before they start and resumed, not redone."""
        return []


def _credential(cfg: config.AzureConfig, env: Mapping[str, str]) -> Any:
    """A CI-provided token from the named variable, else DefaultAzureCredential."""
    if cfg.token_env:
        token = env.get(cfg.token_env)
        if not token:
            raise errors.ReconcilerError(
                f"environment variable {cfg.token_env} (auth.tokenEnv) is not set"
            )
        return arm.StaticToken(token)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def create(section: Mapping[str, Any], context: base.Context) -> AzureProvider:
    """The provider for a manifest's ``backend.azure`` section; ``context.workers`` (already
    resolved from --parallelism, the manifest and the CPU count) bounds concurrent requests."""
    cfg = config.from_section(section, manifest_dir=context.manifest_dir, env=context.env)
    return AzureProvider(
        cfg, env=context.env, scrub=context.scrub, log=context.log, workers=context.requests
    )
