"""``retrain watch``: the controller. A long-running loop that plans (and, with
``--auto-apply``, applies) when something changed, on an interval and on trainers'
cron schedules, backs off per endpoint on failure, and exposes health and Prometheus
metrics.

The deciding parts are pure and take the clock as an argument: ``triggers`` (what
changed since the last poll), ``backoff`` (who waits after a failure), ``decide``
(what one reconcile covers) and ``notices`` (what the webhook is told). ``sense``,
``loop``, ``metrics``, ``webhook`` and ``server`` do the I/O. An outer layer, like
``cli``: the engine never imports it.
"""
