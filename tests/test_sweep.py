"""A tiny 2 Δ x 2 seed sweep through Hydra multirun (basic and submitit-local launchers), then aggregate."""

import csv
import os
import subprocess
import sys

from tests.helpers import FAST

TINY = [*FAST, "data.image_size=32", "train.steps=4", "train.snapshots.count=2", "train.checkpoint_every=4"]


def multirun(tmp_path, *extra):
    cmd = [sys.executable, "-m", "conceptspace.cli", "train", "-m", "name=tinysweep", *TINY, *extra,
           f"hydra.sweep.dir={tmp_path}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path.parent,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def aggregate_rows(run_cli, sweep_dir):
    code, _, err = run_cli("aggregate", str(sweep_dir))
    assert code == 0, err
    with open(sweep_dir / "aggregate" / "runs.csv") as f:
        return list(csv.DictReader(f))


def test_multirun_sweep_then_aggregate(run_cli, tmp_path):
    multirun(tmp_path / "sweep", "data.sep_col=0.3,0.6", "seed=0,1")
    rows = aggregate_rows(run_cli, tmp_path / "sweep")
    assert len(rows) == 4
    assert {(r["sep_col"], r["seed"]) for r in rows} == {(c, s) for c in ("0.3", "0.6") for s in ("0", "1")}
    assert all(r["state"] == "done" for r in rows)
    out = tmp_path / "sweep" / "aggregate"
    figures = [p for p in out.iterdir() if p.suffix == ".png"]
    assert figures and all(p.stat().st_size > 0 for p in figures)
    assert (out / "sweep.html").stat().st_size > 0


def test_submitit_local_launcher(run_cli, tmp_path):
    multirun(tmp_path / "sweep", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "seed=0,1")
    rows = aggregate_rows(run_cli, tmp_path / "sweep")
    assert sorted(r["seed"] for r in rows) == ["0", "1"]
