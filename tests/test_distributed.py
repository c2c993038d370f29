"""Two CPU processes under gloo take the same steps as one process with the same global batch."""

import os
import socket
import subprocess
import sys

import torch

from conceptspace.train import train
from tests.helpers import FAST, fast_cfg

OVERRIDES = ["train.cfg_dropout=0.3", "train.ema.enabled=true"]
VDM = ["diffusion=vdm", "train.lr=1e-3"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(run_dir, steps, overrides):
    """Train on 2 gloo ranks; returns torchrun's output, which must show that 2 ranks trained."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           "-m", "conceptspace.cli", "train", *FAST, *overrides, f"train.steps={steps}", "train.snapshots.count=1",
           "train.checkpoint_every=2", "tracker.enabled=false", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout + done.stderr
    assert "ranks 2" in out, out[-2000:]  # rank 0's "model: ... ranks N" line: not 2 single-process runs
    return out


def state(run_dir):
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)


def weights(run_dir):
    return state(run_dir)["model"]


def assert_close(a, b, lr=1e-4, steps=8):
    """Equal up to float reduction order: 2 ranks average gradients in another order than one process sums
    them. Adam turns that into update differences of up to lr per step on elements whose gradient is ~0, so
    a few elements may differ by O(lr); a wrong shard or missing all-reduce moves nearly every element."""
    for k in a:
        diff = (a[k] - b[k]).abs()
        assert diff.max() <= steps * lr, (k, diff.max().item())
        assert (diff > 1e-5).float().mean() < 1e-3, (k, (diff > 1e-5).float().mean().item())


def test_two_gloo_ranks_equal_one_process_average_the_vdm_schedule_and_resume_across_world_sizes(tmp_path):
    """One 2-rank run (VDM, CFG dropout, EMA) against one process with the same global batch.

    The schedule's b and w are not DDP's: distributed.average_gradients must all-reduce them. Each rank's
    shard holds other timesteps (half the antithetic grid), so an unaveraged rank-0 gradient moves b and w
    differently from the global batch's (Adam's sign-like first steps keep that small: w moves ~1e-4 off),
    while the reduction order alone moves them by float rounding only: hence 1e-5, not the weights' steps x lr."""
    overrides = [*VDM, *OVERRIDES]
    torchrun(tmp_path / "ddp", 4, overrides)
    train(fast_cfg(*overrides, steps=4, snapshots=1, checkpoint_every=2), tmp_path / "single")
    ddp, single = state(tmp_path / "ddp"), state(tmp_path / "single")
    for k in ("b", "w"):
        assert single["process"][k].item() != {"b": -5.0, "w": 15.0}[k]  # the schedule did train
        assert (ddp["process"][k] - single["process"][k]).abs() <= 1e-5, k
    assert_close(ddp["model"], single["model"], lr=1e-3, steps=4)
    assert (tmp_path / "ddp" / "status.json").exists() and (tmp_path / "ddp" / "metrics.jsonl").exists()

    # the 2-rank run, resumed in one process for 4 more steps, equals 8 uninterrupted single-process steps
    train(fast_cfg(*overrides, steps=8, snapshots=1, checkpoint_every=2), tmp_path / "ddp")
    train(fast_cfg(*overrides, steps=8, snapshots=1, checkpoint_every=2), tmp_path / "single8")
    assert_close(weights(tmp_path / "ddp"), weights(tmp_path / "single8"), lr=1e-3)
