"""Redaction of secrets from anything we print or write.

Two nets: the literal values of every secret the manifest resolved, and
patterns for credentials that arrive from elsewhere (SAS ``sig=`` in blob
URLs, storage ``AccountKey=`` in connection strings, bearer tokens). Applied
at every boundary where text leaves the process: plans, logs, errors, history.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "(sensitive)"
MIN_SECRET_LEN = 4  # shorter values would mask ordinary words; such secrets are refused anyway

_PATTERNS = (
    # SAS tokens: the signature is the secret; keep the rest for debugging.
    (re.compile(r"(?i)([?&]sig=)[^&\s\"']+"), rf"\1{MASK}"),
    (re.compile(r"(?i)(AccountKey=)[^;\s\"']+"), rf"\1{MASK}"),
    (re.compile(r"(?i)(SharedAccessSignature=)[^;\s\"']+"), rf"\1{MASK}"),
    (re.compile(r"(?i)(Bearer\s+)[A-Za-z0-9._~+/=-]+"), rf"\1{MASK}"),
)


class Redactor:
    """Masks the given secret values and credential patterns in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if len(s) >= MIN_SECRET_LEN}
        # Longest first, so a secret containing another is masked whole.
        self._values = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def extend(self, secrets: Iterable[str]) -> Redactor:
        return Redactor([*self._values, *secrets])


scrub = Redactor()
