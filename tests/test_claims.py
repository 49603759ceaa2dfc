"""The claims registry: verdicts from criteria fixed before the run, and the scorecard's tables."""

import importlib
import pkgutil

import numpy as np
import pytest

import bnguide.experiments as experiments
from bnguide import claims
from bnguide.claims import Claim, Direction, Measured, Quoted, Ratio


@pytest.mark.parametrize(
    ("values", "verdict"),
    [
        ([0.5, 1.0, 2.0], "reproduced"),
        ([-0.5, -1.0], "opposite"),
        ([0.5, 1.0, -1.0], "partly"),
        ([0.5, -1.0, -2.0], "not reproduced"),
        ([0.5, -0.5], "not reproduced"),
    ],
)
def test_direction_verdicts_count_seeds_on_each_side(values, verdict):
    assert Direction(">", 0.0, "gap").verdict(values) == verdict
    flipped = [-v for v in values]
    assert Direction("<", 0.0, "gap").verdict(flipped) == verdict


def test_a_value_within_the_margin_is_on_neither_side():
    c = Direction(">", 1.0, "ratio", margin=0.1)
    assert c.sides([1.05, 1.2, 0.95]) == (1, 0)
    assert c.verdict([1.05, 1.05]) == "not reproduced"
    assert c.verdict([1.2, 1.05]) == "partly"


@pytest.mark.parametrize(
    ("values", "verdict"),
    [
        ([6.0, 9.0, 13.9], "reproduced"),
        ([3.6, 14.0], "reproduced"),
        ([1.5, 20.0], "partly"),
        ([0.5, 0.9], "opposite"),
        ([0.5, 2.0], "not reproduced"),
    ],
)
def test_ratio_verdicts_use_the_tolerance_fixed_in_advance(values, verdict):
    assert Ratio(7.0, within=2.0).verdict(values) == verdict


def test_a_ratio_below_one_is_judged_on_its_own_side():
    c = Ratio(0.25, within=2.0)
    assert c.verdict([0.2, 0.3]) == "reproduced"
    assert c.verdict([0.05, 0.9]) == "partly"
    assert c.verdict([1.5, 3.0]) == "opposite"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Direction(">=", 0.0, "x"), "'>' or '<'"),
        (lambda: Direction(">", 0.0, "x", margin=-1), "margin"),
        (lambda: Ratio(1.0, within=2.0), "not 1"),
        (lambda: Ratio(-2.0, within=2.0), "> 0"),
        (lambda: Ratio(2.0, within=1.0), "within"),
        (lambda: Direction(">", 0, "x").verdict([]), "at least one"),
        (lambda: Direction(">", 0, "x").verdict([1.0, np.nan]), "finite"),
    ],
)
def test_bad_criteria_and_values_are_refused_with_a_reason(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def _claim(claim_id, values=(1.0, 2.0)):
    return Claim(
        id=claim_id,
        paper="Paper 2000",
        where="Fig. 1",
        statement="BN is faster",
        paper_value="2x",
        measure=lambda: values,
        criterion=Ratio(2.0, within=1.5),
        chapter="book/why/ics",
        note="a smaller network",
    )


def test_an_id_is_registered_once_and_unknown_ids_list_the_known_ones(monkeypatch):
    monkeypatch.setattr(claims, "_REGISTRY", {})  # leave the book's registry as it was
    c = _claim("test-only-claim", values=(1.2, 2.0))
    claims.register(c)
    claims.register(c)  # the same claim again is fine
    with pytest.raises(ValueError, match="registered twice"):
        claims.register(_claim("test-only-claim"))
    assert claims.check("test-only-claim").verdict == "partly"
    with pytest.raises(KeyError, match="test-only-claim"):
        claims.get("no-such-claim")


def test_scorecard_table_links_each_row_to_its_chapter_relative_to_the_page():
    m = Measured(_claim("x"), np.array([1.0, 2.0]), "partly")
    html = claims.scorecard_table([m], page="book/scorecard")._repr_html_()
    assert '<a href="why/ics.html">ics</a>' in html
    assert "mean 1.5, range 1–2 (2 seeds)" in html
    assert "partly (a smaller network)" in html
    assert claims.verdict_counts([m]) == {
        "reproduced": 0,
        "partly": 1,
        "not reproduced": 0,
        "opposite": 0,
    }
    q = Quoted("Paper", "Table 2", "ImageNet accuracy", "72.2%", "book/in-3-minutes", "ImageNet")
    assert '<a href="in-3-minutes.html">' in claims.quoted_table([q])._repr_html_()


def _experiment_modules():
    for info in pkgutil.iter_modules(experiments.__path__):
        yield importlib.import_module(f"{experiments.__name__}.{info.name}")


def test_every_experiment_with_paper_numbers_compares_them_in_claims():
    """A PAPER_ constant is there to be compared with: its module lists claims or quoted rows."""
    missing = [
        m.__name__
        for m in _experiment_modules()
        if any(n.startswith("PAPER_") for n in vars(m))
        and not (getattr(m, "CLAIMS", None) or getattr(m, "QUOTED", None))
    ]
    assert not missing, f"experiments with PAPER_ numbers but no CLAIMS/QUOTED: {missing}"


def test_claims_are_well_formed():
    all_claims = claims.all_claims()
    ids = [c.id for c in all_claims]
    assert len(ids) == len(set(ids))
    for c in all_claims:
        assert c.chapter.startswith("book/"), c.id
        assert isinstance(c.criterion, claims.Criterion), c.id
        assert c.paper in ("Ioffe & Szegedy 2015", "Santurkar et al. 2018"), c.id
