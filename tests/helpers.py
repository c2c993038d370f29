"""Small shared test settings: a tiny, fast run on 2 CPU cores."""

FAST = ["logger=none", "data.image_size=16", "data.per_cell=16", "train.batch_size=8", "train.log_every=2",
        "train.snapshots.start=2", "diffusion.sample_steps=4", "tracker.n_probes=2"]


def fast_cfg(*overrides, steps=6, snapshots=2, checkpoint_every=3, tracker=False):
    from conceptspace.config import compose

    return compose([*FAST, f"train.steps={steps}", f"train.snapshots.count={snapshots}",
                    f"train.checkpoint_every={checkpoint_every}", f"tracker.enabled={str(tracker).lower()}",
                    *overrides])


def assert_one_line_error(run_cli, verb, override, message, tmp_path):
    """Bad input: exit 2, one stderr line containing `message`, no traceback, no run dir written."""
    code, _, err = run_cli(verb, override, f"hydra.run.dir={tmp_path}/r")
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "r").exists()
