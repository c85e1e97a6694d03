"""How wide the request pool is, and how long a poll waits: training jobs at once stay per
CPU, requests at once default to what Resource Manager's buckets allow (the pacer's read
reserve), ``--parallelism`` sets both, and polls follow ``Retry-After`` or back off."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler import engine, model, providers, settings
from reconciler.providers.azure import provider as azure_provider
from reconciler.providers.azurecommon import polling, throttle

CPUS = os.cpu_count() or 1
RESERVE = 25  # a tenth of Resource Manager's 250-read burst


def backend(kind: str, **section: model.JSON) -> model.Backend:
    return model.Backend(kind, model.frozen_map(section))


@pytest.mark.parametrize("kind", ["azure", "azureml"])
def test_azure_requests_default_to_the_read_reserve_and_jobs_to_one_per_cpu(kind: str) -> None:
    chosen = backend(kind)
    assert providers.network_parallelism(chosen) == RESERVE == throttle.NETWORK_PARALLELISM
    assert providers.parallelism(chosen) == CPUS


@pytest.mark.parametrize("kind", ["azure", "azureml"])
def test_the_manifest_sets_requests_and_jobs_apart(kind: str) -> None:
    chosen = backend(kind, parallelism=3, networkParallelism=40)
    assert providers.network_parallelism(chosen) == 40
    assert providers.parallelism(chosen) == 3


def test_the_flag_sets_both() -> None:
    chosen = backend("azure", parallelism=3, networkParallelism=40)
    assert providers.network_parallelism(chosen, 7) == 7
    assert providers.parallelism(chosen, 7) == 7


def test_a_backend_without_a_network_setting_goes_as_wide_as_its_jobs() -> None:
    assert providers.network_parallelism(backend("local", parallelism=2)) == 2
    assert providers.network_parallelism(backend("local")) == CPUS


def test_the_azure_provider_pools_and_paces_requests_at_the_network_width() -> None:
    chosen = backend(
        "azure",
        subscriptionId="s",
        resourceGroup="rg",
        auth={"tokenEnv": "T"},
        storage={
            "connectionString": model.Secret("env:S", "UseDevelopmentStorage=true"),
            "container": "models",
        },
        parallelism=2,
    )
    made = providers.create(chosen, manifest_dir=Path("."), state_dir=None, env={"T": "token"})
    assert isinstance(made, azure_provider.AzureProvider)
    assert made.workers == RESERVE
    assert made.arm.pacer.buckets["reads"].reserve >= RESERVE


def test_a_pacer_as_wide_as_its_pool_keeps_a_reserve_that_wide() -> None:
    assert throttle.Pacer(in_flight=64).buckets["reads"].reserve == 64
    assert throttle.Pacer(in_flight=RESERVE).buckets["reads"].reserve == RESERVE


def test_a_retry_after_is_honoured_and_leaves_the_backoff_where_it_was() -> None:
    waits = polling.Backoff(cap=5.0)
    assert [waits.next(None), waits.next(12.0), waits.next(None)] == [0.5, 12.0, 1.0]


def test_without_retry_after_waits_double_up_to_the_cap() -> None:
    waits = polling.Backoff(cap=5.0)
    assert [waits.next(None) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert [waits.next(0.0) for _ in range(2)] == [5.0, 5.0]  # 0 is no header, as azure-core


def test_a_cap_below_the_first_wait_is_every_wait() -> None:
    waits = polling.Backoff(cap=0.05)
    assert [waits.next(None) for _ in range(3)] == [0.05, 0.05, 0.05]


def test_an_absurd_retry_after_is_capped_at_a_minute() -> None:
    assert polling.Backoff(cap=5.0).next(86400.0) == polling.RETRY_AFTER_MAX == 60.0


MANIFEST = """\
apiVersion: retrain/v1
backend:
  kind: azure
  azure:
    subscriptionId: s
    resourceGroup: rg
    auth: {tokenEnv: T}
    storage: {connectionString: "${env:S}", container: models}
trainers:
  mean:
    bes: {url: "https://bes.example/services/x", apiKey: "${env:K}"}
endpoints:
  - {name: a, webService: a, trainer: mean, asset: "m [trained model]", version: "1",
     inputs: {data: data/a.csv}}
"""


@pytest.mark.parametrize(("flag", "jobs", "requests"), [(0, CPUS, RESERVE), (4, 4, 4)])
def test_a_session_resolves_jobs_and_requests_once(
    tmp_path: Path, flag: int, jobs: int, requests: int
) -> None:
    path = tmp_path / "retrain.yaml"
    path.write_text(MANIFEST)
    env = {"T": "token", "S": "UseDevelopmentStorage=true", "K": "bes-key"}
    session = engine.open_session(settings.Settings(manifest=path, parallelism=flag), env=env)
    assert (session.parallelism, session.network_parallelism) == (jobs, requests)
    assert isinstance(session.provider, azure_provider.AzureProvider)
    assert session.provider.workers == requests
