"""The names retrain gives what it makes in a workspace, all derived from a fingerprint.

Pure, so the plan can say them before anything exists, and every run computes the same
ones (which is what makes a crashed run's job and deployment findable again).
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler import fingerprint

NAME_HEX = 32  # fingerprint characters in a job name: 128 bits, unique in any workspace


def job_name(fp: str, attempt: int = 1) -> str:
    """``retrain-<fingerprint>`` (first 32 hex), ``-N`` for the Nth attempt."""
    name = f"retrain-{fp[:NAME_HEX]}"
    return name if attempt == 1 else f"{name}-{attempt}"


def deployment_name(fp: str) -> str:
    """``retrain-<12 hex>``: within the 3-32 characters a deployment name may have."""
    return f"retrain-{fingerprint.short(fp)}"


def free_deployment_name(fp: str, taken: Iterable[str]) -> str:
    """``deployment_name(fp)``, or with ``-2``, ``-3``... when a deployment of that name
    exists serving something else (someone pointed it at another model by hand): a new
    model always gets a new deployment, never an in-place change of a live one."""
    used = {name.lower() for name in taken}
    base = name = deployment_name(fp)
    attempt = 1
    while name.lower() in used:
        attempt += 1
        name = f"{base}-{attempt}"
    return name
