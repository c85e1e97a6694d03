"""The manifest schema of the registered backends: ``python -m reconciler.providers.schema``
(``make schema``) writes the published ``schemas/retrain.schema.json`` from the core part
and the built-in backends' fragments; a test fails when the file is out of date."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from reconciler import providers, schema

PUBLISHED = Path(__file__).parents[2] / "schemas" / "retrain.schema.json"


def built_in() -> dict[str, Any]:
    """The core schema composed with the built-in backends' fragments, in registry order."""
    known = providers.registry()
    return schema.compose([(name, known[name].schema_fragment()) for name in providers.BUILT_IN])


def main(argv: list[str]) -> int:
    """Write the published schema (to ``argv[0]`` if given)."""
    target = Path(argv[0]) if argv else PUBLISHED
    target.write_text(schema.published(built_in()), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
