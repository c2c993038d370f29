"""Two CPU processes under gloo take the same steps as one process with the same global batch."""

import os
import subprocess
import sys

import torch

from conceptspace.train import train
from tests.helpers import FAST, fast_cfg

OVERRIDES = ["train.cfg_dropout=0.3", "train.ema.enabled=true"]


def torchrun(run_dir, steps):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           "-m", "conceptspace.cli", "train", *FAST, *OVERRIDES, f"train.steps={steps}", "train.snapshots.count=1",
           "train.checkpoint_every=2", "tracker.enabled=false", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def weights(run_dir):
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"]


def assert_close(a, b, lr=1e-4, steps=8):
    """Equal up to float reduction order: 2 ranks average gradients in another order than one process sums
    them. Adam turns that into update differences of up to lr per step on elements whose gradient is ~0, so
    a few elements may differ by O(lr); a wrong shard or missing all-reduce moves nearly every element."""
    for k in a:
        diff = (a[k] - b[k]).abs()
        assert diff.max() <= steps * lr, (k, diff.max().item())
        assert (diff > 1e-5).float().mean() < 1e-3, (k, (diff > 1e-5).float().mean().item())


def test_two_gloo_ranks_equal_one_process_and_resume_across_world_sizes(tmp_path):
    torchrun(tmp_path / "ddp", steps=4)
    train(fast_cfg(*OVERRIDES, steps=4, snapshots=1, checkpoint_every=2), tmp_path / "single")
    assert_close(weights(tmp_path / "ddp"), weights(tmp_path / "single"))
    assert (tmp_path / "ddp" / "status.json").exists() and (tmp_path / "ddp" / "metrics.jsonl").exists()

    # the 2-rank run, resumed in one process for 4 more steps, equals 8 uninterrupted single-process steps
    train(fast_cfg(*OVERRIDES, steps=8, snapshots=1, checkpoint_every=2), tmp_path / "ddp")
    train(fast_cfg(*OVERRIDES, steps=8, snapshots=1, checkpoint_every=2), tmp_path / "single8")
    assert_close(weights(tmp_path / "ddp"), weights(tmp_path / "single8"))
