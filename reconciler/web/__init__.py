"""The HTTP side of ``retrain``: the server factory (``app``) and web services that score
(``serve``). An outer layer, like ``cli``: it reaches a backend only through the
provider protocol, and starlette and uvicorn are imported only when a server starts."""
