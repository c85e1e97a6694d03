"""retrain over HTTP: the outer layer (beside ``cli``) that serves what the engine knows.

Nothing here decides anything the core does not: the status page lays out what
``engine.read_status`` and the history say, with the trend of each gate metric.
"""
