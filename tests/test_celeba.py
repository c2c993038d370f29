"""CelebA data source on a fabricated mini tree (tests/celeba_fake.py): layouts, validation, cache, batches."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torchvision.transforms.v2 import functional as F

from celeba import preprocess
from celeba.augment import color_jitter
from celeba.cache import cache_paths
from celeba.config import check
from celeba.source import CelebASource
from conceptspace.errors import UserError
from tests.celeba_fake import attr_file, build_tree, image_dir, jpeg_bytes

DATA_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "data"
FEMALE, SMILING = 1, 1  # value index 1 of each concept in celeba.yaml


def data_cfg(tree_root, cache, **overrides):
    """configs/data/celeba.yaml on a fake tree, with a small per_cell."""
    base = OmegaConf.load(DATA_CONFIGS / "celeba.yaml")
    return OmegaConf.merge(base, {"root": str(tree_root), "cache_dir": str(cache), "per_cell": 8, **overrides})


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("celeba")
    return {layout: build_tree(base / layout, layout) for layout in ("torchvision", "csv")}


@pytest.fixture
def source_for(trees, tmp_path):
    def make(layout="torchvision", seed=0, **overrides):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return CelebASource(data_cfg(trees[layout], tmp_path / "cache", **overrides), seed)
    return make


@pytest.fixture
def decodes(monkeypatch):
    """Paths decoded from JPEG since the fixture started."""
    calls, real = [], preprocess.decode_image
    monkeypatch.setattr(preprocess, "decode_image", lambda path, *a: calls.append(path) or real(path, *a))
    return calls


def test_both_layouts_give_identical_data(trees, tmp_path):
    tv, csv = (CelebASource(data_cfg(trees[lay], tmp_path / lay), seed=0) for lay in ("torchvision", "csv"))
    assert (tv.index.paths.layout, csv.index.paths.layout) == ("torchvision", "csv")  # auto-detected
    assert tv.index.names == csv.index.names and len(tv.index) == 40
    assert np.array_equal(tv.index.cells, csv.index.cells) and np.array_equal(tv.index.partition, csv.index.partition)
    for a, b in zip(tv.train_batch(3, 16), csv.train_batch(3, 16)):
        assert torch.equal(a, b)
    for a, b in zip(tv.labelled("all"), csv.labelled("all")):
        assert torch.equal(a, b)


def _missing(path_of):
    def edit(root):
        p = path_of(root)
        p.rename(p.with_name(p.name + ".moved"))
    return edit


def _edit_labels(fn):
    return lambda root: (attr_file(root).unlink(), build_tree(root / "edited", edit_labels=fn))


@pytest.mark.parametrize("edit, overrides, message", [
    (None, {"root": "no/such/dir"}, r"data\.root: directory 'no/such/dir' does not exist"),
    (_missing(attr_file), {}, r"data\.root: no CelebA annotations"),
    (_missing(attr_file), {"layout": "torchvision"}, r"data\.root: missing annotation file .*list_attr_celeba\.txt"),
    (_missing(lambda r: r / "celeba" / "list_eval_partition.txt"), {}, r"missing annotation file .*list_eval_partiti"),
    (_missing(image_dir), {}, r"data\.root: missing image folder .*img_align_celeba"),
    (_missing(lambda r: image_dir(r) / "000007.jpg"), {}, r"data\.root: 1 annotated images are missing .*000007"),
    (None, {"layout": "csv"}, r"data\.root: missing annotation file .*list_attr_celeba\.csv"),
    (lambda r: attr_file(r).write_text(attr_file(r).read_text().replace(" 1\n", " yes\n", 1)), {},
     r"data\.root: list_attr_celeba\.txt is malformed"),
    (None, {"concepts": [{"attribute": "Mal", "values": ["m", "f"]}]},
     r"data\.concepts\[0\]\.attribute: unknown CelebA attribute 'Mal' \(did you mean Male\?\); allowed: .*Smiling"),
    (None, {"held_out": [["female", "grinning"]]}, r"data\.held_out: .*unknown value 'grinning'; allowed: .*smiling"),
    (None, {"held_out": [["female"]]}, r"data\.held_out: .*needs 2 values"),
    (None, {"image_size": 4}, r"data\.image_size: got 4; allowed: an integer in \[8, 512\]"),
    (None, {"resize": "stretch"}, r"data\.resize: got 'stretch'; allowed: \['center_crop', 'squash'\]"),
    (None, {"layout": "zip"}, r"data\.layout: got 'zip'; allowed: \['auto', 'torchvision', 'csv'\]"),
    (None, {"mode": "online"}, r"data\.mode: got 'online'; allowed: \['finite'\]"),
    (None, {"per_cell": 0}, r"data\.per_cell: got 0"),
    (None, {"jitter": 0.9}, r"data\.jitter: got 0\.9"),
    (None, {"train_split": "val"}, r"data\.train_split: got 'val'; allowed: \['all', 'train', 'valid', 'test'\]"),
    (None, {"concepts": [{"attribute": "Male", "values": ["a-b", "c"]}]}, r"data\.concepts\[0\]\.values"),
    (None, {"concepts": [{"attribute": "Male", "values": ["m", "f"], "attribute_values": [1, 1]}]},
     r"data\.concepts\[0\]\.attribute_values: got \[1, 1\]; allowed: \[-1, 1\] or \[1, -1\]"),
])
def test_bad_trees_and_fields_raise_one_line_naming_the_field(tmp_path, edit, overrides, message):
    root = build_tree(tmp_path / "data")
    if edit is not None:
        edit(root)
    with pytest.raises(UserError, match=message) as error:
        check(data_cfg(root, tmp_path / "cache", **overrides))
    assert "\n" not in str(error.value)
    assert not (tmp_path / "cache").exists()  # check writes nothing


def _no_female_smiling(labels, column):
    female = labels[:, column("Male")] == -1
    labels[female, column("Smiling")] = -1


def _no_male_smiling(labels, column):
    male = labels[:, column("Male")] == 1
    labels[male, column("Smiling")] = -1


def test_cells_without_images(tmp_path):
    root = build_tree(tmp_path / "a", edit_labels=_no_female_smiling)
    with pytest.raises(UserError, match=r"data\.held_out: cell female-smiling has no images"):
        check(data_cfg(root, tmp_path / "cache"))
    root = build_tree(tmp_path / "b", edit_labels=_no_male_smiling)
    with pytest.raises(UserError, match=r"data\.concepts: training cell male-smiling has no images"):
        check(data_cfg(root, tmp_path / "cache"))


def test_verify_reports_md5_mismatch(trees, tmp_path):
    with pytest.raises(UserError, match=r"data\.verify: MD5 of .*list_attr_celeba\.txt' is [0-9a-f]{32}, the official "
                                        r"list_attr_celeba\.txt has 75e246fa4810816ffd6ee81facbd244c"):
        check(data_cfg(trees["torchvision"], tmp_path, verify=True))
    with pytest.raises(UserError, match=r"data\.verify: no reference checksums for the csv layout"):
        check(data_cfg(trees["csv"], tmp_path, verify=True))


def test_corrupt_jpeg_names_the_file_or_is_skipped(tmp_path):
    root = build_tree(tmp_path / "data")
    (image_dir(root) / "000005.jpg").write_bytes(jpeg_bytes(4)[:2000])  # truncated
    with pytest.raises(UserError, match=r"data\.root: corrupt image .*000005\.jpg.*data\.skip_corrupt=true"):
        CelebASource(data_cfg(root, tmp_path / "cache"), seed=0).train_batch(0, 4)
    with pytest.warns(UserWarning, match=r"skipped 1 corrupt images \(first: 000005\.jpg\)"):
        images, cells = CelebASource(data_cfg(root, tmp_path / "cache", skip_corrupt=True), seed=0).labelled("all")
    assert len(images) == len(cells) == 39


def test_cache_built_once_reused_and_rebuilt_when_preprocessing_changes(source_for, decodes, tmp_path):
    source_for().train_batch(0, 4)
    assert len(decodes) == 40
    source_for(seed=3, per_cell=5, held_out=[["male", "smiling"]]).train_batch(0, 4)  # same pixels: reused
    source_for(layout="csv").labelled("test")  # same images, same settings: reused too
    assert len(decodes) == 40
    source_for(image_size=32).train_batch(0, 4)
    source_for(resize="squash").train_batch(0, 4)
    assert len(decodes) == 120
    assert len(list((tmp_path / "cache" / "celeba").glob("*.u8"))) == 3


def test_interrupted_build_leaves_no_cache(source_for, monkeypatch, tmp_path):
    real = preprocess.decode_image
    calls = []

    def fail_on_fifth(path, *args):
        calls.append(path)
        if len(calls) == 5:
            raise RuntimeError("disk full")
        return real(path, *args)

    monkeypatch.setattr(preprocess, "decode_image", fail_on_fifth)
    with pytest.raises(RuntimeError, match="disk full"):
        source_for().train_batch(0, 4)
    assert os.listdir(tmp_path / "cache" / "celeba") == []  # no final file, no temporary left behind
    # pixels without their metadata (a crash between the two renames) are not trusted either
    source = source_for()
    data_path, meta_path = cache_paths(source.index)
    data_path.write_bytes(b"\0" * 100)
    monkeypatch.setattr(preprocess, "decode_image", real)
    images, _ = source.labelled("all")
    assert meta_path.is_file() and images.amax() > 0


def test_train_batch_is_a_pure_function_of_seed_and_step(source_for):
    a = source_for(jitter=0.1)
    images, vectors = a.train_batch(5, 12)
    assert images.shape == (12, 3, 64, 64) and images.dtype == torch.float32 and vectors.shape == (12, 4)
    assert 0 <= images.min() and images.max() <= 1
    again = source_for(jitter=0.1).train_batch(5, 12)  # a fresh process resuming at step 5
    assert torch.equal(images, again[0]) and torch.equal(vectors, again[1])
    assert not torch.equal(images, a.train_batch(6, 12)[0])
    assert not torch.equal(images, source_for(seed=1, jitter=0.1).train_batch(5, 12)[0])
    plain = source_for(flip=False).train_batch(5, 12)[0]
    assert not torch.equal(images, plain)


def test_train_batch_is_identical_in_another_process(source_for, trees, tmp_path):
    """Resume happens in a new process, where Python's str hashing differs: batches must not depend on it."""
    images, vectors = source_for(jitter=0.1).train_batch(7, 8)
    cfg = data_cfg(trees["torchvision"], tmp_path / "cache", jitter=0.1)
    OmegaConf.save(cfg, tmp_path / "data.yaml")
    script = ("import sys, torch; from omegaconf import OmegaConf; from celeba.source import CelebASource; "
              "x, v = CelebASource(OmegaConf.load(sys.argv[1]), 0).train_batch(7, 8); "
              "torch.save((x, v), sys.argv[2])")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "data.yaml"), str(tmp_path / "batch.pt")],
                   check=True, env=env, cwd=Path(__file__).resolve().parents[1])
    other_images, other_vectors = torch.load(tmp_path / "batch.pt")
    assert torch.equal(images, other_images) and torch.equal(vectors, other_vectors)


