"""Small shared test settings: a tiny, fast run on 2 CPU cores."""

FAST = ["logger=none", "data.image_size=16", "data.per_cell=16", "train.batch_size=8", "train.log_every=2",
        "train.snapshots.start=2", "diffusion.sample_steps=4", "tracker.n_probes=2",
        "train.precision=fp32"]  # the suite's exact-value tests are fp32; bf16 has its own, parametrised


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


def final_state(run_dir):
    import torch

    return torch.load(run_dir / "checkpoint.pt", weights_only=False)


def straight_and_resumed(cfg, tmp_path, monkeypatch, kill_at: int):
    """Train `cfg` once uninterrupted and once killed before step `kill_at` then rerun (= resume).
    Returns both final checkpoints."""
    import pytest

    import conceptspace.member as member_module
    import conceptspace.train as train_module

    train_module.train(cfg, tmp_path / "straight")
    real = member_module.step_generator

    def killed(seed, step, device):
        if step == kill_at:
            raise KeyboardInterrupt
        return real(seed, step, device)

    monkeypatch.setattr(member_module, "step_generator", killed)
    with pytest.raises(KeyboardInterrupt):
        train_module.train(cfg, tmp_path / "resumed")
    killed_at = final_state(tmp_path / "resumed")["step"]
    monkeypatch.setattr(member_module, "step_generator", real)
    train_module.train(cfg, tmp_path / "resumed")  # the same call again = resume
    return final_state(tmp_path / "straight"), final_state(tmp_path / "resumed"), killed_at
