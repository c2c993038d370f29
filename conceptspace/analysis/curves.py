"""Accuracy curves with their uncertainty: counts per snapshot, the paper's Gaussian smoothing along
snapshots, and Wilson intervals computed from the smoothed counts (successes and trials smoothed alike)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .stats import JOINT, NAIVE, select

SIGMA = 2.0  # snapshots: the paper's gaussian_filter1d(σ=2, truncate=6) (paper_setup.md §3.2)
TRUNCATE = 6.0
Z = 1.96  # 95% Wilson intervals


def gaussian_smooth(values, sigma: float = SIGMA, truncate: float = TRUNCATE) -> np.ndarray:
    """1-D Gaussian filter with half-sample reflection at the ends: scipy.ndimage.gaussian_filter1d's default
    (mode='reflect'), so numbers match the paper's notebooks without a scipy dependency."""
    values = np.asarray(values, dtype=float)
    if sigma <= 0 or values.size == 0:
        return values.copy()
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, radius, mode="symmetric")  # numpy 'symmetric' == scipy 'reflect'
    return np.convolve(padded, kernel, mode="valid")


def wilson(successes, trials, z: float = Z) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (lo, hi) of a binomial proportion; trials may be fractional (smoothed counts)."""
    k, n = np.asarray(successes, dtype=float), np.asarray(trials, dtype=float)
    n_safe = np.where(n > 0, n, 1.0)
    p = k / n_safe
    denom = 1 + z**2 / n_safe
    centre = (p + z**2 / (2 * n_safe)) / denom
    half = z * np.sqrt(p * (1 - p) / n_safe + z**2 / (4 * n_safe**2)) / denom
    lo, hi = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    return np.where(n > 0, lo, 0.0), np.where(n > 0, hi, 1.0)


def wilson_half_width(p: float, n: int, z: float = Z) -> float:
    lo, hi = wilson(p * n, n, z)
    return float(hi - lo) / 2


@dataclass(frozen=True)
class Curve:
    """One accuracy series of one cell over snapshots, as counts."""

    steps: np.ndarray
    successes: np.ndarray
    trials: np.ndarray

    @property
    def accuracy(self) -> np.ndarray:
        return self.successes / np.maximum(self.trials, 1)

    def smoothed(self, sigma: float = SIGMA) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(accuracy, Wilson lo, Wilson hi) of the smoothed counts."""
        k, n = gaussian_smooth(self.successes, sigma), gaussian_smooth(self.trials, sigma)
        lo, hi = wilson(k, n)
        return k / np.maximum(n, 1e-12), lo, hi

    def __len__(self) -> int:
        return len(self.steps)


def curve(stats, cell, series=JOINT, *, readout, method=NAIVE, setting="") -> Curve:
    """Counts of one cell's series (a concept name or JOINT) per snapshot, in step order."""
    chosen = sorted(select(stats, readout=readout, method=method, setting=setting, cell=cell), key=lambda s: s.step)
    return Curve(np.array([s.step for s in chosen], dtype=int),
                 np.array([s.successes(series) for s in chosen], dtype=float),
                 np.array([s.n for s in chosen], dtype=float))


def best_setting_curve(stats, cell, series=JOINT, *, readout, method) -> Curve:
    """Per step, the setting with the most successes (the paper's max over prompts / (α, β) grid). Biased
    upward against a single curve: kept to compare with the paper's figures, never as the headline."""
    best: dict[int, tuple[float, float]] = {}
    for s in stats:
        if s.readout == readout and s.method == method and s.cell == cell:
            k = s.successes(series)
            if s.step not in best or k / s.n > best[s.step][0] / best[s.step][1]:
                best[s.step] = (k, s.n)
    steps = sorted(best)
    return Curve(np.array(steps, dtype=int), np.array([best[t][0] for t in steps], dtype=float),
                 np.array([best[t][1] for t in steps], dtype=float))
