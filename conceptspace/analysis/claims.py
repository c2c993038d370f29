"""One metric per claim of the paper (docs/claims.md): pure functions of summaries and series.

F1  learning time of a concept falls as its Δ rises (and the colour time rises with Δsize): Spearman ρ,
    twice — censored runs at their bound, and crossed runs only; the verdict needs both signs to agree.
F2  a weak-signal held-out trajectory first heads to the memorised corner, then turns (`memorisation`).
F3  elicitation precedes naive prompting: the split-half lead (lead.py), aggregated over seeds.
F4  2x2x2: the farther a held-out cell is from its target when training converges, the later it is learned.
"""

from __future__ import annotations

import numpy as np

from .curves import gaussian_smooth

MEMORISED_RADIUS = 0.3  # concept-space distance (corners are 1 apart) that counts as "at a corner"
TURN_RISE = 0.3  # how far the trajectory must leave the memorised corner to count as turned


# ---- rank statistics ------------------------------------------------------------------------------------
def ranks(values) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    out = np.empty(len(values))
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[order[j + 1]] == values[order[i]]:
            j += 1
        out[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x, y) -> float | None:
    """Spearman's ρ (Pearson of the tie-averaged ranks); None with < 3 points or a constant side."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3:
        return None
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def trend(xs, times, censored, expected_sign: int) -> dict:
    """F1 for one series: ρ with censored runs at their bound, and over crossed runs only. verdict:
    'reproduced' when both have the expected sign, 'contradicted' when both have the other, else 'unclear'."""
    xs, times, censored = np.asarray(xs, float), np.asarray(times, float), np.asarray(censored, bool)
    rho_all = spearman(xs, times)
    rho_crossed = spearman(xs[~censored], times[~censored])
    signs = {np.sign(r) for r in (rho_all, rho_crossed) if r is not None}
    if len(signs) == 1 and rho_all is not None and rho_crossed is not None and 0 not in signs:
        verdict = "reproduced" if signs == {expected_sign} else "contradicted"
    else:
        verdict = "unclear"
    return {"rho_censored_at_bound": rho_all, "rho_crossed_only": rho_crossed, "n": int(len(xs)),
            "n_censored": int(censored.sum()), "expected_sign": expected_sign, "verdict": verdict}


# ---- F2 ---------------------------------------------------------------------------------------------------
def memorised_cell(spec, held_out, signal: dict) -> tuple[int, ...] | None:
    """The training cell the held-out cell would be memorised as: the one sharing its value of the concept
    with the strongest concept signal on the run's training data, and differing from it in exactly one other
    concept (small-red for blue-small when size has the stronger signal). None when there is none."""
    held = spec.cell(held_out)
    strongest = max(spec.names, key=lambda c: signal[c])
    k = spec.names.index(strongest)
    candidates = [c for c in spec.train_cells if c[k] == held[k] and sum(a != b for a, b in zip(c, held)) == 1]
    return candidates[0] if len(candidates) == 1 else None


def memorisation(steps, coords: dict, corner: dict, target: dict, sigma: float = 2.0) -> dict:
    """F2 for one trajectory (coords: concept -> per-snapshot coordinate, smoothed here with σ snapshots):
    closest approach to the memorised `corner`, its step, the turn after it (the knee: the largest second
    difference of the smoothed distance to the corner from the approach on), and a verdict."""
    steps = np.asarray(steps)
    order = np.argsort(steps, kind="stable")
    steps = steps[order]
    names = list(corner)
    path = np.stack([gaussian_smooth(np.asarray(coords[c], float)[order], sigma) for c in names], 1)
    to_corner = np.linalg.norm(path - np.array([corner[c] for c in names], float), axis=1)
    to_target = np.linalg.norm(path - np.array([target[c] for c in names], float), axis=1)
    a = int(np.argmin(to_corner))
    start = max(a - 1, 0)  # the knee may sit at the approach itself (a V-shaped distance)
    knee = np.diff(to_corner[start:], 2)  # knee[i] is centred on snapshot start + i + 1
    turn = int(steps[start + int(np.argmax(knee)) + 1]) if knee.size else None
    memorised = to_corner[a] <= MEMORISED_RADIUS
    left = to_corner[-1] - to_corner[a] >= TURN_RISE and to_target[-1] < to_corner[-1]
    reached = to_target[-1] <= MEMORISED_RADIUS
    if memorised and left:
        verdict = "memorised then turned"
    elif memorised:
        verdict = "never turned"
    elif reached:
        verdict = "went straight"
    else:
        verdict = "neither"
    return {"approach_distance": float(to_corner[a]), "approach_step": int(steps[a]),
            "turn_step": turn if memorised and left else None, "final_distance_to_target": float(to_target[-1]),
            "verdict": verdict}


# ---- F4 ---------------------------------------------------------------------------------------------------
def distance_at(steps, coords: dict, target: dict, step: int, sigma: float = 2.0) -> float | None:
    """Concept-space distance of a (smoothed) trajectory from its target at the last snapshot ≤ step."""
    steps = np.asarray(steps)
    order = np.argsort(steps, kind="stable")
    at = int(np.searchsorted(steps[order], step, side="right")) - 1
    if at < 0:
        return None
    point = np.array([gaussian_smooth(np.asarray(coords[c], float)[order], sigma)[at] for c in target])
    return float(np.linalg.norm(point - np.array([target[c] for c in target], float)))


# ---- sweep-level claims over run summaries (rundir.summarise_run) ----------------------------------------
def f1_trends(summaries: list[dict], rule: str = "paper") -> list[dict]:
    """F1 per (held-out cell, concept, grouping): the concept's naive learning time against its own Δ at
    each fixed value of the other Δs (expected ρ < 0), and against each other concept's Δ at fixed own Δ
    (expected ρ > 0: raising Δsize delays colour). Every seed is a point; censored runs enter at their bound."""
    out = []
    runs = [s for s in summaries if s["learning_times"] and all(v is not None for v in s["deltas"].values())]
    if not runs:
        return out
    concepts = [c for c in runs[0]["deltas"]]
    for cell in runs[0]["learning_times"]:
        for concept in concepts:
            for x_concept in concepts:
                fixed = [c for c in concepts if c != x_concept]
                groups: dict = {}
                for s in runs:
                    t = s["learning_times"].get(cell, {}).get(concept, {}).get(rule)
                    if t is not None:
                        key = tuple((c, s["deltas"][c]) for c in fixed)
                        groups.setdefault(key, []).append((s["deltas"][x_concept], t.step, t.censored))
                for key, pts in sorted(groups.items()):
                    if len({p[0] for p in pts}) < 2:
                        continue
                    xs, ts, cs = zip(*pts)
                    expected = -1 if x_concept == concept else 1
                    out.append({"cell": cell, "concept": concept, "against": f"delta_{x_concept}",
                                "fixed": dict(key), **trend(xs, ts, cs, expected)})
    return out


def f4_points(summaries: list[dict], rule: str = "paper", convergence: str = "corners") -> list[dict]:
    """F4: per run and held-out cell, the distance from its target at the training-convergence step and its
    naive joint learning time. Runs whose training never converged are left out (and counted by the caller)."""
    points = []
    for s in summaries:
        conv = s["convergence"].get(convergence)
        if not conv or conv[1]:
            continue
        spec = s["spec"]
        for cell in spec.held_out:
            name = spec.cell_name(cell)
            if name not in s["trajectories"]:
                continue
            steps, coords = s["trajectories"][name]
            d = distance_at(steps, coords, dict(zip(spec.names, (float(v) for v in cell))), conv[0])
            t = s["learning_times"][name]["joint"][rule]
            if d is not None:
                points.append({"run": s["run_dir"], "seed": s["seed"], "cell": name, "convergence_step": conv[0],
                               "distance": d, "learning_time": t.step, "censored": t.censored})
    return points


def f4_trend(points: list[dict]) -> dict:
    return trend([p["distance"] for p in points], [p["learning_time"] for p in points],
                 [p["censored"] for p in points], +1)
