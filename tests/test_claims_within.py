"""claims.Within: a level with an absolute tolerance fixed before the run."""

import numpy as np
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


def test_margin_is_the_distance_to_the_nearest_boundary():
    from bnguide.claims import Claim, Direction, Measured, Ratio

    def measured(criterion, values):
        claim = Claim("x", "p", "w", "s", "v", lambda: values, criterion, "book/x")
        return Measured(claim, np.asarray(values, float), criterion.verdict(values))

    assert measured(Direction(">", 0.0, "d"), [0.5, 2.0]).margin() == pytest.approx(0.5)
    assert measured(Direction(">", 0.0, "d", margin=0.2), [0.5, -1]).margin() == pytest.approx(0.3)
    m = measured(Ratio(4.0, within=2.0), [2.5, 9.0])  # edges 2, 8 and 1
    assert m.margin() == pytest.approx(0.5) and m.verdict == "partly"
    assert measured(Within(98.2, 0.5), [98.0, 98.6]).margin() == pytest.approx(0.1)
    assert "x: partly [2.5, 9] margin 0.5" in m.report()
