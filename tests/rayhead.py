"""A real local Ray head for the ``ray`` tests: one per session, shared by all of them
(``bench/rayhead.py`` starts and stops it). Its temporary directory (logs, uploaded
working_dirs, job logs) lies under the session's temporary directory, so the suite's
secret scan reads every file Ray wrote too.

Ray takes seconds to start (``bench/results/ray.md`` has the figure), which is why the
Ray tests are few and share this head. Where Ray is not installed (``pip install
'retrain[ray]'``; Ray ships no wheel for some platforms) they skip, saying so, unless
``RETRAIN_REQUIRE_RAY=1`` (CI), where a missing Ray fails them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest

from bench import rayhead

REQUIRE = "RETRAIN_REQUIRE_RAY"


def require_ray() -> None:
    if importlib.util.find_spec("ray") is not None:
        return
    message = "Ray is not installed: pip install 'retrain[ray]' (make install-test does)"
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{message}; {REQUIRE}=1 says these tests must run")
    pytest.skip(message)


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Jobs API address (``http://127.0.0.1:PORT``) of a running local Ray head."""
    require_ray()
    temp = tmp_path_factory.mktemp("ray")  # short: Ray's socket paths must fit 107 bytes
    try:
        head = rayhead.start(temp)
    except rayhead.StartError as e:
        pytest.fail(str(e))
    try:
        yield head.address
    finally:
        rayhead.stop(head)
