"""Root cause: which slices of a queue stand out in a breach's window, and how much of its
excess errors they explain. Pure.

Every random-sample verdict is counted, in its subgroup's bucket, into one slice per
dimension of its decision: ``site``, ``policy``, moderator ``tenure`` band, content
``severity``, and the ``site_policy`` pair (a confusing policy at one partner site is the
commonest story). A breach looks at the slices of its window (the p-chart: its subgroup; the
EWMA and the CUSUMs: the last ``SHORT_WINDOW`` subgroups; below target: the last 24 h).

A slice is a cause only when it stands out from the REST of the queue in the same window,
not from the baseline: when the whole queue shifts (a policy change, a dead QA feed) every
large slice is above the baseline, and naming the largest would blame whoever holds most
verdicts. So each slice is tested against its complement in its dimension (Fisher's exact
test, one-sided in the breach's direction), with Holm's correction across all the slices
tested, at ``CONFIDENCE``: that is ``significant``. Its ``excess_share`` is the share of the
window's excess over the baseline, ``E - N * p0``, that would vanish were the slice at the
rest of the queue's rate: ``min(errors - n * rest_p, E - N * p0) / (E - N * p0)``, within
[0, 1] (1 when the rest of the queue is at or under the baseline: the slice explains all of
it). Two equally bad sites out of four each explain a third (each one's rest holds the
other); a whole-queue shift leaves every slice near 0. For ``cusum_lower`` (errors
dropping: often a broken QA feed) the same holds of the missing errors.

Bounded by design: at most ``MAX_VALUES`` values per dimension per bucket (further values
count as ``(other)``), slices kept for the buckets of the last day only, and individual
moderators never (their ids may be in the data; here only tenure bands are).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, Literal, cast

import numpy as np

from shared.events import Cause, CauseDimension
from shared.stats.intervals import wilson_interval

DIMENSIONS: tuple[CauseDimension, ...] = ("site", "policy", "tenure", "severity", "site_policy")
PREFERENCE: tuple[CauseDimension, ...] = ("site", "policy", "site_policy", "tenure", "severity")
MAX_VALUES = 24  # per dimension per bucket
OTHER = "(other)"
SHORT_WINDOW = 6  # subgroups behind an EWMA or CUSUM signal's ranking
KEEP_SECONDS = 86400  # buckets older than this (from the watermark) drop their slices
TOP = 5  # causes a breach carries
CONFIDENCE = 0.95
MIN_SHARE = 0.3  # the summary names a slice when it explains at least this share ...
LABEL_SHARE = 0.5  # ... and a routing label (site, policy) when at least this
TENURE_BANDS = ((30, "<30d"), (90, "30-89d"), (365, "90-364d"))

Slices = dict[str, list[Any]]  # "dimension=value" -> [n, errors, {error_type: count}]


def tenure_band(days: int | None) -> str:
    if days is None:
        return "unknown"
    for bound, band in TENURE_BANDS:
        if days < bound:
            return band
    return "1y+"


@functools.lru_cache(maxsize=8192, typed=True)  # (once per distinct decision shape)
def keys_of(site: str, policy: str, tenure: str, severity: int) -> tuple[str, ...]:
    """The slice keys of one decision, one per dimension (``DIMENSIONS`` order)."""
    return (
        f"site={site}",
        f"policy={policy}",
        f"tenure={tenure}",
        f"severity={severity}",
        f"site_policy={site}/{policy}",
    )


def count(slices: Slices, keys: Iterable[str], incorrect: bool, error_type: str | None) -> None:
    """Count one random verdict into ``slices`` under each of its keys."""
    for key in keys:
        entry = slices.get(key)
        if entry is None:
            dim = key.split("=", 1)[0]
            prefix = dim + "="
            if sum(1 for k in slices if k.startswith(prefix)) >= MAX_VALUES:
                key = f"{dim}={OTHER}"
                entry = slices.get(key)
            if entry is None:
                entry = slices[key] = [0, 0, {}]
        entry[0] += 1
        if incorrect:
            entry[1] += 1
            et = error_type or "unknown"
            entry[2][et] = entry[2].get(et, 0) + 1


def total(windows: Iterable[Slices]) -> Slices:
    """The slices of ``windows`` summed."""
    out: Slices = {}
    for slices in windows:
        for key, (n, e, types) in slices.items():
            into = out.setdefault(key, [0, 0, {}])
            into[0] += n
            into[1] += e
            for t, c in types.items():
                into[2][t] = into[2].get(t, 0) + c
    return out


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error rate, any dependence)."""
    m = len(p_values)
    adjusted = [1.0] * m
    running = 0.0
    for i, at in enumerate(sorted(range(m), key=lambda j: p_values[j])):
        running = max(running, min(1.0, (m - i) * p_values[at]))
        adjusted[at] = running
    return adjusted


