"""Every comparison with a paper as a record, with its criterion fixed before the run.

A :class:`Claim` names the paper, the figure or table, the paper's value (a constant of the
experiment module that measures it), what we measure, and a :class:`Criterion` written before any
run: a direction (:class:`Direction`), a ratio with a tolerance (:class:`Ratio`) or a level with
a tolerance (:class:`Within`). Its ``measure`` function returns one number per seed, read from the
experiment's cached results; the criterion turns those numbers into a verdict: *reproduced*,
*partly*, *not reproduced* or *opposite*. A criterion is never a band around this run's own number.

Claims register themselves with :func:`register` (the experiment modules' ``CLAIMS`` lists are
collected by :func:`all_claims`; their ``QUOTED`` lists, paper numbers the book quotes without
measuring them, by :func:`all_quoted`); :func:`scorecard` measures them all and returns the rows
of the book's :doc:`/book/scorecard` page. Used in :doc:`/book/scorecard` and by the chapters
whose checks assert a verdict (``assert claims.check("ics-layer5-cos").verdict == "opposite"``).

Examples
--------
>>> c = Direction(">", 0.0, "BN's accuracy minus the standard net's")
>>> c.verdict([1.2, 0.4, 2.0])
'reproduced'
>>> c.verdict([-1.0, -0.5])
'opposite'
>>> Ratio(7.0, within=2.0).verdict([6.2, 9.8, 12.3])
'reproduced'
>>> Within(98.2, 0.5, "final accuracy (%)").verdict([98.0, 98.1, 97.5])
'partly'
"""

from __future__ import annotations

import importlib
import pkgutil
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from bnguide import cache
from bnguide.table import Link, Table

__all__ = [
    "VERDICTS",
    "Claim",
    "Criterion",
    "Direction",
    "Measured",
    "Quoted",
    "Ratio",
    "Within",
    "all_claims",
    "all_quoted",
    "check",
    "get",
    "quoted_table",
    "register",
    "scorecard",
    "scorecard_table",
    "verdict_counts",
]

VERDICTS = ("reproduced", "partly", "not reproduced", "opposite")
"""The possible verdicts, best first."""


class Criterion:
    """What must hold for a claim to count as reproduced; fixed before the run."""

    def verdict(self, values: Sequence[float]) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def boundaries(self) -> tuple[float, ...]:  # pragma: no cover - interface
        """The values at which a seed changes side: where a verdict can change."""
        raise NotImplementedError


@dataclass(frozen=True)
class Direction(Criterion):
    """The paper's direction: each seed's value is above (``">"``) or below (``"<"``) a threshold.

    Parameters
    ----------
    sense : {">", "<"}
        The paper's side of ``threshold``.
    threshold : float
        Usually 0 (a difference) or 1 (a ratio).
    quantity : str
        What the per-seed value is, in words (shown on the scorecard).
    margin : float, optional
        A value within ``margin`` of ``threshold`` is on neither side (no effect either way).

    Notes
    -----
    Verdicts over ``n`` seeds, with ``k`` on the paper's side and ``o`` on the other:
    ``k == n``: reproduced; ``o == n``: opposite; ``k > o``: partly; otherwise not reproduced.
    """

    sense: str
    threshold: float
    quantity: str
    margin: float = 0.0

    def __post_init__(self):
        if self.sense not in (">", "<"):
            raise ValueError(f"Direction sense must be '>' or '<', got {self.sense!r}.")
        if not self.margin >= 0:
            raise ValueError(f"Direction margin must be >= 0, got {self.margin!r}.")

    def sides(self, values: Sequence[float]) -> tuple[int, int]:
        """(seeds on the paper's side, seeds on the other side)."""
        v = _values(values)
        sign = 1.0 if self.sense == ">" else -1.0
        d = sign * (v - self.threshold)
        return int(np.sum(d > self.margin)), int(np.sum(d < -self.margin))

    def verdict(self, values: Sequence[float]) -> str:
        n = len(_values(values))
        k, o = self.sides(values)
        if k == n:
            return "reproduced"
        if o == n:
            return "opposite"
        return "partly" if k > o else "not reproduced"

    def boundaries(self) -> tuple[float, ...]:
        t, m = self.threshold, self.margin
        return (t - m, t + m) if m else (t,)

    def describe(self) -> str:
        m = f" by more than {self.margin:g}" if self.margin else ""
        return f"{self.quantity} {self.sense} {self.threshold:g}{m} on every seed"


