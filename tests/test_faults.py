"""Fault injection: a run killed at every write point and rerun after each kill ends byte-equal to an
uninterrupted one, with nothing temporary left; readers skip what a kill left half-written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conceptspace import checkpoint as ckpt
from conceptspace import faults
from tests.fault_driver import CHAIN, VDM_CHAIN

TIMING = ("steps_per_s",)  # wall-clock figures: the only metrics that may differ between two runs


def drive(formulation: str, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    env.pop(faults.VARIABLE, None)
    done = subprocess.run([sys.executable, "-m", "tests.fault_driver", formulation, str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def files(run_dir: Path) -> dict[str, bytes]:
    skip = {"provenance.json", "checkpoint.pt", "metrics.jsonl"}  # compared below by content
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name not in skip}


def metrics(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_state(a: dict, b: dict, path="") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same_state(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


@pytest.mark.parametrize("formulation", ["ddpm", "vdm"])
def test_a_kill_at_every_write_point_then_rerun_equals_an_uninterrupted_run(formulation, tmp_path):
    assert {p for p, _ in CHAIN} == set(faults.POINTS) - {"output.before_rename"}  # every training write
    assert {p for p, _ in VDM_CHAIN} >= {"snapshot.after_weights", "checkpoint.before_rename", "truncate.before_rename"}
    codes = drive(formulation, tmp_path)
    kills = {k: v for k, v in codes.items() if k not in ("straight", "final")}
    assert codes["straight"] == codes["final"] == 0
    assert all(v == faults.EXIT_CODE for v in kills.values()), kills  # each point was reached, and killed
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert not [p for p in killed.rglob("*") if ckpt.is_temporary(p)]  # nothing temporary left
    assert files(straight) == files(killed)  # snapshots, rows.jsonl, probe grids, config: byte for byte
    assert metrics(straight) == metrics(killed)
    a, b = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (straight, killed))
    assert_same_state(a, b)  # weights, AdamW state, EMA, learned schedule, RNG
    assert len(ckpt.list_snapshots(killed)) == 3
    if formulation == "vdm":
        assert (killed / "snapshots" / "step_000010" / "vdm_schedule.json").is_file()


def test_elicit_report_and_sample_killed_at_their_writes_then_rerun_equal_one_uninterrupted_call(tmp_path):
    from tests.fault_driver import VERBS

    assert {p for _, points in VERBS.values() for p, _ in points} == {"rows.mid_append", "output.before_rename"}
    codes = drive("verbs", tmp_path)
    assert all(v == 0 for k, v in codes.items() if k == "train" or k.endswith((":straight", ":final"))), codes
    assert all(v == faults.EXIT_CODE for k, v in codes.items() if "@" in k), codes  # every kill landed
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert not [p for p in killed.rglob("*") if ckpt.is_temporary(p)]
    a, b = files(straight), files(killed)
    rows = "tracker/rows.jsonl"  # elicit's rows: the same set (a rerun may append them in another order)
    assert sorted(a.pop(rows).splitlines()) == sorted(b.pop(rows).splitlines())
    assert a.keys() == b.keys()  # every grid, figure, table, page and sample strip is there...
    assert a == b  # ...and equal to the uninterrupted call's
