"""Decode one CelebA JPEG into a (3, S, S) uint8 array: the deterministic part of preprocessing (cached).

resize=squash       Resize((S, S)) of the whole 178x218 image, aspect ratio squashed (the paper)
resize=center_crop  central square (178x178) first, then resize: faces keep their shape (default for new work)
Bilinear (antialiased) resampling, as torchvision's Resize does on PIL images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def decode_image(path: Path, image_size: int, resize: str) -> np.ndarray:
    """Raises OSError (PIL's UnidentifiedImageError is one) for a corrupt or truncated file."""
    with Image.open(path) as im:
        im = im.convert("RGB")  # forces the full decode, so truncation surfaces here
        if resize == "center_crop":
            w, h = im.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            im = im.crop((left, top, left + side, top + side))
        im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