@dataclass(frozen=True)
class Ratio(Criterion):
    """Each seed's ratio is the paper's ratio within a factor ``within``.

    Parameters
    ----------
    paper : float
        The paper's ratio (for example 7.0 for "7x narrower").
    within : float
        Allowed factor either way (2.0: from paper/2 to paper*2). Must be > 1.

    Notes
    -----
    Every seed inside the tolerance: reproduced. Every seed on the paper's side of 1 but some
    outside the tolerance: partly. Every seed on the other side of 1: opposite. Otherwise: not
    reproduced.
    """

    paper: float
    within: float
    quantity: str = "ratio"

    def __post_init__(self):
        if not self.paper > 0 or self.paper == 1:
            raise ValueError(f"Ratio paper value must be > 0 and not 1, got {self.paper!r}.")
        if not self.within > 1:
            raise ValueError(f"Ratio tolerance 'within' must be > 1, got {self.within!r}.")

    def verdict(self, values: Sequence[float]) -> str:
        v = _values(values)
        lo, hi = self.paper / self.within, self.paper * self.within
        if np.all((v >= lo) & (v <= hi)):
            return "reproduced"
        same_side = (v > 1) if self.paper > 1 else (v < 1)
        if np.all(same_side):
            return "partly"
        if np.all(~same_side & (v != 1)):
            return "opposite"
        return "not reproduced"

    def boundaries(self) -> tuple[float, ...]:
        return (self.paper / self.within, self.paper * self.within, 1.0)

    def describe(self) -> str:
        return (
            f"{self.quantity} within {self.within:g}x of {self.paper:g} "
            f"({self.paper / self.within:.3g} to {self.paper * self.within:.3g}) on every seed"
        )


@dataclass(frozen=True)
class Within(Criterion):
    """Each seed's value is the paper's value within an absolute tolerance.

    For a quantity the paper reports as a level (an accuracy, a range read off a plot) rather
    than a direction: ``tolerance`` is fixed before the run from how precisely the paper's value
    can be read and how much a protocol detail the paper leaves open may move it.

    Parameters
    ----------
    paper : float
        The paper's value.
    tolerance : float
        Allowed distance either way (> 0), in the units of the value.
    quantity : str
        What the per-seed value is, in words.

    Notes
    -----
    Every seed within the tolerance: reproduced; more seeds within than outside: partly;
    otherwise: not reproduced (there is no "opposite" side of a level).
    """

    paper: float
    tolerance: float
    quantity: str = "value"

    def __post_init__(self):
        if not np.isfinite(self.paper):
            raise ValueError(f"Within paper value must be finite, got {self.paper!r}.")
        if not self.tolerance > 0:
            raise ValueError(f"Within tolerance must be > 0, got {self.tolerance!r}.")

    def inside(self, values: Sequence[float]) -> int:
        """How many seeds lie within the tolerance of the paper's value."""
        return int(np.sum(np.abs(_values(values) - self.paper) <= self.tolerance))

    def verdict(self, values: Sequence[float]) -> str:
        n, k = len(_values(values)), self.inside(values)
        if k == n:
            return "reproduced"
        return "partly" if k > n - k else "not reproduced"

    def boundaries(self) -> tuple[float, ...]:
        return (self.paper - self.tolerance, self.paper + self.tolerance)

    def describe(self) -> str:
        low, high = self.paper - self.tolerance, self.paper + self.tolerance
        return (
            f"{self.quantity} within {self.tolerance:g} of {self.paper:g} "
            f"({low:.3g} to {high:.3g}) on every seed"
        )


