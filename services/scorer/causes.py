"""Root cause: which slices of a queue explain a breach's excess errors. Pure.

Every random-sample verdict is counted, in its subgroup's bucket, into one slice per
dimension of its decision: ``site``, ``policy``, moderator ``tenure`` band, content
``severity``, and the ``site_policy`` pair (a confusing policy at one partner site is the
commonest story). A breach ranks the slices of its window (the p-chart: its subgroup; the
EWMA and the CUSUMs: the last ``SHORT_WINDOW`` subgroups; below target: the last 24 h) by
their excess errors over the baseline, ``errors - n * p0``: what the queue would not have
had if that slice had been at the baseline. A slice's ``excess_share`` is its excess over the
whole window's; shares of the slices of one dimension add up to one when every slice of it
is above the baseline. For ``cusum_lower`` (errors dropping: often a broken QA feed) the
ranking is by missing errors instead.

Bounded by design: at most ``MAX_VALUES`` values per dimension per bucket (further values
count as ``(other)``), slices kept for the buckets of the last day only, and individual
moderators never (their ids may be in the data; here only tenure bands are).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, cast

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


def rank(windows: Iterable[Slices], p0: float, *, lower: bool = False) -> list[Cause]:
    """The slices of the summed ``windows`` that explain the excess (``lower``: the missing)
    errors against ``p0``, most first, at most ``TOP``. A ``site_policy`` pair that explains
    nearly as much as the best single slice (90%) comes first: it is the more precise
    story."""
    total: Slices = {}
    for slices in windows:
        for key, (n, e, types) in slices.items():
            into = total.setdefault(key, [0, 0, {}])
            into[0] += n
            into[1] += e
            for t, c in types.items():
                into[2][t] = into[2].get(t, 0) + c
    sign = -1.0 if lower else 1.0
    by_dim: dict[str, tuple[int, int]] = {}
    for key, (n, e, _) in total.items():
        dim = key.split("=", 1)[0]
        dn, de = by_dim.get(dim, (0, 0))
        by_dim[dim] = (dn + n, de + e)
    causes: list[tuple[float, Cause]] = []
    for key, (n, e, types) in total.items():
        dim, value = key.split("=", 1)
        excess = sign * (e - n * p0)
        if excess <= 0 or n == 0 or n == by_dim[dim][0]:
            continue  # (a slice of every verdict, e.g. one tenure band for all, explains nothing)
        dn, de = by_dim[dim]
        whole = sign * (de - dn * p0)
        ci = wilson_interval(e, n, CONFIDENCE)
        significant = ci.upper < p0 if lower else ci.lower > p0
        causes.append((excess, Cause(
            dimension=cast(CauseDimension, dim), value=value, n=n, errors=e,
            expected_errors=round(n * p0, 3),
            excess_share=round(excess / whole, 4) if whole > 0 else None,
            p=e / n, p_interval=(ci.lower, ci.upper), significant=significant,
            error_types=dict(sorted(types.items(), key=lambda kv: -kv[1])),
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


def _words(cause: Cause) -> str:
    if cause.dimension == "site_policy":
        site, _, policy = cause.value.partition("/")
        return f"site {site} on policy {policy}"
    if cause.dimension == "tenure":
        return f"moderators of tenure {cause.value}"
    return f"{cause.dimension} {cause.value}"


def summary(causes: list[Cause], *, lower: bool = False) -> str | None:
    """The top cause in words: "62% of the excess errors are site manila on policy hate.v3
    (41 errors, 12.3 expected), mostly under_enforcement (80%)"; None when no slice
    explains at least ``MIN_SHARE`` of it with confidence."""
    top = next((c for c in causes if c.significant), None)
    if top is None or top.excess_share is None or top.excess_share < MIN_SHARE:
        return None
    what = "missing errors" if lower else "excess errors"
    text = (
        f"{min(top.excess_share, 1.0):.0%} of the {what} are {_words(top)} "
        f"({top.errors} errors, {top.expected_errors:.1f} expected, n={top.n})"
    )
    if top.errors and top.error_types and not lower:
        kind, k = next(iter(top.error_types.items()))
        if k / top.errors >= 0.5:
            text += f", mostly {kind} ({k / top.errors:.0%})"
    return text


def label(causes: list[Cause], dimension: Literal["site", "policy"]) -> str | None:
    """The one site (or policy) behind the breach, for routing: the value of the first
    significant cause naming one (directly or in a ``site_policy`` pair) when it explains at
    least ``LABEL_SHARE`` of the excess."""
    for c in causes:
        if not c.significant or c.excess_share is None or c.excess_share < LABEL_SHARE:
            continue
        if c.dimension == dimension:
            return c.value
        if c.dimension == "site_policy":
            site, _, policy = c.value.partition("/")
            return site if dimension == "site" else policy
    return None