def _fisher(rows: list[tuple[int, int, int, int]], lower: bool) -> list[float]:
    """One-sided Fisher exact p-values of ``(n, errors, N, E)`` rows: a slice of ``n``
    verdicts with ``errors`` against the rest of ``N`` verdicts with ``E`` errors in all;
    under the null its errors are hypergeometric. Upper: P(X >= errors); lower: P(X <=
    errors)."""
    if not rows:
        return []
    from scipy.stats import hypergeom  # (lazy: scipy.stats costs ~1 s of CPU to import)

    n, e, big_n, big_e = (np.array(col, dtype=np.int64) for col in zip(*rows, strict=True))
    tail = hypergeom.cdf(e, big_n, big_e, n) if lower else hypergeom.sf(e - 1, big_n, big_e, n)
    return [min(1.0, max(0.0, float(x))) for x in np.atleast_1d(tail)]


def rank(windows: Iterable[Slices], p0: float, *, lower: bool = False) -> list[Cause]:
    """The slices of the summed ``windows`` above the rest of the queue (``lower``: below
    it), by the excess (missing) errors over ``p0`` they explain, most first, at most
    ``TOP``. A ``site_policy`` pair that explains nearly as much as the best single slice
    (90%) with fewer verdicts comes first: it is the more precise story."""
    return _rank(total(windows), p0, lower)


def _dimensions(slices: Slices) -> dict[str, tuple[int, int]]:
    by_dim: dict[str, tuple[int, int]] = {}
    for key, (n, e, _) in slices.items():
        dim = key.split("=", 1)[0]
        dn, de = by_dim.get(dim, (0, 0))
        by_dim[dim] = (dn + n, de + e)
    return by_dim


def _rank(slices: Slices, p0: float, lower: bool) -> list[Cause]:
    sign = -1 if lower else 1
    by_dim = _dimensions(slices)
    # every slice with a rest to compare with is tested (one family for Holm); a slice of
    # every verdict (one tenure band for all) has none and explains nothing
    tested = [k for k, (n, _, _) in slices.items() if 0 < n < by_dim[k.split("=", 1)[0]][0]]
    rows = [(slices[k][0], slices[k][1], *by_dim[k.split("=", 1)[0]]) for k in tested]
    adjusted = dict(zip(tested, holm(_fisher(rows, lower)), strict=True))
    causes: list[tuple[float, Cause]] = []
    for key in tested:
        n, e, types = slices[key]
        dim, value = key.split("=", 1)
        dn, de = by_dim[dim]
        rn, re = dn - n, de - e
        if sign * (e * rn - re * n) <= 0:
            continue  # not above the rest (below it, for the missing errors): no cause
        rest_p = re / rn
        explained = sign * (e - n * rest_p)  # > 0
        whole = sign * (de - dn * p0)
        ci = wilson_interval(e, n, CONFIDENCE)
        causes.append((explained, Cause(
            dimension=cast(CauseDimension, dim), value=value, n=n, errors=e,
            expected_errors=round(n * p0, 3),
            excess_share=round(min(explained, whole) / whole, 4) if whole > 0 else None,
            p=e / n, p_interval=(ci.lower, ci.upper),
            significant=adjusted[key] <= 1 - CONFIDENCE,
            error_types=dict(sorted(types.items(), key=lambda kv: -kv[1])),
            rest_p=rest_p, p_value=adjusted[key],
        )))  # fmt: skip
    # the same verdicts seen through two dimensions (one policy at a site; a cohort that is
    # a whole site) tie: the more actionable dimension first
    causes.sort(key=lambda c: (-round(c[0], 9), PREFERENCE.index(c[1].dimension), c[1].value))
    if causes:
        best_excess, best = causes[0]
        pair = next((c for c in causes if c[1].dimension == "site_policy"), None)
        if (
            pair is not None
            and pair[0] >= 0.9 * best_excess
            and pair[1].n < best.n  # a narrower story, not the same verdicts under two names
            and pair is not causes[0]
        ):
            causes.remove(pair)
            causes.insert(0, pair)
    return [c for _, c in causes[:TOP]]


def explain(
    windows: Iterable[Slices], p0: float, *, lower: bool = False, p0_is: str = "baseline"
) -> tuple[list[Cause], str | None]:
    """A breach's causes (``rank``) and their ``summary``, saying "queue-wide" when no
    slice stands out. ``p0_is``: what the expected error rate is, in the words ("baseline",
    or "the target allows" for the below-target rule, whose p0 is 1 - target)."""
    slices = total(windows)
    n, e = max(_dimensions(slices).values(), default=(0, 0))
    ranked = _rank(slices, p0, lower)
    return ranked, summary(ranked, lower=lower, window=(n, e, p0), p0_is=p0_is)


