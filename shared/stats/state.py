"""Serialized incremental states: one loader for every kind.

Every incremental state object in :mod:`shared.stats` has ``to_dict()`` (a compact,
JSON-ready mapping with a format version ``"v"`` and a ``"kind"``) and ``from_dict()``, and
an O(1) ``update(...)``.  They are meant to live in a key-value table (one per queue, e.g. a
Faust table) between events:

==================  =============================================  =========
kind                class                                          update
==================  =============================================  =========
``subgroup``        :class:`~shared.stats.pchart.SubgroupAccumulator`  one verdict
``laney_mr``        :class:`~shared.stats.laney.MovingRangeState`      one z
``ewma``            :class:`~shared.stats.ewma.EwmaState`              one subgroup
``cusum``           :class:`~shared.stats.cusum.CusumState`            one z
``bcusum``          :class:`~shared.stats.cusum.BernoulliCusum`        one verdict
``racusum``         :class:`~shared.stats.cusum.RiskAdjustedCusum`     one verdict
``rules``           :class:`~shared.stats.rules.RuleState`             one z
==================  =============================================  =========

Restoring a state from its dict and continuing gives exactly (bit for bit) the results of
never having stopped, and of the batch functions on the whole sequence.

:func:`load_state` reads any of them by its ``"kind"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeAlias

from shared.stats._serde import STATE_VERSION
from shared.stats.cusum import BernoulliCusum, CusumState, RiskAdjustedCusum
from shared.stats.errors import StateFormatError
from shared.stats.ewma import EwmaState
from shared.stats.laney import MovingRangeState
from shared.stats.pchart import SubgroupAccumulator
from shared.stats.rules import RuleState

__all__ = ["STATE_VERSION", "StreamState", "load_state"]

StreamState: TypeAlias = (
    SubgroupAccumulator
    | MovingRangeState
    | EwmaState
    | CusumState
    | BernoulliCusum
    | RiskAdjustedCusum
    | RuleState
)
"""Any incremental state of this package."""

_LOADERS: dict[str, Callable[[Mapping[str, object]], StreamState]] = {
    SubgroupAccumulator.KIND: SubgroupAccumulator.from_dict,
    MovingRangeState.KIND: MovingRangeState.from_dict,
    EwmaState.KIND: EwmaState.from_dict,
    CusumState.KIND: CusumState.from_dict,
    BernoulliCusum.KIND: BernoulliCusum.from_dict,
    RiskAdjustedCusum.KIND: RiskAdjustedCusum.from_dict,
    RuleState.KIND: RuleState.from_dict,
}


def load_state(data: Mapping[str, object]) -> StreamState:
    """Restore any incremental state from its ``to_dict()`` form, dispatching on ``"kind"``."""
    if not isinstance(data, Mapping):
        raise StateFormatError(f"expected a mapping, got {type(data).__name__}")
    kind = data.get("kind")
    loader = _LOADERS.get(kind) if isinstance(kind, str) else None
    if loader is None:
        raise StateFormatError(f"unknown state kind {kind!r}; known: {sorted(_LOADERS)}")
    return loader(data)