@dataclass(frozen=True)
class Claim:
    """One comparison with a paper.

    Attributes
    ----------
    id : str
        Short kebab-case name, unique (``"ics-layer5-cos"``).
    paper : str
        ``"Ioffe & Szegedy 2015"`` or ``"Santurkar et al. 2018"``.
    where : str
        Figure, table or section (``"Fig. 2"``).
    statement : str
        What the paper reports, in one sentence.
    paper_value : str
        The paper's number(s) as shown, formatted from the module constant.
    measure : callable
        ``measure() -> sequence of float``: one value per seed, from the experiment's (cached)
        results.
    criterion : Criterion
        Fixed before the run.
    chapter : str
        The book page that shows it, e.g. ``"book/why/ics"``.
    note : str, optional
        What might explain a reversal (shown on the scorecard).
    """

    id: str
    paper: str
    where: str
    statement: str
    paper_value: str
    measure: Callable[[], Sequence[float]] = field(repr=False, compare=False)
    criterion: Criterion
    chapter: str
    note: str = ""


@dataclass(frozen=True)
class Quoted:
    """A paper's number the book quotes but does not measure, and why not.

    Attributes
    ----------
    paper, where, statement, paper_value, chapter : str
        As for :class:`Claim`.
    why_not : str
        Why there is no measurement of ours (for example "ImageNet scale").
    """

    paper: str
    where: str
    statement: str
    paper_value: str
    chapter: str
    why_not: str


@dataclass(frozen=True)
class Measured:
    """A claim with its per-seed values and verdict."""

    claim: Claim
    values: np.ndarray
    verdict: str

    def summary(self, fmt: str = ".3g") -> str:
        """``"mean 9.6, range 7.0–12.1 (5 seeds)"``."""
        v = self.values
        if len(v) == 1:
            return f"{v[0]:{fmt}} (1 run)"
        return f"mean {v.mean():{fmt}}, range {v.min():{fmt}}–{v.max():{fmt}} ({len(v)} seeds)"

    def margin(self) -> float:
        """Distance of the seed nearest to a boundary of the criterion (units of the values).

        No seed can change side, and so the verdict cannot change, unless a seed's value moves
        by at least this much (another CPU's float kernels, another seed set).
        """
        b = np.asarray(self.claim.criterion.boundaries(), dtype=float)
        return float(np.abs(self.values[:, None] - b[None, :]).min())

    def report(self, fmt: str = ".3g") -> str:
        """One line for a check cell: id, verdict, the seeds' values, margin, criterion."""
        each = ", ".join(f"{v:{fmt}}" for v in self.values)
        return (
            f"{self.claim.id}: {self.verdict} [{each}] margin {self.margin():{fmt}}; "
            f"criterion: {self.claim.criterion.describe()}"
        )


_REGISTRY: dict[str, Claim] = {}


def register(*claims: Claim) -> None:
    """Add claims to the registry; an id may be registered once.

    Parameters
    ----------
    *claims : Claim
        Registering the same Claim object again does nothing.

    Raises
    ------
    ValueError
        If an id is already taken by a different claim.
    """
    for c in claims:
        old = _REGISTRY.get(c.id)
        if old is not None and old is not c:
            raise ValueError(f"claim id {c.id!r} is registered twice; give each claim its own id.")
        _REGISTRY[c.id] = c


def all_claims() -> list[Claim]:
    """Every claim: imports each experiment module and registers its ``CLAIMS`` list.

    Returns
    -------
    list of Claim
        In registration order (experiment modules alphabetically, each in its list's order).
    """
    for module in _experiment_modules():
        register(*getattr(module, "CLAIMS", ()))
    return list(_REGISTRY.values())


def all_quoted() -> list[Quoted]:
    """Every :class:`Quoted` number: the ``QUOTED`` lists of the experiment modules, in order.

    Returns
    -------
    list of Quoted
    """
    return [q for module in _experiment_modules() for q in getattr(module, "QUOTED", ())]


def get(claim_id: str) -> Claim:
    """The registered claim with this id.

    Parameters
    ----------
    claim_id : str
        A :attr:`Claim.id`.

    Returns
    -------
    Claim

    Raises
    ------
    KeyError
        With the known ids, if there is none.
    """
    if claim_id not in _REGISTRY:
        all_claims()
    try:
        return _REGISTRY[claim_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"no claim {claim_id!r}; known claims: {known}") from None


