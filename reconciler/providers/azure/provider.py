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
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from reconciler import errors, fingerprint, model, redact
from reconciler.providers import base, webservice
from reconciler.providers.azure import arm, bes, blobs, classic, config, http, lease, throttle

READ_ONLY = ("id", "name", "type")
SERVER_PROPERTIES = ("provisioningState", "createdOn", "modifiedOn", "swaggerLocation")
HISTORY_PATH = "history.jsonl"
DEFAULT_WORKERS = 8  # concurrent reads when neither flag nor manifest says
FINGERPRINT = re.compile(r"[0-9a-f]{64}")  # sha256, lower-case hex, as fingerprint.py makes them
MARK = "\x00fp\x00"  # a placeholder no URL contains, to split model_uri() around the fingerprint
URI_SHOWN = 200  # characters of a refused URI put in the error (it may be hostile and huge)


class AzureProvider:
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
        self.store = blobs.BlobStore(
            cfg.connection_string.reveal(),
            cfg.container,
            verify=cfg.verify,
            retries=cfg.retries,
            scrub=self.scrub,
        )
        self.arm = arm.WebServices(
            cfg, credential or _credential(cfg, env), scrub=self.scrub, log=log, pacer=pacer
        )
        self.classic = classic.Endpoints(self.client, self.store, cfg.classic_url)
        self._definitions: dict[str, Mapping[str, Any]] = {}  # exported files, by path
        self.trainer = bes.Trainer(
            self.client, self.store, poll=cfg.poll_seconds, log=log, url_for=cfg.bes_url
        )

    # -- digests ---------------------------------------------------------------
    def trainer_digest(self, trainer: model.Trainer) -> str:
        b = trainer.options.get("bes") or {}
        identity = {
            k: str(b.get(k, "")) for k in ("url", "modelOutput", "evaluationOutput", "codeVersion")
        }
        return fingerprint.combine(trainer_digest="bes", input_digests=identity, parameters={})

    def input_digest(self, location: str) -> str:
        return self.store.digest(location)

    def model_uri(self, fp: str) -> str:
        """The canonical blob URL of fingerprint ``fp``'s model: the one location a web
        service is ever pointed at."""
        return self.store.url(bes.model_path(fp))

    def uri_for(self, fp: str) -> str:
        return self.model_uri(fp)

    # -- observe ---------------------------------------------------------------
    def observe(
        self, endpoints: Sequence[model.Endpoint]
    ) -> Mapping[str, model.ServiceState | None]:
        records = self.classic.records() if any("classic" in e.options for e in endpoints) else {}
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            states = list(pool.map(lambda ep: self._observe_one(ep, records), endpoints))
        return {ep.name: state for ep, state in zip(endpoints, states, strict=True)}

    def _observe_one(
        self, ep: model.Endpoint, records: Mapping[str, Mapping[str, str]]
    ) -> model.ServiceState | None:
        if "classic" in ep.options:
            return self._observe_classic(ep, records)
        definition = self.arm.get(self._rid(ep))
        if definition is None:
            return None
        self._same_storage_account(ep, definition)
        try:
            return webservice.essence(
                definition, web_service=ep.web_service, asset_name=ep.asset, uri_for=self.uri_for
            )
        except webservice.DefinitionError as e:
            raise errors.ProviderError(str(e), where=ep.web_service) from e

    def _same_storage_account(self, ep: model.Endpoint, live: Mapping[str, Any]) -> None:
        """A web service's storage account cannot change (the service answers
        ``CannotChangeStorageAccount``) and an update never sends it, so a definition file
        naming another account would be silently ignored: refuse it while planning.
        Names only: GET omits the account key."""
        if ep.definition is None:
            return
        wanted = _storage_account_name(self._exported(ep.definition))
        serving = _storage_account_name(live)
        if wanted is not None and serving is not None and wanted.lower() != serving.lower():
            raise errors.ProviderError(
                f"endpoint {ep.name}: definition storageAccount.name is {wanted!r} but the live "
                f"web service {ep.web_service!r} uses {serving!r}; a web service's storage "
                "account cannot change",
                where=ep.definition,
            )

    def _exported(self, path: str) -> Mapping[str, Any]:
        """An exported definition file, parsed once per run (many endpoints share one)."""
        found = self._definitions.get(path)
        if found is None:
            try:
                with open(path, encoding="utf-8") as f:
                    found = json.load(f)
            except (OSError, ValueError) as e:
                raise errors.ProviderError(f"cannot read definition: {e}", where=path) from e
            if not isinstance(found, dict):
                raise errors.ProviderError("definition is not a JSON object", where=path)
            self._definitions[path] = found
        return found

    def _observe_classic(
        self, ep: model.Endpoint, records: Mapping[str, Mapping[str, str]]
    ) -> model.ServiceState | None:
        found = self.classic.get(ep)
        if found is None:
            return None
        resources = [r for r in found.get("Resources") or [] if isinstance(r, dict)]
        match = next((r for r in resources if r.get("Name") == ep.asset), None)
        uri = classic.model_location(match) if match else None
        tags = dict(records.get(classic.key_of(ep), {}))
        fp = tags.get(model.TAG_FINGERPRINT)
        return model.ServiceState(
            web_service=ep.web_service,
            model_uri=uri,
            tags=model.frozen_map(tags),
            expected_uri=self.uri_for(fp) if fp else None,
            revision=webservice.revision(uri, tags),
            assets=tuple(str(r.get("Name")) for r in resources),
        )

    def models(self, fingerprints: Iterable[str]) -> Mapping[str, model.ModelRecord]:
        fps = list(fingerprints)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            texts = list(pool.map(lambda fp: self.store.read_text(bes.metadata_path(fp)), fps))
        return {
            fp: self._record(fp, text)
            for fp, text in zip(fps, texts, strict=True)
            if text is not None
        }

    def _record(self, fp: str, text: str) -> model.ModelRecord:
        try:
            data = json.loads(text)
            return model.ModelRecord(
                fingerprint=fp,
                uri=self.uri_for(fp),
                metrics=model.frozen_map({k: float(v) for k, v in data["metrics"].items()}),
                trained_at=str(data["trained_at"]),
                lineage=model.frozen_map(data.get("lineage", {})),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise errors.ProviderError(
                f"model metadata is malformed ({e})",
                where=self.store.relative(bes.metadata_path(fp)),
            ) from e

    # -- act -------------------------------------------------------------------
    def train(self, job: base.TrainingJob) -> model.ModelRecord:
        stored = self.models([job.fingerprint]).get(job.fingerprint)
        if stored is not None:
            return stored
        metadata = self.trainer.train(job)
        self.store.write_text(bes.metadata_path(job.fingerprint), json.dumps(metadata, indent=2))
        return self._record(job.fingerprint, json.dumps(metadata))

    def create(self, endpoint: model.Endpoint, model_uri: str, tags: Mapping[str, str]) -> None:
        fp = self._confined(endpoint, model_uri)
        if "classic" in endpoint.options:
            self.classic.add(endpoint)
            self._point_classic(endpoint, fp, tags)
            return
        if endpoint.definition is None:
            raise errors.ProviderError(f"no definition to create {endpoint.web_service!r} from")
        try:
            body = webservice.load_exported(endpoint.definition, endpoint.asset, model_uri, tags)
        except (OSError, ValueError) as e:
            raise errors.ProviderError(
                f"cannot read definition: {e}", where=endpoint.definition
            ) from e
        body = {k: v for k, v in body.items() if k.lower() not in READ_ONLY}
        props = body.get(webservice.key(body, "properties")) or {}
        for name in SERVER_PROPERTIES:
            props.pop(webservice.key(props, name), None)
        self.arm.put(self._rid(endpoint), body)

    def update(self, endpoint: model.Endpoint, model_uri: str, tags: Mapping[str, str]) -> None:
        fp = self._confined(endpoint, model_uri)
        if "classic" in endpoint.options:
            self._point_classic(endpoint, fp, tags)
            return
        rid = self._rid(endpoint)
        current = self.arm.get(rid)
        if current is None:
            raise errors.NotFound(f"web service {endpoint.web_service!r} does not exist")
        updated = webservice.with_model(current, endpoint.asset, model_uri, tags)
        props = updated[webservice.key(updated, "properties")]
        patch = {
            webservice.key(updated, "tags"): updated[webservice.key(updated, "tags")],
            webservice.key(updated, "properties"): {
                webservice.key(props, "packageType"): webservice.get(
                    updated, "properties", "packageType"
                )
                or "Graph",
                webservice.key(props, "assets"): webservice.assets(updated),
            },
        }
        self.arm.patch(rid, patch)

    def _point_classic(self, ep: model.Endpoint, fp: str, tags: Mapping[str, str]) -> None:
        self.classic.patch(ep, bes.model_path(fp))
        self.classic.set_record(ep, tags)

    def _confined(self, ep: model.Endpoint, uri: str) -> str:
        """The fingerprint whose model ``uri`` is, refusing anything but exactly
        ``model_uri(fp)`` of a 64-hex fingerprint whose blob exists: no other scheme,
        host, container, path, ``..`` or query (a saved plan may have been edited).
        Exact equality with the canonical form is the check; no parsing to fool."""
        fp = _fingerprint_in(uri, self.model_uri) or ""
        shown = self.scrub(uri)[:URI_SHOWN].encode("unicode_escape").decode("ascii")  # one line
        valid = FINGERPRINT.fullmatch(fp) is not None
        if not valid or uri != self.model_uri(fp):
            canonical = self.model_uri(fp if valid else "<fingerprint>")
            raise errors.ProviderError(
                f"refusing model URI {shown} for endpoint {ep.name}: "
                f"this backend serves models only from {canonical}",
                where=ep.web_service,
            )
        if not self.store.exists(bes.model_path(fp)):
            raise errors.ProviderError(
                f"model blob {shown} for endpoint {ep.name} does not exist; not pointing at it",
                where=ep.web_service,
            )
        return fp

    def _rid(self, ep: model.Endpoint) -> str:
        return self.arm.resource_id(ep.web_service, ep.options.get("resourceGroup"))

    # -- history and lock --------------------------------------------------------
    def record(self, entry: base.HistoryEntry) -> None:
        self.store.append_line(HISTORY_PATH, base.history_line(entry))

    def history(self, endpoint: str | None = None) -> Iterator[base.HistoryEntry]:
        text = self.store.read_text(HISTORY_PATH) or ""
        return base.parse_history(text, where=self.store.relative(HISTORY_PATH), endpoint=endpoint)

    def lock(
        self, holder: str, timeout: float, on_wait: Callable[[str], None] = lambda _m: None
    ) -> AbstractContextManager[None]:
        return lease.hold(self.store, holder=holder, timeout=timeout, on_wait=on_wait)

    def cancel(self) -> None:
        """BES jobs run remotely and are recorded before they start: an interrupted apply
        leaves them running, and the next run resumes them rather than paying twice."""

    def force_unlock(self, lock_id: str) -> str:
        return lease.force_unlock(self.store, lock_id)

    def recover(self) -> list[str]:
        """Nothing to sweep: BES jobs are recorded before they start and resumed, not redone."""
        return []


def _fingerprint_in(uri: str, model_uri: Callable[[str], str]) -> str | None:
    """The fingerprint-shaped part of ``uri`` when it has the model store's shape."""
    head, _, tail = model_uri(MARK).partition(MARK)
    if uri.startswith(head) and uri.endswith(tail) and len(uri) > len(head) + len(tail):
        return uri[len(head) : len(uri) - len(tail)]
    return None


def _storage_account_name(definition: Mapping[str, Any]) -> str | None:
    name = webservice.get(definition, "properties", "storageAccount", "name")
    return None if name is None else str(name)


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


def create(
    options: Mapping[str, Any],
    *,
    manifest_dir: Path,
    env: Mapping[str, str],
    scrub: redact.Redactor,
    log: Callable[[str], None],
    workers: int | None = None,
) -> AzureProvider:
    """The provider for a manifest's ``backend``; ``workers`` (--parallelism) bounds
    concurrent requests, else the manifest's ``parallelism``, else the CPU count."""
    cfg = config.from_options(options, manifest_dir=manifest_dir, env=env)
    azure = options.get("azure") or {}
    count = workers or int(azure.get("parallelism") or os.cpu_count() or DEFAULT_WORKERS)
    return AzureProvider(cfg, env=env, scrub=scrub, log=log, workers=count)
