"""Content fingerprints: the identity of a trained model.

A model is keyed by what went into it, never by where that lived: the digest
of the trainer's code, the digest of each named input's *content* and the
parameters. Same path with new data gives a new fingerprint; the same data
under another path (or another endpoint) gives the same one, so endpoints that
share it share one training job. Providers compute the digests (reading files
or blob properties; see ``providers.digests``); combining them here is pure.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping

from reconciler import model

SCHEME = "retrain-fp-v1"  # bump when the recipe changes, so old and new never collide
SHORT = 12  # hex digits shown to people: 48 bits, ample for one fleet's models


def canonical_json(value: model.JSON) -> str:
    """One spelling per value: sorted keys, no whitespace, ASCII only."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def combine(
    *, trainer_digest: str, input_digests: Mapping[str, str], parameters: Mapping[str, model.JSON]
) -> str:
    """The fingerprint of a model trained by this code, on these inputs, with these parameters."""
    recipe = {
        "scheme": SCHEME,
        "trainer": trainer_digest,
        "inputs": dict(input_digests),
        "parameters": dict(parameters),
    }
    return hashlib.sha256(canonical_json(recipe).encode()).hexdigest()


SECRET_ROUNDS = 200_000  # PBKDF2 rounds: a guess at a weak secret costs ~0.1 s, not 1 ns


@functools.cache
def secret_digest(name: str, value: str) -> str:
    """What a secret parameter contributes to a fingerprint: a slow, salted digest, so
    a changed secret changes the model's identity while its value stays unguessable
    from anything retrain writes."""
    salt = f"{SCHEME}:secret-parameter:{name}".encode()
    key = hashlib.pbkdf2_hmac("sha256", value.encode(), salt, SECRET_ROUNDS)
    return f"sensitive:{key.hex()[:32]}"


def short(fingerprint: str | None) -> str:
    """The first hex digits of a fingerprint (or any sha256 digest), for display;
    every place that shows one goes through here, so they all cut it alike."""
    return fingerprint[:SHORT] if fingerprint else "-"
