"""Measure one blurred disc per image straight from the pixels: background, object colour, centre, radius.

The image model is the renderer's own (`synthetic_shapes.render`): x = bg + M (colour - bg), M = B H B^T,
H the hard mask of a disc sampled at pixel centres, B the Gaussian blur. Fitting runs in three vectorised
stages, every image at once:

1. first guess: background = median of the border pixels; the object's RGB direction from the pixels that
   differ most from it; centre and radius from the moments of the projection on that direction;
2. Gauss-Newton on (centre, radius) of a smooth disc whose pixel coverage ramps over one pixel at the rim,
   re-solving background and colour by least squares (unmixing) at every step: sub-pixel centre and radius,
   also for discs cut by the canvas edge (the model is cut the same way);
3. the hard mask of that disc, refined one pixel per image per step (the flip that lowers the residual
   most): small discs have no pixel of pure colour, and only the exact hard mask unmixes their colour.

Images the model does not explain (noise, no object, a uniform image) come back with `found = False`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from synthetic_shapes.render import blur_matrix, canvas

MIN_QUALITY = 0.1  # explained pixel variance: clean renders >= 0.99, +0.1 pixel noise ~0.3, pure noise <= 0.04
MIN_CONTRAST = 0.02  # RGB distance between object and background below which nothing is there to measure
_EPS = 1e-12


@dataclass
class DiscFit:
    background: torch.Tensor  # (N, 3) RGB
    color: torch.Tensor  # (N, 3) RGB of the object
    radius: torch.Tensor  # (N,) canvas units on [-1, 1]
    center: torch.Tensor  # (N, 2) canvas units; x along image axis -2, y along axis -1 (the renderer's)
    quality: torch.Tensor  # (N,) fraction of the pixel variance the fitted image explains
    found: torch.Tensor  # (N,) bool: an object was found and the model explains the image


class DiscFitter:
    def __init__(self, image_size: int, blur_sigma_px: float, device="cpu", gauss_newton_steps: int = 5,
                 flip_steps: int = 8):
        self.px = 2.0 / (image_size - 1)
        self.grid = canvas(image_size, device)
        self.blur = blur_matrix(image_size, blur_sigma_px, device)
        column_energy = (self.blur**2).sum(0)
        self.impulse_energy = column_energy[:, None] * column_energy[None, :]  # ||B e_ij B^T||^2
        self.gauss_newton_steps, self.flip_steps = gauss_newton_steps, flip_steps

    def __call__(self, images: torch.Tensor) -> DiscFit:
        x = images.float()
        border_bg = _border_median(x)
        center, radius = self._first_guess(x, border_bg)
        for _ in range(self.gauss_newton_steps):
            center, radius = self._gauss_newton_step(x, center, radius)
        hard = (self._distance(center) < radius[:, None, None]).float()
        for _ in range(self.flip_steps):
            hard = self._flip_step(x, hard)
        soft = self._blurred(hard)
        bg, delta = _unmix(x, soft)
        residual = x - bg[:, :, None, None] - soft[:, None] * delta[:, :, None, None]
        spread = ((x - x.mean((2, 3), keepdim=True)) ** 2).sum((1, 2, 3))
        quality = 1 - (residual**2).sum((1, 2, 3)) / spread.clamp_min(_EPS)
        found = (quality >= MIN_QUALITY) & (delta.norm(dim=1) >= MIN_CONTRAST) & (hard.sum((1, 2)) >= 1)
        background = torch.where(found[:, None], bg, border_bg)
        return DiscFit(background, bg + delta, radius, center, quality, found)

    # ---- stage 1 -------------------------------------------------------------------------------------
    def _first_guess(self, x, bg):
        diff = x - bg[:, :, None, None]
        direction = (diff * diff.norm(dim=1, keepdim=True)).sum((2, 3))  # strong pixels dominate
        direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(_EPS)
        along = torch.einsum("ncij,nc->nij", diff, direction)
        peak = along.flatten(1).amax(1)
        core = (along >= 0.9 * peak[:, None, None]).float()
        level = ((along * core).sum((1, 2)) / core.sum((1, 2)).clamp_min(1)).clamp_min(1e-6)
        mass = along.clamp_min(0)
        total = mass.sum((1, 2)).clamp_min(_EPS)
        center = torch.stack([(mass * self.grid[:, None]).sum((1, 2)),
                              (mass * self.grid[None, :]).sum((1, 2))], 1) / total[:, None]
        area_px = (along.sum((1, 2)) / level).clamp_min(0)
        return center, self._clamp_radius((area_px / math.pi).sqrt() * self.px)

    # ---- stage 2 -------------------------------------------------------------------------------------
    def _gauss_newton_step(self, x, center, radius):
        model, jacobian = self._smooth_disc(center, radius)
        bg, delta = _unmix(x, model)
        residual = x - bg[:, :, None, None] - model[:, None] * delta[:, :, None, None]
        along = torch.einsum("ncij,nc->nij", residual, delta)
        gradient = torch.einsum("nkij,nij->nk", jacobian, along)
        hessian = torch.einsum("nkij,nlij->nkl", jacobian, jacobian) * (delta**2).sum(1)[:, None, None]
        eye = torch.eye(3, device=x.device)
        hessian = hessian + 1e-3 * hessian.diagonal(dim1=1, dim2=2).diag_embed() + 1e-9 * eye  # damped
        step = torch.linalg.solve(hessian, gradient).clamp(-self.px, self.px)  # at most a pixel a step
        return (center + step[:, :2]).clamp(-1.5, 1.5), self._clamp_radius(radius + step[:, 2])

    def _smooth_disc(self, center, radius):
        """Blurred disc with a one-pixel coverage ramp at the rim, and its derivatives by (cx, cy, r)."""
        dx = self.grid[None, :, None] - center[:, 0, None, None]
        dy = self.grid[None, None, :] - center[:, 1, None, None]
        distance = (dx * dx + dy * dy).sqrt()
        ramp = (radius[:, None, None] - distance) / self.px + 0.5
        on_rim = ((ramp > 0) & (ramp < 1)).float() / self.px
        inv = 1 / distance.clamp_min(_EPS)
        parts = torch.stack([on_rim * dx * inv, on_rim * dy * inv, on_rim], 1)
        return self._blurred(ramp.clamp(0, 1)), self._blurred(parts)

    # ---- stage 3 -------------------------------------------------------------------------------------
    def _flip_step(self, x, hard):
        soft = self._blurred(hard)
        bg, delta = _unmix(x, soft)
        residual = x - bg[:, :, None, None] - soft[:, None] * delta[:, :, None, None]
        correlation = self.blur.T @ torch.einsum("ncij,nc->nij", residual, delta) @ self.blur
        sign = 1 - 2 * hard  # +1 adds a pixel, -1 removes it
        gain = 2 * sign * correlation - (delta**2).sum(1)[:, None, None] * self.impulse_energy
        best_gain, best = gain.flatten(1).max(1)
        flip = torch.zeros_like(hard).flatten(1)
        flip.scatter_(1, best[:, None], (best_gain > 0).float()[:, None])
        return hard + sign * flip.view_as(hard)

    # ---- helpers -------------------------------------------------------------------------------------
    def _blurred(self, masks):
        return self.blur @ masks @ self.blur.T

    def _distance(self, center):
        dx = self.grid[None, :, None] - center[:, 0, None, None]
        dy = self.grid[None, None, :] - center[:, 1, None, None]
        return (dx * dx + dy * dy).sqrt()

    def _clamp_radius(self, radius):
        return radius.nan_to_num(0.0).clamp(0.5 * self.px, 2.0)


def _border_median(x):
    edges = [x[..., 0, :], x[..., -1, :], x[..., 1:-1, 0], x[..., 1:-1, -1]]
    return torch.cat(edges, -1).median(-1).values


def _unmix(x, mask):
    """Per image and channel, the least-squares (bg, delta) of x = bg + mask * delta. -> (N, 3), (N, 3)."""
    count = mask.shape[-1] * mask.shape[-2]
    s_m, s_mm = mask.sum((1, 2)), (mask * mask).sum((1, 2))
    s_x, s_mx = x.sum((2, 3)), torch.einsum("ncij,nij->nc", x, mask)
    det = (count * s_mm - s_m * s_m).clamp_min(1e-6 * count * count)[:, None]  # a flat mask unmixes nothing
    delta = (count * s_mx - s_m[:, None] * s_x) / det
    return (s_x - s_m[:, None] * delta) / count, delta