def site_stands_out(slices: Slices, site: str, charted: int = 1) -> tuple[bool, str]:
    """For a site chart's signal: does ``site`` stand out from the rest of the queue over
    the summed window ``slices``? One-sided Fisher at ``CONFIDENCE``, Bonferroni-corrected
    over the queue's ``charted`` site charts: the site is not chosen in advance but by
    whichever of them signals first, which in a drift of the whole queue is the one whose
    recent errors are highest by chance, and testing it alone at 5% names a site more often
    than that. At (1 - CONFIDENCE) / charted, whichever site the charts pick is named
    falsely at most 5% of the time. Returns the answer and its words: "site manila stands
    out (31.0% errors, n=410, against 6.1% elsewhere)", or that the rise is the queue's."""
    n, e = (slices.get(f"site={site}") or [0, 0])[:2]
    total_n, total_e = _dimensions(slices).get("site", (0, 0))
    rest_n, rest_e = total_n - n, total_e - e
    if not n or not rest_n:
        return False, f"site {site} is the window's only site"
    (p_value,) = _fisher([(n, e, total_n, total_e)], lower=False)
    rates = f"{e / n:.1%} errors, n={n}, against {rest_e / rest_n:.1%} elsewhere"
    if p_value <= (1 - CONFIDENCE) / max(charted, 1) and e * rest_n > rest_e * n:
        return True, f"site {site} stands out ({rates})"
    return False, f"site {site}'s rise is the queue's too ({rates})"


def _words(cause: Cause) -> str:
    if cause.dimension == "site_policy":
        site, _, policy = cause.value.partition("/")
        return f"site {site} on policy {policy}"
    if cause.dimension == "tenure":
        return f"moderators of tenure {cause.value}"
    return f"{cause.dimension} {cause.value}"


def _against_rest(cause: Cause) -> str:
    return "" if cause.rest_p is None else f"{cause.p:.1%} against {cause.rest_p:.1%} elsewhere"


def summary(
    causes: list[Cause],
    *,
    lower: bool = False,
    window: tuple[int, int, float] | None = None,
    p0_is: str = "baseline",
) -> str | None:
    """The causes in words: "62% of the excess errors are site manila on policy hate.v3
    (41 errors, 12.3 expected, n=200; 20.5% against 4.1% elsewhere), mostly
    under_enforcement (80%)", with any further slice of the same dimension explaining at
    least ``MIN_SHARE`` ("; 33% are site dublin (...)"). When slices stand out but none
    explains ``MIN_SHARE``: "spread: ... stand out, none explains 30% ...". When none stands
    out and the ``window`` (its verdicts, errors and baseline) is given: "queue-wide: ...";
    else None."""
    what = "missing errors" if lower else "excess errors"
    standing = [c for c in causes if c.significant]
    named = [c for c in standing if c.excess_share is not None and c.excess_share >= MIN_SHARE]
    if named:
        top = named[0]
        text = f"{top.excess_share or 0:.0%} of the {what} are {_words(top)} ({_counts(top)})"
        if top.errors and top.error_types and not lower:
            kind, k = next(iter(top.error_types.items()))
            if k / top.errors >= 0.5:
                text += f", mostly {kind} ({k / top.errors:.0%})"
        for c in [c for c in named[1:] if c.dimension == top.dimension][: TOP - 1]:
            text += f"; {c.excess_share or 0:.0%} are {_words(c)} ({_counts(c)})"
        return text
    if standing:
        which = "; ".join(f"{_words(c)} ({_against_rest(c)})" for c in standing[:3])
        return f"spread: {which} stand out, none explains {MIN_SHARE:.0%} of the {what}"
    if window is None or not window[0]:
        return None
    n, e, p0 = window
    return (
        "queue-wide: no site, policy, tenure band or severity stands out from the rest of "
        f"the queue (errors {e / n:.1%} against the {p0:.1%} {p0_is}, n={n})"
    )


def _counts(cause: Cause) -> str:
    text = f"{cause.errors} errors, {cause.expected_errors:.1f} expected, n={cause.n}"
    rest = _against_rest(cause)
    return f"{text}; {rest}" if rest else text


def label(causes: list[Cause], dimension: Literal["site", "policy"]) -> str | None:
    """The one site (or policy) behind the breach, for routing: the value of the first
    significant cause naming one (directly or in a ``site_policy`` pair) when it explains at
    least ``LABEL_SHARE`` of the excess. None for a queue-wide shift (nothing stands out) or
    one spread over sites: a site's team is paged only for its own."""
    for c in causes:
        if not c.significant or c.excess_share is None or c.excess_share < LABEL_SHARE:
            continue
        if c.dimension == dimension:
            return c.value
        if c.dimension == "site_policy":
            site, _, policy = c.value.partition("/")
            return site if dimension == "site" else policy
    return None
