"""Local, faithful fakes of the Azure APIs the reconciler talks to, for tests and demos.

Why this package exists: Azure ML Studio (classic) is closed to new resources and these
machines reach no cloud, so the Azure provider is developed against real HTTPS servers on
loopback that implement Resource Manager ``Microsoft.MachineLearning/webServices``
(2017-01-01), BES 2.0 jobs and the classic management endpoints, with blob storage served by
the real Azurite emulator. See ``server.FakeAzure`` for the one-stop entry point and
``fixtures`` for pytest fixtures; ``python -m tests.fakes`` runs it all by hand.
"""
