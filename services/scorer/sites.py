"""Per-site counts: which partner site did a queue's decisions and how accurate it was. Pure.

Each subgroup bucket counts, per site, the decisions it holds and their random-sample
verdicts: ``{site: [decisions, n, errors]}`` (``Bucket.sites``), alongside the bucket's own
totals and with the same rules (a duplicate counts once, a late verdict revises the closed
subgroup, only random samples count toward ``n``). So, in every bucket, the sites add up to
the bucket: ``sum(decisions) == decisions``, ``sum(n) == n``, ``sum(errors) == e``.

Bounded by design: a queue counts at most ``limit`` sites by name (``QW_SCORER_SITES_PER_QUEUE``,
32 by default), the *named* sites; any other site's counts are summed under ``OTHER``. A site
is named when it is first counted while fewer than ``limit`` sites are; it stays named while
any bucket the queue keeps (the retained week) has counts of it, so a named site's figures
are whole from the moment it was named. A slot frees when a site's last bucket expires; a
site counted under ``OTHER`` meanwhile is named from its next count on, its earlier counts
staying in ``OTHER``. The set of named sites is not stored: it is the union of the buckets'
sites, rebuilt from the queue's record (``QueueState.site_names``), so the bound survives any
replay exactly. Buckets written before per-site counting have their totals under ``OTHER``.

Windows (``window``) sum the buckets exactly as the queue's accuracy windows do, so each
site's 24 h and 7 d figures in a snapshot add up to the queue's ``n_24h`` and ``n_7d``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from shared.events import OTHER_SITES

if TYPE_CHECKING:
    from services.scorer.state import Bucket, QueueState

OTHER = OTHER_SITES  # not a key id (shared/ids.py), so it never names a real site
SiteCounts = list[int]  # [decisions, n, errors]


def named(st: QueueState) -> set[str]:
    """The queue's named sites: every site of a bucket it keeps but ``OTHER``."""
    if st.site_names is None:
        st.site_names = {s for b in st.buckets.values() for s in b.sites if s != OTHER}
    return st.site_names


def count(
    st: QueueState, bucket: Bucket, site: str, limit: int, decisions: int = 0, n: int = 0,
    errors: int = 0,
) -> None:  # fmt: skip
    """Add to ``bucket`` the counts of ``site`` (under ``OTHER`` when the queue already names
    ``limit`` other sites)."""
    entry = bucket.sites.get(site)
    if entry is None:
        names = named(st)
        if site not in names:
            if len(names) >= limit:
                site = OTHER
            else:
                names.add(site)
        entry = bucket.sites.get(site)
        if entry is None:
            entry = bucket.sites[site] = [0, 0, 0]
    entry[0] += decisions
    entry[1] += n
    entry[2] += errors


def forget_expired(st: QueueState) -> None:
    """Buckets were dropped: a site none of the others holds frees its slot."""
    st.site_names = None


def window(buckets: Iterable[Bucket]) -> dict[str, SiteCounts]:
    """The per-site sums of ``buckets``."""
    total: dict[str, SiteCounts] = {}
    for b in buckets:
        for site, (d, n, e) in b.sites.items():
            into = total.get(site)
            if into is None:
                total[site] = [d, n, e]
            else:
                into[0] += d
                into[1] += n
                into[2] += e
    return total
