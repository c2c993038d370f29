"""Readouts: the analytic oracle on clean renders, chance on noise, the learned probe (trained through the
`train-probe` verb once per module), save/load, agreement between the two, and one-line errors."""

import json
import math

import pytest
import torch

from conceptspace.errors import UserError
from conceptspace.readout import build_readout
from conceptspace.readout.analytic import AnalyticReadout
from synthetic_shapes import ShapesConfig, ShapesWorld
from tests.helpers import assert_one_line_error

PIXEL = 2 / 31  # canvas units per pixel at 32 px
TWO_BY_TWO = dict(concepts=("color", "size"), held_out=(("blue", "small"),))
CUBE = dict(concepts=("color", "size", "bg"), held_out=(("blue", "small", "dark"), ("red", "small", "dark")))


def renders(cfg: ShapesConfig, split: str, per_cell: int = 32, seed: int = 0):
    """Every cell (held-out ones included), `per_cell` images each."""
    cells = torch.tensor(cfg.spec.cells).repeat(per_cell, 1)
    return ShapesWorld(cfg).batch(cells, torch.arange(len(cells)), seed, split)


def accuracy(p, cells):
    return ((p > 0.5).long() == cells).float().mean(0)


# ---- analytic readout -------------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["test", "train"])
@pytest.mark.parametrize("concepts, sep_col, sep_size, center_range", [
    (TWO_BY_TWO, 0.1, 0.4, 0.2), (TWO_BY_TWO, 0.8, 0.4, 0.2), (TWO_BY_TWO, 0.4, 0.2, 0.2),
    (TWO_BY_TWO, 0.8, 0.2, 0.2), (CUBE, 0.1, 0.3, 0.2),
    (TWO_BY_TWO, 0.4, 0.4, 0.5),  # the default centre jitter: large discs cut by the canvas edge
])
def test_analytic_recovers_factors_and_cells(split, concepts, sep_col, sep_size, center_range):
    cfg = ShapesConfig(**concepts, sep_col=sep_col, sep_size=sep_size, sep_bg=0.2, center_range=center_range)
    batch = renders(cfg, split)
    readout = AnalyticReadout(cfg)
    fit = readout.measure(batch.images)
    red, blue = torch.tensor(cfg.means("color"))
    unit_axis = (blue - red) / (blue - red).norm()
    colour_error = ((fit.color - batch.factors["color"]) @ unit_axis).abs()
    radius_error = (fit.radius - batch.factors["radius"]).abs() / PIXEL
    assert fit.found.all()
    assert colour_error.max() < 0.02, colour_error.max()
    assert radius_error.max() < 0.5, radius_error.max()
    out = readout.read(batch.images)
    true = cfg.spec.coordinates(batch.vectors)
    assert out["coords"].shape == out["p"].shape == (len(batch.images), len(cfg.spec.names))
    assert out["found"].dtype == torch.bool and out["found"].shape == (len(batch.images),) and out["found"].all()
    colour_slot = cfg.spec.names.index("color")  # coordinate error in RGB units along the red-blue axis
    assert ((out["coords"] - true)[:, colour_slot].abs() * (blue - red).norm()).max() < 0.02
    assert (accuracy(out["p"], batch.cells) >= 0.99).all(), accuracy(out["p"], batch.cells)


def test_analytic_puts_clean_cells_at_their_corners():
    cfg = ShapesConfig(**CUBE, sep_col=0.4, sep_size=0.4, sep_bg=0.4, center_range=0.2)
    batch = renders(cfg, "test", per_cell=8)
    coords = AnalyticReadout(cfg).read(batch.images)["coords"]
    assert (coords - batch.cells.float()).abs().max() < 0.1


