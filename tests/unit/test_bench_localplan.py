"""The local plan benchmark's growth fit, which ``--sizes`` with one value crashed."""

from __future__ import annotations

import math

from bench import localplan


def test_fit_of_one_size_is_nan_not_a_crash() -> None:
    assert all(math.isnan(x) for x in localplan.fit([(10_000, 0.9)]))


def test_fit_of_a_line_gives_its_slope_intercept_and_exponent_one() -> None:
    per_endpoint, fixed, exponent = localplan.fit([(100, 0.3), (1_000, 1.2), (10_000, 10.2)])
    assert math.isclose(per_endpoint, 1.0) and math.isclose(fixed, 0.2, abs_tol=1e-9)
    assert 0.9 < exponent < 1.0
