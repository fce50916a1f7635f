"""QualityWatch statistics core: pure, typed, no I/O.

Error proportion p = share of QA-reviewed decisions found incorrect; accuracy = 1 - p.

Modules, one concept each:

* :mod:`~shared.stats.intervals` — Wilson, Jeffreys, Agresti-Coull intervals (never Wald),
  sample sizes, posterior P(accuracy >= target).
* :mod:`~shared.stats.pchart` — p / np charts for variable subgroup sizes: Phase I trial
  limits and explicit revision, frozen :class:`Baseline`, Phase II limits and z-scores.
* :mod:`~shared.stats.problimits` — probability limits for error counts (exact binomial
  tails; beta-binomial predictive for an estimated baseline).
* :mod:`~shared.stats.laney` — Laney p' chart for overdispersed (very large) subgroups.
* :mod:`~shared.stats.ewma` — EWMA of proportions with the exact time-varying variance.
* :mod:`~shared.stats.cusum` — tabular CUSUM on z-scores, Bernoulli CUSUM per verdict with an
  exact ARL design, risk-adjusted Bernoulli CUSUM.
* :mod:`~shared.stats.rules` — Western Electric and Nelson run rules, batch and incremental.
* :mod:`~shared.stats.agreement` — Cohen's kappa, Fleiss' kappa, Krippendorff's alpha.
* :mod:`~shared.stats.arl` — ARL of designs (integral equation / Markov chain), design
  helpers, seeded Monte-Carlo ARL of any detector.
* :mod:`~shared.stats.state` — loading any serialized incremental state.

See ``docs/statistics.md`` for what to use when.
"""

from shared.stats.agreement import (
    AlphaLevel,
    cohen_kappa,
    cohen_kappa_from_table,
    fleiss_kappa,
    krippendorff_alpha,
)
from shared.stats.arl import (
    ArlEstimate,
    ArlMethod,
    CusumDesign,
    CusumSides,
    Detector,
    DetectorFactory,
    EwmaDesign,
    cusum_arl,
    cusum_design,
    cusum_h_for_arl0,
    ewma_arl,
    ewma_design,
    ewma_limit_for_arl0,
    simulate_arl,
)
from shared.stats.cusum import (
    BernoulliCusum,
    BernoulliCusumDesign,
    BernoulliCusumPoint,
    CusumPoint,
    CusumState,
    RiskAdjustedCusum,
    RiskAdjustedPoint,
    bernoulli_cusum,
    bernoulli_cusum_arl,
    choose_h,
    cusum,
    llr_gamma,
    risk_adjusted_cusum,
)
from shared.stats.errors import StateFormatError, StatsError, UndefinedStatisticError
from shared.stats.ewma import EwmaPoint, EwmaState, ewma
from shared.stats.intervals import (
    Interval,
    IntervalMethod,
    agresti_coull_interval,
    jeffreys_interval,
    prob_at_least,
    proportion_interval,
    sample_size_for_margin,
    wilson_interval,
)
from shared.stats.laney import (
    LaneyBaseline,
    LaneyChart,
    LaneyPoint,
    MovingRangeState,
    laney_chart,
    laney_limits_for,
    laney_standardize,
    sigma_z,
)
from shared.stats.pchart import (
    Baseline,
    Limits,
    PChartPoint,
    PhaseIPoint,
    Subgroup,
    SubgroupAccumulator,
    SubgroupLike,
    TrialLimits,
    evaluate,
    limits_for,
    np_limits_for,
    standardize,
    trial_limits,
)
from shared.stats.problimits import THREE_SIGMA_ALPHA, CountModel, alpha_for_sigmas
from shared.stats.rules import (
    ALL_RULES,
    NELSON_RULES,
    RULE_DESCRIPTIONS,
    WESTERN_ELECTRIC_RULES,
    RuleState,
    Sides,
    evaluate_rules,
)
from shared.stats.state import STATE_VERSION, StreamState, load_state

__all__ = [
    "ALL_RULES",
    "NELSON_RULES",
    "RULE_DESCRIPTIONS",
    "STATE_VERSION",
    "THREE_SIGMA_ALPHA",
    "WESTERN_ELECTRIC_RULES",
    "AlphaLevel",
    "ArlEstimate",
    "ArlMethod",
    "Baseline",
    "BernoulliCusum",
    "BernoulliCusumDesign",
    "BernoulliCusumPoint",
    "CountModel",
    "CusumDesign",
    "CusumPoint",
    "CusumSides",
    "CusumState",
    "Detector",
    "DetectorFactory",
    "EwmaDesign",
    "EwmaPoint",
    "EwmaState",
    "Interval",
    "IntervalMethod",
    "LaneyBaseline",
    "LaneyChart",
    "LaneyPoint",
    "Limits",
    "MovingRangeState",
    "PChartPoint",
    "PhaseIPoint",
    "RiskAdjustedCusum",
    "RiskAdjustedPoint",
    "RuleState",
    "Sides",
    "StateFormatError",
    "StatsError",
    "StreamState",
    "Subgroup",
    "SubgroupAccumulator",
    "SubgroupLike",
    "TrialLimits",
    "UndefinedStatisticError",
    "agresti_coull_interval",
    "alpha_for_sigmas",
    "bernoulli_cusum",
    "bernoulli_cusum_arl",
    "choose_h",
    "cohen_kappa",
    "cohen_kappa_from_table",
    "cusum",
    "cusum_arl",
    "cusum_design",
    "cusum_h_for_arl0",
    "evaluate",
    "evaluate_rules",
    "ewma",
    "ewma_arl",
    "ewma_design",
    "ewma_limit_for_arl0",
    "fleiss_kappa",
    "jeffreys_interval",
    "krippendorff_alpha",
    "laney_chart",
    "laney_limits_for",
    "laney_standardize",
    "limits_for",
    "llr_gamma",
    "load_state",
    "np_limits_for",
    "prob_at_least",
    "proportion_interval",
    "risk_adjusted_cusum",
    "sample_size_for_margin",
    "sigma_z",
    "simulate_arl",
    "standardize",
    "trial_limits",
    "wilson_interval",
]