def test_held_out_cells_never_in_training_and_selection_is_balanced(source_for):
    source = source_for()
    spec = source.spec
    assert spec.names == ["Male", "Smiling"] and spec.held_out == ((FEMALE, SMILING),)
    seen = torch.cat([spec.decode(source.train_batch(step, 16)[1]) for step in range(6)])
    cells = {tuple(c) for c in seen.tolist()}
    assert cells == set(spec.train_cells) and spec.cell("female-smiling") not in cells
    assert source.size == 8 * 3
    _, vectors = source._training_set()
    counts = torch.unique(spec.decode(vectors), dim=0, return_counts=True)[1]
    assert counts.tolist() == [8, 8, 8]
    with pytest.warns(UserWarning) as caught:
        assert CelebASource(data_cfg(source.cfg.root, source.cfg.cache_dir, per_cell=50), seed=0).size == 30
    messages = [str(w.message) for w in caught]
    assert len(messages) == 3 and all(f"data.per_cell: training cell {spec.cell_name(c)} has only 10 images" in m
                                      for c, m in zip(spec.train_cells, messages))


def test_labelled_covers_every_cell_and_split(source_for):
    source = source_for()
    images, cells = source.labelled("all")
    assert images.shape == (40, 3, 64, 64) and cells.dtype == torch.long and cells.shape == (40, 2)
    counts = {tuple(c): n for c, n in zip(*[t.tolist() for t in torch.unique(cells, dim=0, return_counts=True)])}
    assert counts == {cell: 10 for cell in source.spec.cells}  # held-out female-smiling included
    assert [len(source.labelled(s)[0]) for s in ("train", "valid", "test")] == [24, 8, 8]
    subset, subset_cells = source.labelled("train", n=5, seed=1)
    assert len(subset) == 5 and torch.equal(subset, source.labelled("train", n=5, seed=1)[0])
    as_bytes = source.labelled("test", uint8=True)[0]
    assert as_bytes.dtype == torch.uint8 and torch.equal(as_bytes.float() / 255, source.labelled("test")[0])
    with pytest.raises(UserError, match=r"split: got 'val'"):
        source.labelled("val")