@pytest.mark.parametrize("concepts", [TWO_BY_TWO, CUBE])
def test_analytic_noise_and_blank_images_read_chance(concepts):
    readout = AnalyticReadout(ShapesConfig(**concepts))
    noise = readout.read(torch.rand(512, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert ((noise["p"].mean(0) - 0.5).abs() <= 0.15).all(), noise["p"].mean(0)
    blank = readout.read(torch.full((4, 3, 32, 32), 0.9))
    for key in ("p", "coords"):
        assert torch.isfinite(noise[key]).all() and torch.isfinite(blank[key]).all()
    for name in ("color", "size"):
        assert (blank["coords"][:, readout.spec.names.index(name)] == 0.5).all()
    assert not blank["found"].any() and noise["found"].float().mean() < 0.05
    empty = readout.read(torch.rand(0, 3, 32, 32))
    assert empty["p"].shape == (0, len(readout.spec.names)) and empty["found"].shape == (0,)


def test_a_blank_sample_is_not_found_in_the_tracker_rows_so_it_cannot_count_as_correct(tmp_path):
    """Chance p = 0.5 is not > 0.5, so `(p > 0.5) == target` alone scores a blank image correct on every
    value-0 target (red, large): the rows must say there was nothing to read."""
    from conceptspace.tracker.probes import ProbeSet
    from conceptspace.tracker.rows import append_rows, read_rows
    from conceptspace.tracker.track import Tracker, held_out_summary

    cfg = ShapesConfig(held_out=(("red", "large"),))
    probes = ProbeSet.build(cfg.spec, 2, 0, cells=["red-large", "blue-small"])
    tracker = Tracker(cfg.spec, None, [AnalyticReadout(cfg)], probes, tmp_path)
    clean = renders(cfg, "test", per_cell=1).images[[cfg.spec.cells.index((0, 0))] * 2 + [3] * 2]
    images = torch.cat([torch.full((2, 3, 32, 32), 0.9), clean[2:]])  # red-large probes blank
    rows = tracker.rows(images, step=7)
    assert [r["found"] for r in rows] == [False, False, True, True]
    assert all(r["p"]["color"] == r["p"]["size"] == 0.5 for r in rows[:2])
    append_rows(tracker.rows_path, rows)
    old = {k: v for k, v in rows[0].items() if k != "found"}  # a row from before the field existed
    (tracker.rows_path.parent / "old.jsonl").write_text(json.dumps(old) + "\n")
    assert read_rows(tracker.rows_path) == rows
    assert read_rows(tracker.rows_path.parent / "old.jsonl")[0]["found"] is True
    live = held_out_summary(rows, cfg.spec)  # the held-out red-large probes are the blank ones
    assert live["heldout/red-large/acc_color"] == live["heldout/red-large/acc_joint"] == 0.0


def test_analytic_tolerates_pixel_noise_of_imperfect_samples():
    cfg = ShapesConfig(sep_col=0.1, sep_size=0.2)
    batch = renders(cfg, "test")
    noisy = batch.images + 0.1 * torch.randn(batch.images.shape, generator=torch.Generator().manual_seed(1))
    assert (accuracy(AnalyticReadout(cfg).read(noisy)["p"], batch.cells) >= 0.99).all()


def test_analytic_rejects_shape_concept_and_non_circles():
    with pytest.raises(UserError, match="shape.*learned readout"):
        AnalyticReadout(ShapesConfig(concepts=("color", "shape"), held_out=(("blue", "square"),)))
    with pytest.raises(UserError, match="data.shape got 'square'; allowed: 'circle'"):
        AnalyticReadout(ShapesConfig(shape="square"))


# ---- learned readout (one short training run through the CLI verb, shared by the tests below) --------------
@pytest.fixture(scope="module")
def probe_run(tmp_path_factory):
    from conceptspace.cli import main

    run_dir = tmp_path_factory.mktemp("probe") / "run"
    code = main(["train-probe", "device=cpu", "probe.steps=200", "probe.channels=[8,16,32]", "probe.log_every=0",
                 "probe.eval.per_cell=16", "probe.eval.sep_col=[0.2,0.8]", "probe.eval.sep_size=[0.4]",
                 f"hydra.run.dir={run_dir}"])
    return code, run_dir


def test_train_probe_verb_saves_probe_and_metrics(probe_run):
    code, run_dir = probe_run
    assert code == 0
    assert (run_dir / "probe" / "config.json").is_file()
    assert (run_dir / "probe" / "diffusion_pytorch_model.safetensors").is_file()
    metrics = json.loads((run_dir / "probe_metrics.json").read_text())
    assert metrics["concepts"] == ["color", "size"] and len(metrics["validation"]) == 2
    assert metrics["passed"] and min(metrics["min_accuracy"].values()) >= 0.99


def test_learned_probe_classifies_clean_renders_of_every_cell(probe_run):
    readout = build_readout("learned", ShapesConfig(), path=str(probe_run[1] / "probe"))
    assert readout.name == "learned" and readout.spec.names == ["color", "size"]
    for sep_col in (0.1, 0.2, 0.4, 0.8):
        for sep_size in (0.2, 0.4):
            batch = renders(ShapesConfig(sep_col=sep_col, sep_size=sep_size), "test", per_cell=64, seed=7)
            acc = accuracy(readout.read(batch.images)["p"], batch.cells)
            assert (acc >= 0.99).all(), (sep_col, sep_size, acc)


def test_learned_and_analytic_readouts_agree(probe_run):
    cfg = ShapesConfig(sep_col=0.3, sep_size=0.3)
    learned = build_readout("learned", cfg, path=probe_run[1] / "probe")
    analytic = build_readout("analytic", cfg)
    for split in ("test", "train"):
        images = renders(cfg, split, per_cell=64, seed=3).images
        agree = ((learned.read(images)["p"] > 0.5) == (analytic.read(images)["p"] > 0.5)).float().mean(0)
        assert (agree >= 0.98).all(), (split, agree)


def test_train_probe_on_celeba_trains_the_attribute_classifier(tmp_path):
    pytest.importorskip("celeba.source")
    from conceptspace.cli import main
    from tests.celeba_fake import build_tree

    root = build_tree(tmp_path / "tree", "torchvision")
    run_dir = tmp_path / "run"
    code = main(["train-probe", "data=celeba", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}",
                 "data.image_size=16", "device=cpu", "probe.steps=3", "probe.channels=[8]", "probe.log_every=0",
                 f"hydra.run.dir={run_dir}"])
    assert code == 0
    metrics = json.loads((run_dir / "probe_metrics.json").read_text())
    assert metrics["source"] == "celeba" and metrics["validation"][0]["settings"] == {"split": "valid"}
    from conceptspace.readout import LearnedReadout

    spec = LearnedReadout(run_dir / "probe").spec
    readout = build_readout("learned", spec, path=run_dir / "probe")
    out = readout.read(torch.rand(5, 3, 16, 16))
    assert out["p"].shape == (5, len(metrics["concepts"])) and readout.spec.names == metrics["concepts"]


def test_save_load_round_trip_is_exact(tmp_path):
    from conceptspace.readout import ConceptClassifier, LearnedReadout

    spec = ShapesConfig(**CUBE).spec
    model = ConceptClassifier(spec=spec.to_dict(), channels=[8, 16]).eval()
    model.save_pretrained(tmp_path / "p")
    images = torch.rand(16, 3, 32, 32)
    readout = LearnedReadout(tmp_path / "p")
    with torch.no_grad():
        expected = model.probabilities(images)
    out = readout.read(images)
    assert torch.equal(out["p"], expected) and torch.equal(out["coords"], expected)
    assert out["found"].dtype == torch.bool and out["found"].all() and out["found"].shape == (16,)
    assert readout.spec == spec and out["p"].shape == (16, 3)
    assert sum(p.numel() for p in ConceptClassifier(spec=spec.to_dict()).parameters()) == pytest.approx(0.23e6,
                                                                                                         rel=0.1)


# ---- errors --------------------------------------------------------------------------------------------------
def test_build_readout_errors(tmp_path, probe_run):
    cfg = ShapesConfig()
    with pytest.raises(UserError, match=r"readout: got 'magic'; allowed: \['analytic', 'learned'\]"):
        build_readout("magic", cfg)
    with pytest.raises(UserError, match="needs a probe path"):
        build_readout("learned", cfg)
    with pytest.raises(UserError, match="not a saved probe"):
        build_readout("learned", cfg, path=str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="shapes generator config"):
        build_readout("analytic", cfg.spec)
    with pytest.raises(UserError, match="train a probe on this data config"):
        build_readout("learned", ShapesConfig(**CUBE), path=probe_run[1] / "probe")
    with pytest.raises(UserError, match="images: got"):
        build_readout("analytic", cfg).read(torch.rand(2, 1, 32, 32))


@pytest.mark.parametrize("override, message", [
    ("probe.steps=0", "probe.steps: got 0; allowed: an integer >= 1"),
    ("probe.lr=-1", "probe.lr: got -1; allowed: a number > 0"),
    ("probe.channels=[6,8]", "probe.channels: got [6, 8]; allowed: 1 to 6 positive integers"),
    ("probe.ranges.sep_col=[0.5,0.9]", "probe.ranges.sep_col: got 0.9; allowed: a number in (0.0, 0.8]"),
    ("probe.ranges.sep_size=[0.4,0.1]", "probe.ranges.sep_size: got [0.4, 0.1]; allowed: [low, high]"),
    ("probe.eval.sep_col=[]", "probe.eval.sep_col: got []; allowed: a non-empty list"),
    ("probe.subdir=../x", "probe.subdir: got '../x'"),
    ("probe.grad_clip=0", "probe.grad_clip: got 0; allowed: null (off) or a number > 0"),
])
def test_train_probe_bad_settings_are_one_line_and_write_nothing(run_cli, tmp_path, override, message):
    assert_one_line_error(run_cli, "train-probe", override, message, tmp_path)


def test_probability_is_monotone_and_centred():
    from conceptspace.readout import probability

    coords = torch.linspace(-1, 2, 31)
    p = probability(coords)
    assert (p.diff() > 0).all() and probability(torch.tensor(0.5)) == 0.5
    assert math.isclose(probability(torch.tensor(0.0)).item(), 1 / (1 + math.exp(5)), rel_tol=1e-5)
