"""Templates and per-example workspaces for the fuzz families, for pytest and the bench.

``Campaign`` trains the small project once (``converged``), derives the project with
changes pending and its saved plan (``pending``), and hands each example a fresh copy:
the manifest family edits only ``retrain.yaml`` of one long-lived copy (re-copied if an
input ever changed it), the plan and state families get a new copy each time.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from tests.fuzz import families, harness


class Campaign:
    """The templates of one fuzzing session, under ``root``."""

    def __init__(self, root: Path, env: Mapping[str, str]) -> None:
        self.root = root
        self.env = env
        self.converged = harness.converged(root / "converged", env)
        self.expected = harness.served(self.converged)
        self.pending, self.saved_plan = harness.pending(root / "pending", self.converged, env)
        self._manifest_copy: Path | None = None

    def __repr__(self) -> str:  # its env holds the test secret: never print it
        return f"Campaign({self.root})"

    def fresh(self, template: Path) -> Path:
        work = self.root / "work"
        if work.exists():
            shutil.rmtree(work)
        return harness.clone(template, work)

    def manifest(self, given: families.ManifestInput) -> harness.Verdict:
        copy = self.root / "manifest-work"
        if self._manifest_copy is None:
            self._manifest_copy = harness.clone(self.converged, copy)
        verdict = families.check_manifest(copy, given, self.env)
        if any(p.startswith("partial change") for p in verdict.problems):
            shutil.rmtree(copy)
            self._manifest_copy = None
        return verdict

    def plan(self, given: families.PlanInput) -> harness.Verdict:
        return families.check_plan(self.fresh(self.pending), self.expected, given, self.env)

    def state(self, given: families.StateInput) -> harness.Verdict:
        return families.check_state(self.fresh(self.converged), self.expected, given, self.env)