def check(claim_id: str) -> Measured:
    """Measure one claim (from cached results where available) and give its verdict.

    Parameters
    ----------
    claim_id : str
        A :attr:`Claim.id`.

    Returns
    -------
    Measured
        The per-seed values and the criterion's verdict.
    """
    claim = get(claim_id)
    values = _values(claim.measure())
    return Measured(claim, values, claim.criterion.verdict(values))


def scorecard(claims: Sequence[Claim] | None = None) -> list[Measured]:
    """Measure every claim (or the given ones), in registry order.

    The runs that are not cached yet are first noted, claim by claim, and then computed in one
    pool of worker processes (:func:`bnguide.cache.collect_missing`), several experiments at once.

    Parameters
    ----------
    claims : sequence of Claim, optional
        By default every registered claim (:func:`all_claims`).

    Returns
    -------
    list of Measured
    """
    claims = all_claims() if claims is None else list(claims)
    with cache.collect_missing():  # first note every missing run, then compute them together
        for c in claims:
            try:
                c.measure()
            except cache.NotCachedYet:
                pass
    return [check(c.id) for c in claims]


def verdict_counts(measured: Sequence[Measured]) -> dict[str, int]:
    """How many claims got each verdict, every verdict listed (``{"reproduced": 7, ...}``).

    Parameters
    ----------
    measured : sequence of Measured

    Returns
    -------
    dict of str to int
        Keys in the order of :data:`VERDICTS`.
    """
    return {v: sum(m.verdict == v for m in measured) for v in VERDICTS}


def _verdict_text(m: Measured) -> str:
    explained = m.claim.note and m.verdict != "reproduced"
    return f"{m.verdict} ({m.claim.note})" if explained else m.verdict


def _chapter_link(chapter: str, page: str) -> Link:
    href = posixpath.relpath(chapter, posixpath.dirname(page)) + ".html"
    return Link(posixpath.basename(chapter).replace("-", " "), href)


def scorecard_table(measured: Sequence[Measured], page: str = "book/scorecard") -> Table:
    """One row per claim: paper, where, paper value, ours over seeds, criterion, verdict, chapter.

    Parameters
    ----------
    measured : sequence of Measured
        From :func:`scorecard`.
    page : str, optional
        The book page that shows the table (chapter links are relative to it).

    Returns
    -------
    bnguide.table.Table
    """
    rows = [
        [
            m.claim.statement,
            f"{m.claim.paper}, {m.claim.where}",
            m.claim.paper_value,
            m.summary(),
            m.claim.criterion.describe(),
            m.verdict
            + (f" ({m.claim.note})" if m.claim.note and m.verdict != "reproduced" else ""),
            _chapter_link(m.claim.chapter, page),
        ]
        for m in measured
    ]
    header = ["claim", "paper", "paper's value", "ours", "criterion (fixed before the run)"]
    return Table([*header, "verdict", "chapter"], rows, align="lllllll")


def quoted_table(quoted: Sequence[Quoted], page: str = "book/scorecard") -> Table:
    """One row per paper number the book quotes without measuring it, with the reason.

    Parameters
    ----------
    quoted : sequence of Quoted
        From :func:`all_quoted`.
    page : str, optional
        The book page that shows the table.

    Returns
    -------
    bnguide.table.Table
    """
    rows = [
        [
            q.statement,
            f"{q.paper}, {q.where}",
            q.paper_value,
            q.why_not,
            _chapter_link(q.chapter, page),
        ]
        for q in quoted
    ]
    header = ["what the paper reports", "paper", "paper's value", "why not measured", "chapter"]
    return Table(header, rows, align="lllll")


def _experiment_modules():
    # imported here: the experiment modules import this one for Claim and the criteria
    import bnguide.experiments as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        yield importlib.import_module(f"{pkg.__name__}.{info.name}")


def _values(values: Sequence[float]) -> np.ndarray:
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        raise ValueError("a claim needs at least one measured value (one per seed).")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"a claim's measured values must be finite, got {v.tolist()}.")
    return v
