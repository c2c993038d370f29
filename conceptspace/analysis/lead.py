"""The elicitation lead: how many steps earlier a method makes the held-out cell than naive prompting.

Two estimates, always side by side:
    max      the paper's: per snapshot the best of the method's settings, against the one naive curve. A
             method with K settings gets K chances per snapshot, so this favours it (the null control, K
             copies of the naive prompt on fresh seeds, shows a spurious lead under it: the bias, shown).
    split    the honest one (the headline): the method's setting is chosen once per run on one half of the
             probes (even indices) and scored on the other half (odd), against naive on that same half.
Learning times use the headline rule (times.HEADLINE, 0.8). A lead's interval comes from the two learning
times' intervals: [naive.lo − method.hi, naive.hi − method.lo] (None where a bound is undefined).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .curves import SIGMA, Curve, best_setting_curve, curve
from .stats import JOINT, NAIVE, settings_of
from .times import HEADLINE, LearningTime, learning_time

BOUNDS = {(False, False): "exact", (True, False): "lower", (False, True): "upper", (True, True): "unknown"}
SELECT_HALF, SCORE_HALF = 0, 1


@dataclass(frozen=True)
class Lead:
    estimate: str  # "split" | "max"
    method: str
    setting: str | None  # the chosen setting (split); None for max (a different one per snapshot)
    naive: LearningTime
    elicited: LearningTime
    lead: int | None  # naive.step − elicited.step; None when neither crossed
    bound: str  # exact | lower (naive censored: lead ≥ value) | upper (method censored) | unknown
    interval: tuple[int | None, int | None]

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "method": self.method, "setting": self.setting,
                "naive": self.naive.to_dict(), "elicited": self.elicited.to_dict(), "lead": self.lead,
                "bound": self.bound, "interval": list(self.interval)}


def lead_between(naive: Curve, elicited: Curve, *, estimate: str, method: str, setting: str | None,
                 rule: str = HEADLINE, sigma: float = SIGMA) -> Lead:
    tn, tm = learning_time(naive, rule, sigma), learning_time(elicited, rule, sigma)
    value = None if tn.censored and tm.censored else tn.step - tm.step
    lo = tn.lo - tm.hi if tn.lo is not None and tm.hi is not None else None
    hi = tn.hi - tm.lo if tn.hi is not None and tm.lo is not None else None
    return Lead(estimate, method, setting, tn, tm, value, BOUNDS[(tn.censored, tm.censored)], (lo, hi))


def choose_setting(stats_select, cell, method, *, readout, series=JOINT, rule=HEADLINE, sigma=SIGMA) -> str | None:
    """The setting that reaches the threshold first on the selection half (ties: the higher mean smoothed
    accuracy). None when the method has no rows for the cell."""
    scored = []
    for setting in settings_of(stats_select, readout=readout, method=method, cell=cell):
        c = curve(stats_select, cell, series, readout=readout, method=method, setting=setting)
        t = learning_time(c, rule, sigma)
        scored.append((t.censored, t.step, -float(np.mean(c.smoothed(sigma)[0])), setting))
    return min(scored)[3] if scored else None


def split_half_lead(stats_by_half: dict, cell, method, *, readout, series=JOINT, rule=HEADLINE,
                    sigma=SIGMA) -> Lead | None:
    """stats_by_half: {0: cell_stats(rows, spec, half=0), 1: ...(half=1)}."""
    setting = choose_setting(stats_by_half[SELECT_HALF], cell, method, readout=readout, series=series, rule=rule,
                             sigma=sigma)
    if setting is None:
        return None
    score = stats_by_half[SCORE_HALF]
    naive = curve(score, cell, series, readout=readout)
    elicited = curve(score, cell, series, readout=readout, method=method, setting=setting)
    if not len(naive) or not len(elicited):
        return None
    return lead_between(naive, elicited, estimate="split", method=method, setting=setting, rule=rule, sigma=sigma)


def max_over_settings_lead(stats, cell, method, *, readout, series=JOINT, rule=HEADLINE, sigma=SIGMA) -> Lead | None:
    naive = curve(stats, cell, series, readout=readout, method=NAIVE)
    best = best_setting_curve(stats, cell, series, readout=readout, method=method)
    if not len(naive) or not len(best):
        return None
    return lead_between(naive, best, estimate="max", method=method, setting=None, rule=rule, sigma=sigma)


def leads(rows_stats: dict, cell, methods, *, readout) -> dict[str, dict[str, Lead]]:
    """{method: {"split": Lead, "max": Lead}} for one held-out cell. rows_stats: {None: all, 0: half 0, 1: half 1}."""
    out = {}
    for m in methods:
        pair = {"split": split_half_lead(rows_stats, cell, m, readout=readout),
                "max": max_over_settings_lead(rows_stats[None], cell, m, readout=readout)}
        out[m] = {k: v for k, v in pair.items() if v is not None}
    return out
