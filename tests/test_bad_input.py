"""Bad input to every verb: one line naming the field, exit 2, nothing written; --help exits 0."""

import pytest

VERBS = ["render", "train", "train-probe", "track", "elicit", "report", "aggregate"]


@pytest.mark.parametrize("override, field", [
    ("model.block_out_channels=[16,32]", "model.down_block_types"),
    ("model.norm_num_groups=5", "model.norm_num_groups"),
    ("model.down_block_types=[DownBlock2D,CrossAttnDownBlock2D,DownBlock2D]", "model.down_block_types"),
    ("model.layers_per_block=0", "model.layers_per_block"),
    ("model.dropout=1.5", "model.dropout"),
    ("data.image_size=30", "data.image_size"),
    ("train.snapshots.segments=[{count:3,start:10,stop:50}]", "train.snapshots.segments[0]"),
    ("train.precision=fp16", "'bf16_fp32_input']"),  # the field's allowed values, named in full
])
def test_bad_model_and_schedule_settings_write_nothing(run_cli, tmp_path, override, field):
    out = tmp_path / "run"
    code, _, err = run_cli("train", override, "logger=none", f"hydra.run.dir={out}")
    assert code == 2 and field in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("verb", ["track", "elicit", "report", "aggregate"])
def test_run_dir_verbs_without_their_argument_give_one_line(run_cli, verb):
    code, out, err = run_cli(verb)
    assert code == 2 and err.count("\n") == 1 and "usage:" not in out


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_answers_help(run_cli, verb):
    code, out, err = run_cli(verb, "--help")
    assert code == 0 and out.strip() and "error" not in err


def test_dry_run_validates_every_job_of_a_multirun_and_writes_nothing(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Hydra would write multirun/ and outputs/ here
    code, out, err = run_cli("train", "-m", "experiment=sweep/color", "seed=0,1", "model=tiny", "--dry-run")
    assert code == 0, err
    assert "dry run: 40 jobs validated, nothing written" in out and out.count("ok") == 40  # 20 Δcolor x 2 seeds
    code, out, err = run_cli("train", "-m", "experiment=sweep/color", "seed=0,1", "model=tiny", "--dry-run",
                             "hydra/launcher=ensemble", "hydra.launcher.members=16")
    assert code == 0 and "ensemble launcher: 40 jobs -> 3 ensembles of 16+16+8 members (1 distinct shape)" in out
    code, _, err = run_cli("train", "-m", "data.sep_col=0.2,1.7", "--dry-run")
    assert code == 2 and "job 1" in err and "sep_col" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
