"""claims.Within: a level with an absolute tolerance fixed before the run."""

import pytest

from bnguide.claims import Within


def test_within_verdicts():
    c = Within(98.2, 0.5, "final accuracy (%)")
    assert c.verdict([98.0, 98.1, 98.6]) == "reproduced"
    assert c.verdict([98.0, 98.1, 97.5]) == "partly"  # 2 of 3 inside
    assert c.verdict([98.0, 97.0, 96.5]) == "not reproduced"  # 1 of 3 inside
    assert c.verdict([55.0, 56.0]) == "not reproduced"
    assert c.inside([97.7, 98.7, 98.71]) == 2  # the edges count as inside
    assert "97.7 to 98.7" in c.describe()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"paper": float("nan"), "tolerance": 1.0}, "finite"),
        ({"paper": 1.0, "tolerance": 0}, "> 0"),
    ],
)
def test_within_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Within(**kwargs)


def test_within_rejects_non_finite_values():
    with pytest.raises(ValueError, match="finite"):
        Within(1.0, 0.1).verdict([1.0, float("nan")])
