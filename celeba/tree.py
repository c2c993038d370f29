"""A user's local CelebA on disk: find the layout, verify checksums, read the attribute and partition tables.

Two layouts are understood (`data.layout`: auto | torchvision | csv):
    torchvision  <root>/celeba/{list_attr_celeba.txt, list_eval_partition.txt, img_align_celeba/*.jpg}
                 (root may also be the `celeba/` folder itself)
    csv          <root>/{list_attr_celeba.csv, list_eval_partition.csv, img_align_celeba/img_align_celeba/*.jpg}
                 (the Kaggle copy; a flat <root>/img_align_celeba/*.jpg is accepted too)
Only these two tables and the image folder are needed; identity, bbox and landmark files are ignored.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from conceptspace.errors import UserError

ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
PARTITIONS = {"train": 0, "valid": 1, "test": 2}
LAYOUTS = ("auto", "torchvision", "csv")
# MD5s of the official txt annotation files (torchvision's CelebA.file_list); the csv copies have none.
OFFICIAL_MD5 = {"list_attr_celeba.txt": "75e246fa4810816ffd6ee81facbd244c",
                "list_eval_partition.txt": "d32c9cbf5e040fd4025c592c306e6668"}


@dataclass(frozen=True)
class TreePaths:
    layout: str
    attr_file: Path
    partition_file: Path
    image_dir: Path


@dataclass(frozen=True)
class Annotations:
    names: tuple[str, ...]  # image file names, in file order
    attribute_names: tuple[str, ...]
    labels: np.ndarray  # (N, n_attributes) int8 of -1/1
    partition: np.ndarray  # (N,) int8: 0 train, 1 valid, 2 test

    def column(self, attribute: str) -> np.ndarray:
        return self.labels[:, self.attribute_names.index(attribute)]


def locate(root: str, layout: str) -> TreePaths:
    """The annotation files and image folder of `root` in `layout` (auto: whichever is present)."""
    base = Path(root)
    if not base.is_dir():
        raise UserError(f"data.root: directory {str(base)!r} does not exist; point data.root (or $CELEBA_ROOT) "
                        f"at a local CelebA copy")
    tv_base = base / "celeba" if (base / "celeba").is_dir() else base
    if layout == "auto":
        if (tv_base / "list_attr_celeba.txt").is_file():
            layout = "torchvision"
        elif (base / "list_attr_celeba.csv").is_file():
            layout = "csv"
        else:
            raise UserError(f"data.root: no CelebA annotations in {str(base)!r}; expected celeba/list_attr_celeba.txt "
                            f"(layout torchvision) or list_attr_celeba.csv (layout csv)")
    if layout == "torchvision":
        paths = TreePaths(layout, tv_base / "list_attr_celeba.txt", tv_base / "list_eval_partition.txt",
                          tv_base / "img_align_celeba")
    else:
        nested = base / "img_align_celeba" / "img_align_celeba"
        paths = TreePaths(layout, base / "list_attr_celeba.csv", base / "list_eval_partition.csv",
                          nested if nested.is_dir() else base / "img_align_celeba")
    for f in (paths.attr_file, paths.partition_file):
        if not f.is_file():
            raise UserError(f"data.root: missing annotation file {str(f)!r} (data.layout {layout})")
    if not paths.image_dir.is_dir():
        raise UserError(f"data.root: missing image folder {str(paths.image_dir)!r} (data.layout {layout})")
    return paths


def verify_checksums(paths: TreePaths) -> None:
    """Compare the txt annotation files with the official release; one line naming the file on mismatch."""
    if paths.layout != "torchvision":
        raise UserError(f"data.verify: no reference checksums for the {paths.layout} layout (only for the official "
                        f"txt files); set data.verify=false")
    for f in (paths.attr_file, paths.partition_file):
        digest = hashlib.md5(f.read_bytes()).hexdigest()
        if digest != OFFICIAL_MD5[f.name]:
            raise UserError(f"data.verify: MD5 of {str(f)!r} is {digest}, the official {f.name} has "
                            f"{OFFICIAL_MD5[f.name]}; the file differs from the CelebA release "
                            f"(set data.verify=false to use it anyway)")


def read_annotations(paths: TreePaths) -> Annotations:
    """Attribute labels and eval partition of every annotated image (parsed once per file version)."""
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in (paths.attr_file, paths.partition_file))
    return _read(paths.layout, stamp)


@functools.lru_cache(maxsize=4)
def _read(layout: str, stamp) -> Annotations:
    attr_file, partition_file = Path(stamp[0][0]), Path(stamp[1][0])
    delimiter = "," if layout == "csv" else None  # txt: runs of spaces
    lines = attr_file.read_text().splitlines()
    if layout == "csv":  # header "image_id,<40 names>"
        header, rows = lines[0].split(",")[1:] if lines else [], lines[1:]
    else:  # line 1: the image count; line 2: the names (maybe with a trailing space)
        header, rows = lines[1].split() if len(lines) > 1 else [], lines[2:]
    attribute_names = tuple(h.strip() for h in header)
    rows = [r for r in rows if r.strip()]
    names = tuple(r.split(delimiter, 1)[0].strip() for r in rows)
    try:  # numpy's C parser: ~0.2 s for the 202,599 x 40 table (a Python split loop takes seconds)
        labels = np.loadtxt(rows, delimiter=delimiter, usecols=range(1, len(attribute_names) + 1), dtype=np.int8,
                            ndmin=2).reshape(len(rows), len(attribute_names))
    except (ValueError, OverflowError) as e:
        raise UserError(f"data.root: {attr_file.name} is malformed ({_first_line(e)})") from None
    if not np.isin(labels, (-1, 1)).all():
        raise UserError(f"data.root: {attr_file.name}: labels must be -1 or 1")
    split_of = {}
    partition_lines = partition_file.read_text().splitlines()[1 if layout == "csv" else 0:]
    for line_no, line in enumerate(partition_lines, start=2 if layout == "csv" else 1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise UserError(f"data.root: {partition_file.name} line {line_no}: expected an image name and 0, 1 or 2")
        split_of[fields[0]] = int(fields[1])
    unsplit = [n for n in names if n not in split_of]
    if unsplit:
        raise UserError(f"data.root: {len(unsplit)} images of {attr_file.name} have no row in {partition_file.name} "
                        f"(first: {unsplit[0]})")
    partition = np.array([split_of[n] for n in names], dtype=np.int8)
    return Annotations(names, attribute_names, labels, partition)


def _first_line(e: Exception) -> str:
    return next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
