"""Western Electric and Nelson run rules on standardized points.

The points are z-scores in sigma units around the centre line (e.g. from
:func:`shared.stats.pchart.standardize` or :func:`shared.stats.laney.laney_standardize`);
standardizing first is what makes zone rules valid for subgroups of variable size.
Zones: A is beyond 2σ, B between 1σ and 2σ, C within 1σ.  "Beyond kσ" means strictly
``|z| > k``; a point exactly on the centre line (z = 0) is on neither side and breaks runs.

A rule *fires at point t* when the pattern it describes ends at t; a long pattern keeps
firing at every further point that extends it (a run of 11 points above the centre fires
nelson2 at points 9, 10 and 11).  For the "k of m" rules the point t must itself be one of
the k points, so one excursion is not reported twice.  At the start of a series, "k of the
last m" counts the points available.

=========  =====================================================================
name       fires at point t when
=========  =====================================================================
nelson1    the point is beyond 3σ (either side).
nelson2    9 points in a row (ending at t) are on the same side of the centre.
nelson3    6 points in a row steadily increase, or steadily decrease (ties break it).
nelson4    14 points in a row alternate up and down (13 alternating differences).
nelson5    2 of the last 3 points are beyond 2σ on the same side, t among them.
nelson6    4 of the last 5 points are beyond 1σ on the same side, t among them.
nelson7    15 points in a row are within 1σ (|z| < 1): stratification.
nelson8    8 points in a row are beyond 1σ, with points on both sides: mixture.
weco1      the point is beyond 3σ (same as nelson1).
weco2      2 of the last 3 beyond 2σ on the same side (same as nelson5).
weco3      4 of the last 5 beyond 1σ on the same side (same as nelson6).
weco4      8 points in a row on the same side of the centre.
=========  =====================================================================

With ``sides="upper"`` (only deteriorations: error rate up) the directional rules (1, 2, 3,
5, 6 and weco1-4) consider only points above the centre and increasing trends; with
``sides="lower"`` only the mirror image.  Rules 4, 7 and 8 have no direction and are
evaluated in every mode.

:class:`RuleState` evaluates the same rules incrementally from a few bounded counters
(O(1) per point, compact to serialize); :func:`evaluate_rules` is the direct, window-based
definition.  Both give identical results for any sequence and any split of it.

References:
    Western Electric Company (1956). Statistical Quality Control Handbook.
    Nelson, L. S. (1984). The Shewhart control chart - tests for special causes. Journal of
    Quality Technology 16, 237-239.
    Montgomery, D. C. Introduction to Statistical Quality Control, 6th ed., §5.3.6.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, cast, get_args

from shared.stats import _serde
from shared.stats.errors import StateFormatError, StatsError

__all__ = [
    "ALL_RULES",
    "NELSON_RULES",
    "RULE_DESCRIPTIONS",
    "WESTERN_ELECTRIC_RULES",
    "RuleState",
    "Sides",
    "evaluate_rules",
]

Sides = Literal["both", "upper", "lower"]
_SIDES: tuple[str, ...] = get_args(Sides)

RULE_DESCRIPTIONS: dict[str, str] = {
    "nelson1": "one point beyond 3 sigma",
    "nelson2": "9 points in a row on the same side of the centre line",
    "nelson3": "6 points in a row steadily increasing or decreasing",
    "nelson4": "14 points in a row alternating up and down",
    "nelson5": "2 of 3 points in a row beyond 2 sigma on the same side",
    "nelson6": "4 of 5 points in a row beyond 1 sigma on the same side",
    "nelson7": "15 points in a row within 1 sigma of the centre line",
    "nelson8": "8 points in a row beyond 1 sigma, on both sides",
    "weco1": "one point beyond 3 sigma",
    "weco2": "2 of 3 points in a row beyond 2 sigma on the same side",
    "weco3": "4 of 5 points in a row beyond 1 sigma on the same side",
    "weco4": "8 points in a row on the same side of the centre line",
}
"""Every rule name with a one-line description, in canonical order."""

ALL_RULES: tuple[str, ...] = tuple(RULE_DESCRIPTIONS)
NELSON_RULES: tuple[str, ...] = tuple(f"nelson{i}" for i in range(1, 9))
WESTERN_ELECTRIC_RULES: tuple[str, ...] = tuple(f"weco{i}" for i in range(1, 5))

_UNDIRECTED = frozenset({"nelson4", "nelson7", "nelson8"})


def _normalize_rules(rules: Iterable[str]) -> tuple[str, ...]:
    wanted = set()
    for name in rules:
        if name not in RULE_DESCRIPTIONS:
            raise StatsError(f"unknown rule {name!r}; known rules: {', '.join(ALL_RULES)}")
        wanted.add(name)
    return tuple(name for name in ALL_RULES if name in wanted)


def _check_sides(sides: str) -> None:
    if sides not in _SIDES:
        raise StatsError(f"sides must be one of {_SIDES}, got {sides!r}")


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _check_point(z: float) -> float:
    if isinstance(z, bool) or not isinstance(z, int | float) or not math.isfinite(z):
        raise StatsError(f"standardized points must be finite numbers, got {z!r}")
    return float(z)


# --------------------------------------------------------------------------------------------
# Batch: the definitions, window by window
# --------------------------------------------------------------------------------------------


def _fires(name: str, zs: Sequence[float], t: int, up: bool, down: bool) -> bool:
    z = zs[t]

    def window(length: int) -> Sequence[float]:
        return zs[max(0, t - length + 1) : t + 1]

    def full(length: int) -> Sequence[float] | None:
        return zs[t - length + 1 : t + 1] if t + 1 >= length else None

    if name in ("nelson1", "weco1"):
        return (up and z > 3.0) or (down and z < -3.0)
    if name in ("nelson2", "weco4"):
        w = full(9 if name == "nelson2" else 8)
        if w is None:
            return False
        return (up and all(v > 0.0 for v in w)) or (down and all(v < 0.0 for v in w))
    if name == "nelson3":
        w = full(6)
        if w is None:
            return False
        pairs = list(itertools.pairwise(w))
        return (up and all(a < b for a, b in pairs)) or (down and all(a > b for a, b in pairs))
    if name == "nelson4":
        w = full(14)
        if w is None:
            return False
        signs = [_sign(b - a) for a, b in itertools.pairwise(w)]
        return all(s != 0 for s in signs) and all(a == -b for a, b in itertools.pairwise(signs))
    if name in ("nelson5", "weco2"):
        w = window(3)
        return (up and z > 2.0 and sum(v > 2.0 for v in w) >= 2) or (
            down and z < -2.0 and sum(v < -2.0 for v in w) >= 2
        )
    if name in ("nelson6", "weco3"):
        w = window(5)
        return (up and z > 1.0 and sum(v > 1.0 for v in w) >= 4) or (
            down and z < -1.0 and sum(v < -1.0 for v in w) >= 4
        )
    if name == "nelson7":
        w = full(15)
        return w is not None and all(abs(v) < 1.0 for v in w)
    if name == "nelson8":
        w = full(8)
        return (
            w is not None
            and all(abs(v) > 1.0 for v in w)
            and any(v > 1.0 for v in w)
            and any(v < -1.0 for v in w)
        )
    raise StatsError(f"unknown rule {name!r}")  # pragma: no cover - names are validated


def evaluate_rules(
    points: Iterable[float],
    rules: Iterable[str] = NELSON_RULES,
    sides: Sides = "both",
) -> list[tuple[str, ...]]:
    """For each standardized point, the names of the selected rules that fire there.

    Args:
        points: z-scores in time order.
        rules: rule names (see the module docstring); the result lists them in canonical order.
        sides: ``"both"``, ``"upper"`` (deteriorations only) or ``"lower"``.
    """
    selected = _normalize_rules(rules)
    _check_sides(sides)
    zs = [_check_point(z) for z in points]
    up = sides in ("both", "upper")
    down = sides in ("both", "lower")
    result = []
    for t in range(len(zs)):
        result.append(
            tuple(
                name
                for name in selected
                if _fires(name, zs, t, up or name in _UNDIRECTED, down or name in _UNDIRECTED)
            )
        )
    return result


# --------------------------------------------------------------------------------------------
# Incremental: bounded counters
# --------------------------------------------------------------------------------------------

_COUNTERS = ("pos", "neg", "inc", "dec", "alt", "in1", "out1", "hi1age", "lo1age")
_CAPS = {"pos": 9, "neg": 9, "inc": 6, "dec": 6, "alt": 14, "in1": 15, "out1": 8}
_AGE_CAP = 8  # an age of 8 or more is "not among the last 8 points"


class RuleState:
    """O(1) incremental evaluation of run rules, one standardized point at a time.

    The state is a handful of capped counters and bit masks, so it serializes to a few dozen
    bytes.  Fed the points of any sequence, :meth:`update` returns exactly what
    :func:`evaluate_rules` returns for each of them.

    Args:
        rules: rule names to evaluate (default: the eight Nelson rules).
        sides: ``"both"``, ``"upper"`` or ``"lower"`` (see the module docstring).
    """

    __slots__ = (
        "alt",
        "dec",
        "hi1",
        "hi1age",
        "hi2",
        "in1",
        "inc",
        "lo1",
        "lo1age",
        "lo2",
        "neg",
        "out1",
        "pos",
        "prev",
        "prev_diff",
        "rules",
        "sides",
    )

    KIND = "rules"

    def __init__(self, rules: Iterable[str] = NELSON_RULES, sides: Sides = "both") -> None:
        self.rules = _normalize_rules(rules)
        _check_sides(sides)
        self.sides: Sides = sides
        self.prev: float | None = None
        self.prev_diff = 0
        self.pos = 0
        self.neg = 0
        self.inc = 0
        self.dec = 0
        self.alt = 0
        self.in1 = 0
        self.out1 = 0
        self.hi1age = _AGE_CAP
        self.lo1age = _AGE_CAP
        self.hi2 = 0  # bit i set: the point i steps back was > 2 (3 bits)
        self.lo2 = 0
        self.hi1 = 0  # same for > 1 (5 bits)
        self.lo1 = 0

    def update(self, z: float) -> tuple[str, ...]:
        """Add the next standardized point; return the names of the rules that fire at it."""
        z = _check_point(z)
        side = _sign(z)
        self.pos = min(self.pos + 1, _CAPS["pos"]) if side > 0 else 0
        self.neg = min(self.neg + 1, _CAPS["neg"]) if side < 0 else 0

        if self.prev is None:
            diff = 0
            self.inc = self.dec = self.alt = 1
        else:
            diff = _sign(z - self.prev)
            self.inc = min(self.inc + 1, _CAPS["inc"]) if diff > 0 else 1
            self.dec = min(self.dec + 1, _CAPS["dec"]) if diff < 0 else 1
            if diff == 0:
                self.alt = 1
            elif self.prev_diff != 0 and diff == -self.prev_diff:
                self.alt = min(self.alt + 1, _CAPS["alt"])
            else:
                self.alt = 2
        self.prev = z
        self.prev_diff = diff

        self.in1 = min(self.in1 + 1, _CAPS["in1"]) if abs(z) < 1.0 else 0
        self.out1 = min(self.out1 + 1, _CAPS["out1"]) if abs(z) > 1.0 else 0
        self.hi1age = 0 if z > 1.0 else min(self.hi1age + 1, _AGE_CAP)
        self.lo1age = 0 if z < -1.0 else min(self.lo1age + 1, _AGE_CAP)
        self.hi2 = ((self.hi2 << 1) | (z > 2.0)) & 0b111
        self.lo2 = ((self.lo2 << 1) | (z < -2.0)) & 0b111
        self.hi1 = ((self.hi1 << 1) | (z > 1.0)) & 0b11111
        self.lo1 = ((self.lo1 << 1) | (z < -1.0)) & 0b11111

        up = self.sides in ("both", "upper")
        down = self.sides in ("both", "lower")
        return tuple(name for name in self.rules if self._fires(name, z, up, down))

    def _fires(self, name: str, z: float, up: bool, down: bool) -> bool:
        if name in ("nelson1", "weco1"):
            return (up and z > 3.0) or (down and z < -3.0)
        if name == "nelson2":
            return (up and self.pos >= 9) or (down and self.neg >= 9)
        if name == "weco4":
            return (up and self.pos >= 8) or (down and self.neg >= 8)
        if name == "nelson3":
            return (up and self.inc >= 6) or (down and self.dec >= 6)
        if name == "nelson4":
            return self.alt >= 14
        if name in ("nelson5", "weco2"):
            return (up and z > 2.0 and self.hi2.bit_count() >= 2) or (
                down and z < -2.0 and self.lo2.bit_count() >= 2
            )
        if name in ("nelson6", "weco3"):
            return (up and z > 1.0 and self.hi1.bit_count() >= 4) or (
                down and z < -1.0 and self.lo1.bit_count() >= 4
            )
        if name == "nelson7":
            return self.in1 >= 15
        if name == "nelson8":
            return self.out1 >= 8 and self.hi1age < _AGE_CAP and self.lo1age < _AGE_CAP
        raise StatsError(f"unknown rule {name!r}")  # pragma: no cover - names are validated

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            **_serde.header(self.KIND),
            "rules": list(self.rules),
            "sides": self.sides,
            "prev": self.prev,
            "pd": self.prev_diff,
            **{name: getattr(self, name) for name in _COUNTERS},
            "masks": [self.hi2, self.lo2, self.hi1, self.lo1],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RuleState:
        """Inverse of :meth:`to_dict`."""
        _serde.check_header(data, cls.KIND)
        sides = _serde.get_str(data, "sides")
        if sides not in _SIDES:
            raise StateFormatError(f"bad sides {sides!r}")
        try:
            state = cls(_serde.get_str_list(data, "rules"), cast(Sides, sides))
        except StatsError as exc:
            raise StateFormatError(str(exc)) from exc
        state.prev = _serde.get_optional_float(data, "prev")
        state.prev_diff = _serde.get_int(data, "pd")
        if state.prev_diff not in (-1, 0, 1):
            raise StateFormatError("field 'pd' must be -1, 0 or 1")
        for name in _COUNTERS:
            value = _serde.get_int(data, name)
            if not 0 <= value <= _CAPS.get(name, _AGE_CAP):
                raise StateFormatError(f"field {name!r} out of range: {value}")
            setattr(state, name, value)
        masks = data.get("masks")
        widths = (0b111, 0b111, 0b11111, 0b11111)
        if (
            not isinstance(masks, list)
            or len(masks) != 4
            or not all(isinstance(m, int) and not isinstance(m, bool) for m in masks)
            or not all(0 <= m <= w for m, w in zip(masks, widths, strict=True))
        ):
            raise StateFormatError("field 'masks' must be 4 integers within their bit widths")
        state.hi2, state.lo2, state.hi1, state.lo1 = (int(m) for m in masks)
        return state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RuleState):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RuleState(rules={self.rules!r}, sides={self.sides!r}, state={self.to_dict()!r})"
