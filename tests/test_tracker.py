import json

import pytest

from conceptspace.config import compose, group_options
from conceptspace.errors import UserError
from conceptspace.tracker.probes import ProbeSet
from conceptspace.tracker.rows import read_rows
from conceptspace.train import train
from conceptspace.validate import validate
from synthetic_shapes import ShapesConfig
from tests.helpers import fast_cfg


def test_probe_seeds_are_fixed_per_cell_and_independent_of_the_cells_chosen():
    spec = ShapesConfig().spec
    everything = ProbeSet.build(spec, 3, 100)
    only_heldout = ProbeSet.build(spec, 3, 100, cells=["blue-small"])
    assert len(set(everything.seeds)) == 12
    assert only_heldout.seeds == [p.seed for p in everything.probes if p.cell == (1, 1)]
    assert (only_heldout.vectors() == spec.encode(["blue-small"] * 3)).all()


def test_probe_i_of_a_cell_has_the_same_seed_whatever_the_probe_count():
    spec = ShapesConfig().spec
    few, many = ProbeSet.build(spec, 4, 100), ProbeSet.build(spec, 64, 100)
    for cell in spec.cells:
        seeds_few = [p.seed for p in few.probes if p.cell == cell]
        seeds_many = [p.seed for p in many.probes if p.cell == cell]
        assert seeds_many[:4] == seeds_few and len(set(seeds_many)) == 64
    assert len(set(many.seeds)) == len(many.seeds)
    assert ProbeSet.build(spec, 1, 100, cells=["blue-small"]).seeds == [100 + 3 * 1_000_000]
    # other streams (the null control's fresh seeds): disjoint from the tracker's and from each other
    streams = [set(ProbeSet.build(spec, 64, 100, stream=k).seeds) for k in range(4)]
    assert sum(map(len, streams)) == len(set().union(*streams))
    kept = many.select(lambda p: p.index >= 60 and p.cell == (1, 1))
    assert [p.index for p in kept.probes] == [60, 61, 62, 63]
    assert kept.seeds == [p.seed for p in many.probes if p.cell == (1, 1)][60:]
    with pytest.raises(UserError, match="n_probes: got 0"):
        ProbeSet.build(spec, 0, 100)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "bf16_fp32_input"])
def test_callback_and_offline_tracking_give_identical_rows(run_cli, tmp_path, precision):
    """The same snapshot gives the same rows live and offline, in either precision (the offline tracker reads
    the run's precision from its config)."""
    train(fast_cfg("data.image_size=32", f"train.precision={precision}", steps=4, snapshots=2, tracker=True),
          tmp_path)
    live = read_rows(tmp_path / "tracker" / "rows.jsonl")
    assert {r["step"] for r in live} == {2, 4} and len(live) == 2 * 4 * 2  # steps x cells x probes
    assert {r["cell"] for r in live if r["held_out"]} == {"blue-small"}
    code, _, _ = run_cli("track", str(tmp_path), "--rows", "offline.jsonl")
    assert code == 0
    assert read_rows(tmp_path / "tracker" / "offline.jsonl") == live
    assert (tmp_path / "tracker" / "samples" / "step_000004.png").exists()


def test_track_skips_snapshots_already_tracked(run_cli, tmp_path):
    train(fast_cfg("data.image_size=32", steps=2, snapshots=1, tracker=True), tmp_path)
    before = (tmp_path / "tracker" / "rows.jsonl").read_text()
    code, out, _ = run_cli("track", str(tmp_path))
    assert code == 0 and "0 snapshots tracked" in out
    assert (tmp_path / "tracker" / "rows.jsonl").read_text() == before


def test_track_bad_input(run_cli, tmp_path):
    code, _, err = run_cli("track", str(tmp_path / "missing"))
    assert code == 2 and "has no config.yaml" in err
    code, _, err = run_cli("track", str(tmp_path), "--weights", "best")
    assert code == 2 and "invalid choice" in err and err.count("\n") == 1


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_every_experiment_preset_composes(experiment):
    cfg = compose([f"experiment={experiment}"])
    assert cfg.name and cfg.train.steps >= 1
    if cfg.data.source == "shapes":  # a learned readout needs a trained probe on disk: validated elsewhere
        validate("train", compose([f"experiment={experiment}", "tracker.enabled=false"])
                 if "learned" in cfg.tracker.readouts else cfg)


def test_sweep_presets_define_the_papers_grids():
    cfg = compose(["experiment=sweep/color"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert len(params["data.sep_col"].split(",")) == 20 and params["seed"] == "0,1,2,3,4"


def test_bad_experiment_override():
    with pytest.raises(UserError, match="experiment: unknown option 'nope'; allowed: .*demo"):
        compose(["experiment=nope"])


def test_run_dir_files(tmp_path):
    train(fast_cfg(steps=2, snapshots=1), tmp_path)
    assert json.loads((tmp_path / "concept_spec.json").read_text())["held_out"] == ["blue-small"]
    assert "sep_col: 0.4" in (tmp_path / "config.yaml").read_text()


def test_a_presets_default_probe_path_is_where_the_documented_train_probe_command_saves(run_cli, tmp_path,
                                                                                         monkeypatch):
    monkeypatch.delenv("CONCEPTSPACE_SHAPE_PROBE", raising=False)
    cfg = compose(["experiment=underspecification"])
    code, _, err = run_cli("train-probe", "data.concepts=[color,shape]", "data.shape_values=[circle,triangle]",
                           "data.held_out=[[blue,triangle]]", "probe.steps=2", "probe.eval.per_cell=2",
                           "probe.eval.min_accuracy=0", f"hydra.run.dir={tmp_path}/probes/color_shape")
    assert code == 0, err
    assert (tmp_path / cfg.tracker.probe_path / "config.json").exists()
