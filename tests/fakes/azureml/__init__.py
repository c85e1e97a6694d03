"""A faithful HTTPS fake of Azure Machine Learning v2 (``Microsoft.MachineLearningServices``).

Why: the ``azureml`` backend (issue 9) observes online endpoints, clones deployments, registers
model versions, runs command jobs and shifts traffic, and none of that can be trusted unless it
runs against something that behaves like the service: swagger-validated bodies, long-running
operations that take polls, the traffic rules, jobs that really train against real blobs, and
scoring URIs that really score. Built from Microsoft's swagger (``mfe.json`` 2025-12-01, subset
vendored as ``tests/fakes/ml-services-2025-12-01.subset.swagger.json``) and the Microsoft Learn
pages cited in each module. Where the sources are silent the module docstring says
"(inference)".

Modules: :mod:`.common` (gate, errors, LROs), :mod:`.validation` (strict swagger walker),
:mod:`.online` (the endpoint/deployment rules, views, LRO helpers) with :mod:`.endpoints`,
:mod:`.deployments` and :mod:`.online_api` (routes), :mod:`.traffic` (traffic rules),
:mod:`.assets` (models, datastores), :mod:`.jobs` (command jobs) with :mod:`.runner` (the
training thread), :mod:`.blobs` (``azureml://`` URIs → Azurite), :mod:`.scoring` (the data
plane), :mod:`.state` (the store), :mod:`.fake` (assembly, seeding, fault switches).
"""

from .fake import FakeAzureML

__all__ = ["FakeAzureML"]
