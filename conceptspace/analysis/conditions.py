"""Runs that differ only by seed are one condition: grouping, and per-condition statistics with censoring
handled explicitly (how many seeds crossed; a median with its range; never a mean that drops a seed)."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np

from .stats import JOINT, NULL
from .times import HEADLINE

NOT_CONDITION = ("seed", "device", "logger")  # config keys that do not make a condition


def condition_key(config: dict) -> str:
    return json.dumps({k: v for k, v in config.items() if k not in NOT_CONDITION}, sort_keys=True, default=str)


def group_conditions(summaries: list[dict], code_versions: dict[str, str] | None = None) -> list[list[dict]]:
    """Summaries grouped by condition (their configs without seed/device/logger), in first-seen order; with
    `code_versions` ({run_dir: version}), runs of different code versions are different conditions."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for s in summaries:
        version = (code_versions or {}).get(s["run_dir"], "")
        groups[condition_key(s["config"]) + version].append(s)
    return list(groups.values())


def censored_median(values, censored) -> dict:
    """Median and range of times some of which are censored (the true value is > the recorded bound).
    Censored values sort last (+inf); a median or maximum that lands on one is itself only a lower bound."""
    values, censored = np.asarray(values, float), np.asarray(censored, bool)
    n = len(values)
    if n == 0:
        return {"n": 0, "n_crossed": 0, "median": None, "median_censored": False, "min": None, "max": None,
                "max_censored": False}
    order = np.lexsort((values, censored))  # crossed first by value, then censored by bound
    sorted_vals, sorted_cens = values[order], censored[order]
    mid = [(n - 1) // 2, n // 2]
    median_censored = bool(sorted_cens[mid].any())
    if median_censored:  # known only to exceed the smallest censored bound among the middle pair
        median = float(min(v for v, c in zip(sorted_vals[mid], sorted_cens[mid]) if c))
    else:
        median = float(np.mean(sorted_vals[mid]))
    return {"n": n, "n_crossed": int((~censored).sum()), "median": median, "median_censored": median_censored,
            "min": float(sorted_vals[0]), "max": float(sorted_vals[-1]), "max_censored": bool(sorted_cens[-1])}


def format_censored(stat: dict) -> str:
    """'1,200 [800–1,500], 3/3 crossed' with '>' marking censored bounds."""
    if not stat["n"]:
        return "n/a"
    med = f"{'>' if stat['median_censored'] else ''}{stat['median']:,.0f}"
    hi = f"{'>' if stat['max_censored'] else ''}{stat['max']:,.0f}"
    return f"{med} [{stat['min']:,.0f}–{hi}], {stat['n_crossed']}/{stat['n']} crossed"


def lead_stats(leads: list) -> dict:
    """Per-seed leads (lead.Lead or None) of one method -> median/range of the known ones, how many seeds
    had lead > 0, and how many were only bounded (naive never crossed: lower; method never: upper) or unknown."""
    known = [x for x in leads if x is not None and x.lead is not None]
    values = np.array([x.lead for x in known], float)
    bounds = defaultdict(int)
    for x in leads:
        bounds["missing" if x is None else x.bound] += 1
    return {"n": len(leads), "n_positive": int((values > 0).sum()), "median": float(np.median(values)) if known
            else None, "min": float(values.min()) if known else None, "max": float(values.max()) if known else None,
            "bounds": dict(bounds), "values": [None if x is None else x.lead for x in leads],
            "value_bounds": [None if x is None else x.bound for x in leads],
            "settings": [None if x is None else x.setting for x in leads]}


def f3_verdict(method_stats: dict, null_stats: dict | None) -> str:
    """reproduced: lead > 0 in ≥ 2/3 of seeds with a positive median, and the null control's leads span 0;
    not reproduced: median ≤ 0 or no seed with a known lead; partly: in between. Seeds whose lead is only
    an upper bound count against the claim (the method never reached the threshold). undetermined: the
    median is ≤ 0 only through lower bounds (naive prompting never crossed, so the lead is at least that)."""
    if method_stats["median"] is None:
        return "not reproduced"
    if method_stats["median"] <= 0:
        nonpositive = [b for v, b in zip(method_stats["values"], method_stats.get("value_bounds") or [])
                       if v is not None and v <= 0]
        lower_only = nonpositive and all(b == "lower" for b in nonpositive)
        return "undetermined (lead ≥ bound)" if lower_only else "not reproduced"
    null_ok = null_stats is None or null_stats["median"] is None or \
        (null_stats["min"] <= 0 <= null_stats["max"])
    strong = method_stats["n_positive"] >= 2 * method_stats["n"] / 3
    return "reproduced" if strong and null_ok else "partly"


def summarise_condition(runs: list[dict], threshold_rule: str = HEADLINE) -> dict:
    """Per condition: learning times (per held-out cell and series), F2 verdict counts, F3 leads per method
    (split-half headline, max-over-settings beside it), with one verdict line per claim."""
    first = runs[0]
    out = {"n_seeds": len(runs), "seeds": [r["seed"] for r in runs], "deltas": first["deltas"],
           "name": first["name"], "learning_times": {}, "memorisation": {}, "leads": {}, "verdicts": []}
    for cell in first["spec"].held_out:
        name = first["spec"].cell_name(cell)
        mine = [r for r in runs if name in r["learning_times"]]
        if not mine:
            continue
        out["learning_times"][name] = {
            series: {rule: censored_median([r["learning_times"][name][series][rule].step for r in mine],
                                           [r["learning_times"][name][series][rule].censored for r in mine])
                     for rule in mine[0]["learning_times"][name][series]}
            for series in mine[0]["learning_times"][name]}
        verdicts = [r["memorisation"][name]["verdict"] for r in mine if name in r["memorisation"]]
        if verdicts:
            counts = {v: verdicts.count(v) for v in dict.fromkeys(verdicts)}
            out["memorisation"][name] = counts
            top = max(counts, key=counts.get)
            out["verdicts"].append(f"F2 {name}: {counts.get('memorised then turned', 0)}/{len(verdicts)} seeds "
                                   f"memorised then turned (most common: {top})")
        methods = sorted({m for r in mine for m in r["leads"].get(name, {})})
        out["leads"][name] = {m: {est: lead_stats([r["leads"][name].get(m, {}).get(est) for r in mine])
                                  for est in ("split", "max")} for m in methods}
        null = out["leads"][name].get(NULL, {}).get("split")
        for m in methods:
            if m == NULL:
                continue
            s, mx = out["leads"][name][m]["split"], out["leads"][name][m]["max"]
            verdict = f3_verdict(s, null)
            out["leads"][name][m]["verdict"] = verdict
            out["verdicts"].append(
                f"F3 {name} {m}: {verdict} — split-half lead median {fmt(s['median'])} [{fmt(s['min'])}, "
                f"{fmt(s['max'])}], > 0 in {s['n_positive']}/{s['n']} seeds, {s['bounds'].get('lower', 0)} only "
                f"bounded below (max-over-settings: median "
                f"{fmt(mx['median'])}); null control median {fmt(null['median']) if null else 'not run'}")
        t = out["learning_times"][name][JOINT][threshold_rule]
        out["verdicts"].append(f"naive learning time of {name} (joint, {threshold_rule} rule): {format_censored(t)}")
    return out


def fmt(v) -> str:
    return "n/a" if v is None else f"{v:,.0f}"