def test_three_attribute_concepts_with_names(source_for):
    concepts = [{"attribute": "Male", "values": ["male", "female"], "attribute_values": [1, -1], "name": "gender"},
                {"attribute": "Smiling", "values": ["not_smiling", "smiling"]},
                {"attribute": "Wearing_Hat", "values": ["no_hat", "hat"]}]
    source = source_for(concepts=concepts, held_out=["female-smiling-hat", ["male", "smiling", "no_hat"]], per_cell=4)
    assert source.spec.names == ["gender", "Smiling", "Wearing_Hat"] and source.spec.dim == 6
    assert source.size == 4 * 6
    _, cells = source.labelled("all")
    assert {tuple(c) for c in cells.tolist()} == set(source.spec.cells)


def test_prompt_vectors_are_one_hot_and_axes_read_female_smiling(source_for):
    source = source_for()
    prompt = source.prompt_vectors("female-smiling", 3)
    assert torch.equal(prompt, torch.tensor([[0.0, 1.0, 0.0, 1.0]] * 3))
    assert torch.equal(source.spec.coordinates(prompt), torch.ones(3, 2))  # (P(female), P(smiling))
    # the fake tree makes image i (file name i + 1) male iff i % 4 < 2; value index 1 of "Male" must be female
    gender = source.index.cells[:, source.spec.names.index("Male")]
    assert [int(v) for v in gender] == [int((int(n[:6]) - 1) % 4 >= 2) for n in source.index.names]


