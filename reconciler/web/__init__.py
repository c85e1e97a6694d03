"""retrain over HTTP: the outer layer (beside ``cli``) that serves what the engine knows:
the server factory (``app``), web services that score (``serve``) and the status page
(``page``). It reaches a backend only through the provider protocol, decides nothing the
core does not, and starlette and uvicorn are imported only when a server starts."""
