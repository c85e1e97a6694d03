"""``OnlineApi``: the endpoint and deployment handlers mounted on a server.

Why a separate module: the handlers are split by resource (:mod:`.endpoints`,
:mod:`.deployments`) over shared lookups and views (:mod:`.online`); this puts them together
and registers every route.
"""

from __future__ import annotations

from tests.fakes.httpserver import FakeHTTPServer

from .common import SEG, WS_PATH
from .deployments import DeploymentHandlers
from .endpoints import EndpointHandlers


class OnlineApi(EndpointHandlers, DeploymentHandlers):
    """Handlers for endpoints, deployments, keys and the LRO status URLs."""

    def mount(self, server: FakeHTTPServer, prefix: str = "") -> None:
        ep = rf"(?i){prefix}{WS_PATH}/onlineEndpoints"
        one = rf"{ep}/(?P<ep>{SEG})"
        dep = rf"{one}/deployments/(?P<dep>{SEG})"
        loc = (
            rf"(?i){prefix}/subscriptions/(?P<sub>{SEG})/providers"
            rf"/Microsoft\.MachineLearningServices/locations/(?P<loc>{SEG})"
        )
        w = self.s.gate.wrap
        table = [
            ("GET", ep, self._list_endpoints, "aml.endpoints.list"),
            ("GET", one, self._get_endpoint, "aml.endpoint.get"),
            ("PUT", one, self._put_endpoint, "aml.endpoint.put"),
            ("PATCH", one, self._patch_endpoint, "aml.endpoint.patch"),
            ("DELETE", one, self._delete_endpoint, "aml.endpoint.delete"),
            ("POST", rf"{one}/listKeys", self._list_keys, "aml.endpoint.listKeys"),
            (
                "POST",
                rf"{one}/regenerateKeys",
                self._regenerate_keys,
                "aml.endpoint.regenerateKeys",
            ),
            ("POST", rf"{one}/token", self._token, "aml.endpoint.token"),
            ("GET", rf"{one}/deployments", self._list_deployments, "aml.deployments.list"),
            ("GET", dep, self._get_deployment, "aml.deployment.get"),
            ("PUT", dep, self._put_deployment, "aml.deployment.put"),
            ("PATCH", dep, self._patch_deployment, "aml.deployment.patch"),
            ("DELETE", dep, self._delete_deployment, "aml.deployment.delete"),
            ("POST", rf"{dep}/getLogs", self._get_logs, "aml.deployment.getLogs"),
            (
                "GET",
                rf"{loc}/mfeOperationsStatus/(?P<op>{SEG})",
                self._op_status,
                "aml.operation.status",
            ),
            (
                "GET",
                rf"{loc}/mfeOperationResults/(?P<op>{SEG})",
                self._op_result,
                "aml.operation.result",
            ),
        ]
        for method, pattern, fn, name in table:
            server.add_route(method, pattern, w(fn), name)
