"""The controller's Prometheus metrics (``prometheus-client``, the project's own client).

A registry of its own, not the process-wide default, so a test (or a second controller
in one process) starts from zero. Names follow Prometheus' conventions: ``_total`` on
counters (added by the client), base units (seconds), one info-style gauge whose
labels say what each endpoint serves.
"""

from __future__ import annotations

from collections.abc import Mapping

import prometheus_client as prom

from reconciler import apply, plan

# Training jobs run from seconds (the example) to hours (a cloud job): buckets to a day.
TRAINING_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
RECONCILE_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 3600, 7200)  # a plan to a long apply


class Metrics:
    """Every series, in one registry (``registry``, for ``/metrics``)."""

    def __init__(self) -> None:
        # No ``_created`` series: a scrape needs the values, and they double its size.
        prom.disable_created_metrics()  # type: ignore[no-untyped-call]
        r = self.registry = prom.CollectorRegistry()
        self.reconciles = prom.Counter(
            "retrain_reconciles",
            "Reconciles run, by result (ok, failed, locked: another apply held the lock).",
            ["result"],
            registry=r,
        )
        self.reconcile_seconds = prom.Histogram(
            "retrain_reconcile_duration_seconds",
            "How long one reconcile took (plan, or plan and apply).",
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.applies = prom.Counter(
            "retrain_applies",
            "Endpoint results of applies, by action and status.",
            ["endpoint", "action", "status"],
            registry=r,
        )
        self.drift = prom.Gauge(
            "retrain_drift",
            "1 when the endpoint's live model reference was changed out of band.",
            ["endpoint"],
            registry=r,
        )
        self.pending = prom.Gauge(
            "retrain_changes_pending",
            "1 when the last plan wants to change the endpoint (0: in sync).",
            ["endpoint"],
            registry=r,
        )
        self.training = prom.Counter(
            "retrain_training_jobs",
            "Training jobs that ended, by result (done, failed, stopped).",
            ["result"],
            registry=r,
        )
        self.training_seconds = prom.Histogram(
            "retrain_training_duration_seconds",
            "How long each training job ran.",
            buckets=TRAINING_BUCKETS,
            registry=r,
        )
        self.gate = prom.Counter(
            "retrain_gate_verdicts",
            "Gate verdicts on newly trained models, by endpoint and verdict (pass, fail).",
            ["endpoint", "verdict"],
            registry=r,
        )
        self.serving = prom.Gauge(
            "retrain_serving_info",
            "Always 1; the labels say which model (fingerprint, version) the endpoint serves.",
            ["endpoint", "web_service", "fingerprint", "version"],
            registry=r,
        )
        self.failures = prom.Gauge(
            "retrain_endpoint_consecutive_failures",
            "Failed reconciles in a row (0: healthy); the endpoint backs off meanwhile.",
            ["endpoint"],
            registry=r,
        )
        self.last_success = prom.Gauge(
            "retrain_last_success_timestamp_seconds",
            "When the last reconcile without failure ended (Unix time).",
            registry=r,
        )
        self._serving: dict[str, tuple[str, str, str, str]] = {}

    def planned(self, the_plan: plan.Plan) -> None:
        """Drift, pending changes and what each planned endpoint serves now."""
        for c in the_plan.changes:
            self.drift.labels(c.endpoint).set(int(c.action is plan.Action.DRIFT))
            self.pending.labels(c.endpoint).set(int(c.action is not plan.Action.NOOP))
            live = c.before or plan.ABSENT
            if live.fingerprint:  # a missing or unmanaged service serves no model of ours
                self.serve(c.endpoint, c.web_service, live.fingerprint, live.version or "")

    def applied(self, the_plan: plan.Plan, report: apply.Report) -> None:
        """Each endpoint's result; a promoted endpoint's new serving label set."""
        services = {c.endpoint: c for c in the_plan.changes}
        for r in report.results:
            if r.status is apply.Status.SKIPPED:
                continue
            self.applies.labels(r.endpoint, str(r.action), str(r.status)).inc()
            change = services.get(r.endpoint)
            if r.status is apply.Status.APPLIED and change is not None and r.fingerprint:
                after = change.after or plan.ABSENT
                self.serve(r.endpoint, change.web_service, r.fingerprint, after.version or "")
                self.drift.labels(r.endpoint).set(0)
                self.pending.labels(r.endpoint).set(0)

    def serve(self, endpoint: str, web_service: str, fp: str, version: str) -> None:
        """One label set per endpoint: the previous one goes when the model changes."""
        labels = (endpoint, web_service, fp, version)
        old = self._serving.get(endpoint)
        if old is not None and old != labels:
            self.serving.remove(*old)
        self._serving[endpoint] = labels
        self.serving.labels(*labels).set(1)

    def failing(self, counts: Mapping[str, int]) -> None:
        """Every known endpoint's failures in a row (absent: 0)."""
        for endpoint, n in counts.items():
            self.failures.labels(endpoint).set(n)

    def text(self) -> bytes:
        return bytes(prom.generate_latest(self.registry))
