"""One-time cache of the preprocessed images: a raw uint8 (N, 3, S, S) file, memory-mapped.

One file per (preprocessing settings, list of images on disk): every concept choice, held-out cell, seed and
labelled subset of the same tree then shares it, and the JPEGs are decoded once. Changing image_size or
resize gives a new key, hence a rebuild. The pixels are written under a temporary name and renamed into
place (os.replace), then the metadata file is renamed into place; a cache counts only when both exist and
agree, so an interrupted build is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from conceptspace.errors import UserError

from . import preprocess
from .index import CelebAIndex

FORMAT_VERSION = 1  # bump when decode_image changes its output
CHUNK = 2048  # images per batch of decode jobs (bounds the work left after an error)


@dataclass(frozen=True)
class CachedImages:
    pixels: np.ndarray  # (N, 3, S, S) uint8 memmap, rows in CelebAIndex order
    skipped: tuple[int, ...]  # rows of corrupt images (zeros; skipped with data.skip_corrupt)


def cache_key(names, preprocessing: dict) -> str:
    h = hashlib.sha256(json.dumps({"format": FORMAT_VERSION, **preprocessing}, sort_keys=True).encode())
    h.update("\n".join(names).encode())
    return h.hexdigest()[:24]


def cache_paths(index: CelebAIndex) -> tuple[Path, Path]:
    key = cache_key(index.names, index.cfg.preprocessing)
    folder = Path(index.cfg.cache_dir) / "celeba"
    return folder / f"{key}.u8", folder / f"{key}.json"


def load_or_build(index: CelebAIndex) -> CachedImages:
    data_path, meta_path = cache_paths(index)
    shape = (len(index), 3, index.cfg.image_size, index.cfg.image_size)
    cached = _load(data_path, meta_path, shape)
    if cached is None:
        _build(index, data_path, meta_path, shape)
        cached = _load(data_path, meta_path, shape)
    if cached.skipped:
        warnings.warn(f"data.skip_corrupt: skipped {len(cached.skipped)} corrupt images (first: "
                      f"{index.names[cached.skipped[0]]})", stacklevel=2)
    return cached


def _load(data_path: Path, meta_path: Path, shape) -> CachedImages | None:
    try:
        meta = json.loads(meta_path.read_text())
        complete = data_path.stat().st_size == int(np.prod(shape)) and meta["shape"] == list(shape)
    except (OSError, ValueError, KeyError):
        return None
    if not complete:
        return None
    return CachedImages(np.memmap(data_path, dtype=np.uint8, mode="r", shape=shape), tuple(meta["skipped"]))


def _build(index: CelebAIndex, data_path: Path, meta_path: Path, shape):
    cfg = index.cfg
    data_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = data_path.with_name(f"{data_path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    skipped = []
    try:
        pixels = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape)
        workers = min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(workers) as pool, tqdm(total=len(index), desc="CelebA cache", disable=None) as bar:
            for start in range(0, len(index), CHUNK):
                rows = range(start, min(start + CHUNK, len(index)))
                for i, (image, error) in zip(rows, pool.map(lambda i: _decode(index, i), rows)):
                    if error is None:
                        pixels[i] = image
                    elif cfg.skip_corrupt:
                        skipped.append(i)
                    else:
                        raise UserError(f"data.root: corrupt image {str(index.paths.image_dir / index.names[i])!r} "
                                        f"({error}); remove it or set data.skip_corrupt=true to skip it")
                bar.update(len(rows))
        pixels.flush()
        del pixels
        os.replace(tmp, data_path)
        meta = {"shape": list(shape), "preprocessing": cfg.preprocessing, "format": FORMAT_VERSION,
                "skipped": skipped, "skipped_names": [index.names[i] for i in skipped]}
        _write_atomically(meta_path, json.dumps(meta, indent=1))
    finally:
        tmp.unlink(missing_ok=True)


def _decode(index: CelebAIndex, i: int):
    """(pixels, None), or (None, error) for a corrupt or truncated JPEG."""
    try:
        return preprocess.decode_image(index.paths.image_dir / index.names[i], index.cfg.image_size,
                                       index.cfg.resize), None
    except OSError as e:
        return None, e


def _write_atomically(path: Path, text: str):
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
