"""retrain: a declarative GitOps reconciler for ML models behind web services.

The package is layered (enforced by import-linter, see pyproject.toml):
``cli`` turns flags into settings; ``engine`` orders the stages; ``plan`` and
``gate`` decide (pure); ``apply`` acts through a ``providers`` backend.
"""

__version__ = "0.1.0"
