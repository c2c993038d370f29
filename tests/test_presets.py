"""Every experiment preset: composes, validates every job of its multirun (dry run: nothing written),
builds its model, and takes one training step at a tiny override (paper_setup.md §4.4, §5.1, §1.5, §7)."""

import pytest

from conceptspace.config import compose, group_options
from conceptspace.train import train
from tests.celeba_fake import build_tree

PRESETS = group_options("experiment")
PAPER = ["paper/col_sweep", "paper/size_sweep", "paper/detailed", "paper/hidden_capability", "paper/2x2x2",
         "paper/celeba_male_smiling", "paper/celeba_male_hat"]
TINY = ["logger=none", "device=cpu", "train.steps=1", "train.batch_size=2", "train.snapshots.count=1",
        "train.snapshots.start=1", "train.snapshots.segments=null", "tracker.enabled=false", "data.per_cell=4",
        "model.block_out_channels=[8,16,16]", "model.norm_num_groups=4", "model.attention_head_dim=4",
        "model.layers_per_block=1"]


def test_the_papers_runs_and_their_ddpm_twins_exist():
    assert set(PAPER) <= set(PRESETS)
    assert {"ddpm/col_sweep", "ddpm/size_sweep", "ddpm/grid", "ddpm/hidden_capability", "ddpm/2x2x2"} <= set(PRESETS)


def test_paper_presets_are_the_papers_formulation():
    for name in PAPER:
        cfg = compose([f"experiment={name}"])
        assert (cfg.diffusion.name, cfg.model.structure, cfg.train.lr, cfg.train.grad_clip, cfg.train.precision,
                cfg.train.batch_size) == ("vdm", "paper", 1e-3, 0.01, "fp32", 64), name
        if cfg.data.source == "shapes":
            assert cfg.data.train_fraction == 0.85 and cfg.train.weight_decay == 0.01
        else:
            assert (cfg.model.concept_conditioning, cfg.model.init_scale, cfg.model.norm_num_groups,
                    cfg.train.weight_decay, cfg.data.resize, cfg.data.jitter) == \
                   ("common_zerolinear", 0.02, 4, 1e-5, "squash", 0.1)
    hc = compose(["experiment=paper/hidden_capability"])
    assert hc.model.concept_conditioning == "common_linear" and hc.train.steps == 15000


def test_multirun_presets_expand_to_the_papers_grids():
    from conceptspace.dryrun import expand_jobs

    counts = {name: len(expand_jobs([f"experiment={name}"])) for name in
              ("paper/col_sweep", "paper/size_sweep", "paper/detailed", "paper/2x2x2", "paper/hidden_capability",
               "ddpm/col_sweep", "ddpm/grid")}
    assert counts == {"paper/col_sweep": 100, "paper/size_sweep": 100, "paper/detailed": 245, "paper/2x2x2": 40,
                      "paper/hidden_capability": 30, "ddpm/col_sweep": 100, "ddpm/grid": 80}
    assert len(expand_jobs(["experiment=paper/col_sweep", "seed=0,1"])) == 40  # the command line wins


@pytest.mark.parametrize("name, jobs", [("paper/2x2x2", 40), ("paper/hidden_capability", 30)])
def test_multirun_presets_validate_every_job_without_writing(run_cli, tmp_path, monkeypatch, name, jobs):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("train", "-m", f"experiment={name}", *TINY[:1], "--dry-run")
    assert code == 0, err
    assert f"dry run: {jobs} jobs validated, nothing written" in out and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_trains_one_step_at_a_tiny_override(tmp_path, name):
    extra = []
    if "celeba" in name:
        root = build_tree(tmp_path / "celeba")
        extra = [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.image_size=16"]
        if not name.startswith("paper/"):  # celeba64: four levels
            extra.append("model.block_out_channels=[8,16,16,16]")
    elif name == "underspecification":
        extra = ["tracker.readouts=[analytic]"]  # the learned readout needs a trained probe; the tracker is off
    cfg = compose([f"experiment={name}", *TINY, *extra])
    from conceptspace.validate import validate

    validate("train", cfg)
    train(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "status.json").read_text().count('"done"') == 1


def test_old_sweep_names_still_work_with_one_line(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("train", "-m", "experiment=sweep/color", "seed=0", "--dry-run")
    assert code == 0 and "experiment=sweep/* is now ddpm/*" in err and err.count("\n") == 1
    assert "20 jobs validated" in out


def test_laptop_presets_pin_their_precision_and_expand_to_the_claims_seeds():
    """The committed laptop results (docs/results/laptop/) stay valid whatever `precision: auto` becomes; F1
    needs >= 2 Δsize x >= 3 Δcolor x >= 3 seeds, F3 >= 5 seeds; the demo is F3's condition on seed 0."""
    from conceptspace.dryrun import expand_jobs

    for name in ("laptop", "laptop/grid", "laptop/hidden_capability", "demo"):
        assert compose([f"experiment={name}"]).train.precision == "fp32", name
    grid = [dict(o.split("=", 1) for o in job if "=" in o) for job in expand_jobs(["experiment=laptop/grid"])]
    assert len({j["data.sep_col"] for j in grid}) >= 3 and len({j["data.sep_size"] for j in grid}) >= 2
    assert len({j["seed"] for j in grid}) >= 3
    assert len(expand_jobs(["experiment=laptop/hidden_capability"])) >= 5
    demo, f3 = compose(["experiment=demo"]), compose(["experiment=laptop/hidden_capability"])
    assert demo.data == f3.data and demo.train == f3.train and demo.model == f3.model and demo.seed == 0
