"""Exact, vectorised renderer of the paper's synthetic concept data (coloured shapes on a background)."""

from .config import ShapesConfig
from .world import Batch, ShapesWorld

__all__ = ["Batch", "ShapesConfig", "ShapesWorld"]
