"""A fabricated mini CelebA (no real faces) in the torchvision or the csv (Kaggle) layout, for tests.

40 images of 178x218, 10 per cell of Male x Smiling and every cell of Male x Wearing_Hat non-empty; each
cell splits 6/2/2 into train/valid/test. Both layouts hold the same images and labels.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from celeba.tree import ATTRIBUTES

N_IMAGES = 40
PARTITION_OF_RANK = (0, 0, 0, 0, 0, 0, 1, 1, 2, 2)  # the k-th image of a cell -> its eval partition


def table(n: int = N_IMAGES):
    """(names, labels (n, 40) of -1/1, partition (n,)); image i is in Male x Smiling cell i % 4."""
    rng = np.random.default_rng(0)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    labels = rng.choice(np.array([-1, 1], dtype=np.int8), size=(n, len(ATTRIBUTES)))
    i = np.arange(n)
    labels[:, ATTRIBUTES.index("Male")] = np.where(i % 4 < 2, 1, -1)  # cells 0, 1 male; 2, 3 female
    labels[:, ATTRIBUTES.index("Smiling")] = np.where(i % 2 == 1, 1, -1)
    labels[:, ATTRIBUTES.index("Wearing_Hat")] = np.where((i // 4) % 2 == 1, 1, -1)
    partition = np.array([PARTITION_OF_RANK[(k // 4) % len(PARTITION_OF_RANK)] for k in i], dtype=np.int8)
    return names, labels, partition


@lru_cache(maxsize=None)
def jpeg_bytes(i: int) -> bytes:
    """A 178x218 JPEG: vertical gradient (so crop and squash differ) + a per-image colour + noise."""
    rng = np.random.default_rng(i)
    rows = np.linspace(0, 160, 218)[:, None, None]
    colour = rng.integers(0, 90, 3)[None, None, :]
    pixels = rows + colour + rng.normal(0, 8, (218, 178, 3))
    buffer = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def build_tree(root: Path, layout: str = "torchvision", n: int = N_IMAGES, edit_labels=None) -> Path:
    """Write a fake CelebA under root in `layout` ('torchvision' | 'csv'); returns root (the data.root).
    edit_labels(labels, column) may change the (n, 40) label table in place first (column: attribute -> index)."""
    names, labels, partition = table(n)
    if edit_labels is not None:
        edit_labels(labels, ATTRIBUTES.index)
    if layout == "torchvision":
        base = root / "celeba"
        image_dir = base / "img_align_celeba"
        image_dir.mkdir(parents=True)
        rows = "".join(f"{nm} " + " ".join(f"{v:2d}" for v in row) + "\n" for nm, row in zip(names, labels))
        (base / "list_attr_celeba.txt").write_text(f"{n}\n" + " ".join(ATTRIBUTES) + " \n" + rows)
        (base / "list_eval_partition.txt").write_text("".join(f"{nm} {p}\n" for nm, p in zip(names, partition)))
    elif layout == "csv":
        image_dir = root / "img_align_celeba" / "img_align_celeba"
        image_dir.mkdir(parents=True)
        rows = "".join(f"{nm}," + ",".join(str(v) for v in row) + "\n" for nm, row in zip(names, labels))
        (root / "list_attr_celeba.csv").write_text("image_id," + ",".join(ATTRIBUTES) + "\n" + rows)
        (root / "list_eval_partition.csv").write_text(
            "image_id,partition\n" + "".join(f"{nm},{p}\n" for nm, p in zip(names, partition)))
    else:
        raise ValueError(layout)
    for i, nm in enumerate(names):
        (image_dir / nm).write_bytes(jpeg_bytes(i))
    return root


def image_dir(root: Path) -> Path:
    tv = root / "celeba" / "img_align_celeba"
    return tv if tv.is_dir() else root / "img_align_celeba" / "img_align_celeba"


def attr_file(root: Path) -> Path:
    tv = root / "celeba" / "list_attr_celeba.txt"
    return tv if tv.is_file() else root / "list_attr_celeba.csv"