def test_squash_and_center_crop_differ_and_crop_is_central(source_for, trees):
    crop = source_for(resize="center_crop").labelled("test")[0]
    squash = source_for(resize="squash").labelled("test")[0]
    assert crop.shape == squash.shape and (crop - squash).abs().mean() > 0.02
    path = image_dir(trees["torchvision"]) / "000001.jpg"
    with Image.open(path) as im:
        expected = np.asarray(im.convert("RGB").crop((0, 20, 178, 198)).resize((64, 64), Image.Resampling.BILINEAR))
    assert np.array_equal(preprocess.decode_image(path, 64, "center_crop"), expected.transpose(2, 0, 1))


def test_color_jitter_matches_torchvision_per_image():
    images = torch.rand(4, 3, 16, 16)
    images[3, :, :4] = 0.5  # grey pixels: hue undefined
    factors = torch.tensor([[0.9, 1.1, 0.95], [1.1, 0.9, 1.05], [1.0, 1.0, 1.0], [1.0, 1.1, 0.9]])
    hues = [0.1, -0.05, 0.0, 0.5]
    expected = []
    for img, (b, c, s), h in zip(images, factors.tolist(), hues):
        img = F.adjust_saturation(F.adjust_contrast(F.adjust_brightness(img, b), c), s)
        expected.append(F.adjust_hue(img, h))
    assert torch.allclose(color_jitter(images, factors, torch.tensor(hues)), torch.stack(expected), atol=1e-5)


def test_hydra_configs_compose_and_validate(trees, tmp_path, monkeypatch):
    from conceptspace.config import compose
    from conceptspace.validate import validate

    monkeypatch.setenv("CELEBA_ROOT", str(trees["csv"]))
    monkeypatch.setenv("CONCEPTSPACE_CACHE", str(tmp_path / "cache"))
    for name, held in (("celeba", "female-smiling"), ("celeba_male_hat", "female-hat")):
        cfg = compose([f"data={name}"])
        validate("render", cfg)
        assert cfg.data.source == "celeba" and cfg.data.cache_dir == str(tmp_path / "cache")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = CelebASource(cfg.data, seed=0)
        assert [source.spec.cell_name(h) for h in source.spec.held_out] == [held]
    with pytest.raises(UserError, match=r"data\.image_size"):
        validate("render", compose(["data=celeba", "data.image_size=3"]))
