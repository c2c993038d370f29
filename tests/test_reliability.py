"""Run dirs that survive anything: half-written snapshots are not steps, leftovers of dead writers go, a
full disk is one line, checkpoints load with weights_only and bad ones are one line, corrupt snapshots are
named, snapshots.keep bounds the disk, provenance is recorded and keeps code versions apart."""

import errno
import json
import shutil
import subprocess

import pytest
import torch
from omegaconf import OmegaConf

from conceptspace import checkpoint as ckpt
from conceptspace import disk, provenance
from conceptspace.errors import UserError
from conceptspace.model import ConceptUNet
from conceptspace.train import train
from tests.helpers import FAST, fast_cfg

RUN = ["train.steps=6", "train.snapshots.count=2", "train.checkpoint_every=3", "tracker.enabled=true"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run with tracker rows and two snapshots (steps 2 and 6)."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    train(fast_cfg(steps=6, snapshots=2, checkpoint_every=3, tracker=True), run_dir)
    return run_dir


@pytest.fixture
def run_copy(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def one_line(err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(n in lines[0] for n in needles), (needles, lines[0])


def test_half_written_snapshots_are_not_steps_for_any_reader(run_copy, run_cli):
    snaps = run_copy / "snapshots"
    before = ckpt.list_snapshots(run_copy)
    torn = snaps / f"step_000003.tmp{dead_pid()}"  # killed after config.json
    torn.mkdir()
    shutil.copy(snaps / "step_000002" / "config.json", torn / "config.json")
    (snaps / "step_000004.tmp").mkdir()  # an older version's temporary name
    shutil.copy(snaps / "step_000002" / "config.json", snaps / "step_000004.tmp" / "config.json")
    (snaps / "step_000005").mkdir()  # config without weights
    shutil.copy(snaps / "step_000002" / "config.json", snaps / "step_000005" / "config.json")
    assert ckpt.list_snapshots(run_copy) == before == [(2, snaps / "step_000002"), (6, snaps / "step_000006")]
    assert run_cli("track", str(run_copy), "--rows", "offline.jsonl")[0] == 0
    assert run_cli("report", str(run_copy))[0] == 0
    assert run_cli("sample", str(run_copy), "small blue", "--n", "2")[0] == 0


def test_leftovers_of_dead_writers_go_on_the_next_start_and_a_live_writers_stay(run_copy):
    dead, live = dead_pid(), subprocess.Popen(["sleep", "30"])
    try:
        leftovers = [run_copy / f"checkpoint.tmp{dead}.pt", run_copy / f"checkpoint.pt.tmp{dead}",
                     run_copy / "snapshots" / f"step_000002.tmp{dead}", run_copy / "tracker" / f"rows.tmp{dead}.jsonl"]
        for p in leftovers:
            p.mkdir() if "snapshots" in str(p) else p.write_bytes(b"partial")
        in_flight = run_copy / f"status.tmp{live.pid}.json"
        in_flight.write_text("{}")
        train(fast_cfg(steps=6, snapshots=2, checkpoint_every=3, tracker=True), run_copy)  # complete: recovers only
        assert not any(p.exists() for p in leftovers)
        assert in_flight.exists()  # another process may still be writing it
    finally:
        live.kill()


def test_no_space_stops_with_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    train(fast_cfg(steps=3, checkpoint_every=3), tmp_path)
    before = (tmp_path / "checkpoint.pt").read_bytes()

    def full_disk(obj, f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(UserError, match=r"no space left on the device while writing .*checkpoint\.pt; the previous"):
        train(fast_cfg(steps=6, checkpoint_every=3, snapshots=1), tmp_path)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert not [p for p in tmp_path.rglob("*") if ckpt.is_temporary(p)]
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "failed"


def test_no_space_inside_a_snapshot_write_names_the_snapshot_and_leaves_no_folder(tmp_path, monkeypatch):
    def full_disk(self, folder, **kwargs):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ConceptUNet, "save_pretrained", full_disk)
    with pytest.raises(UserError, match=r"no space left .*snapshots/step_000002"):
        train(fast_cfg(steps=4, snapshots=2), tmp_path)
    assert list((tmp_path / "snapshots").iterdir()) == []


class Payload:  # what a shared checkpoint could smuggle in: any pickled object runs code on load
    def __reduce__(self):
        return (print, ("this ran on load",))


@pytest.mark.parametrize("damage, needles", [
    ("pickle", ["checkpoint.pt: cannot be loaded safely", "remove it to restart"]),
    ("truncate", ["checkpoint.pt: cannot be loaded safely", "remove it to restart"]),
    ("model", ["checkpoint.pt: written under a different config", "remove the checkpoint"]),
])
def test_a_checkpoint_that_is_unsafe_truncated_or_from_another_model_is_one_line(run_copy, run_cli, damage, needles):
    path = run_copy / "checkpoint.pt"
    overrides = [*FAST, *RUN, "train.steps=9"]
    if damage == "pickle":
        state = torch.load(path, weights_only=True)
        state["extra"] = Payload()
        torch.save(state, path)
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        overrides.append("model.block_out_channels=[16,32,48]")
    code, out, err = run_cli("train", *overrides, f"hydra.run.dir={run_copy}")
    assert code == 2 and "this ran on load" not in out
    one_line(err, *needles)


def test_checkpoints_hold_only_what_weights_only_loading_allows(trained):
    state = torch.load(trained / "checkpoint.pt", weights_only=True)
    assert {"model", "optimizer", "rng", "step"} <= state.keys() and state["step"] == 6


@pytest.mark.parametrize("verb, damage", [("track", "weights"), ("elicit", "weights"), ("sample", "weights"),
                                          ("track", "config")])
def test_a_corrupted_snapshot_is_named_in_one_line_by_every_reader(run_copy, run_cli, damage, verb):
    snap = run_copy / "snapshots" / "step_000002"
    if damage == "weights":
        weights = snap / ckpt.WEIGHTS
        weights.write_bytes(weights.read_bytes()[:200])
    else:
        (snap / "config.json").write_text("{not json")
    shutil.rmtree(run_copy / "tracker")  # so every reader has to open the snapshot
    args = {"track": [], "elicit": ["n_probes=2", "methods=[naive]"], "sample": ["small blue", "--step", "2"]}[verb]
    code, _, err = run_cli(verb, str(run_copy), *args)
    assert code == 2
    one_line(err, f"snapshot {snap}: cannot be read", "remove that folder")


def test_snapshots_keep_tracked_and_none_keep_rows_for_every_snapshot(tmp_path):
    tracked = fast_cfg("train.snapshots.keep=tracked", "train.snapshots.keep_every=2", steps=12, snapshots=4,
                       tracker=True)
    train(tracked, tmp_path / "tracked")
    from conceptspace.tracker.rows import read_rows

    assert [s for s, _ in ckpt.list_snapshots(tmp_path / "tracked")] == [2, 7, 12]  # of 2, 4, 7, 12
    assert {r["step"] for r in read_rows(tmp_path / "tracked" / "tracker" / "rows.jsonl")} == {2, 4, 7, 12}
    none = fast_cfg("train.snapshots.keep=none", "train.snapshots.keep_steps=[4]", steps=12, snapshots=4,
                    tracker=True)
    train(none, tmp_path / "none")
    assert [s for s, _ in ckpt.list_snapshots(tmp_path / "none")] == [4]
    assert len(list((tmp_path / "none" / "tracker" / "samples").glob("*.png"))) == 4  # grids for every snapshot


@pytest.mark.parametrize("override, message", [
    ("train.snapshots.keep=some", "train.snapshots.keep: got 'some'; allowed: ['all', 'tracked', 'none']"),
    ("train.snapshots.keep_every=0", "train.snapshots.keep_every"),
    ("train.snapshots.keep_steps=[5]", "train.snapshots.keep_steps: [5] are not snapshot steps"),
])
def test_bad_keep_settings_are_one_line(run_cli, tmp_path, override, message):
    code, _, err = run_cli("train", *FAST, *RUN, override, f"hydra.run.dir={tmp_path}/r")
    assert code == 2
    one_line(err, message)
    assert not (tmp_path / "r").exists()


def test_the_disk_estimate_counts_kept_weights_and_warns_beyond_the_free_space(tmp_path, monkeypatch):
    cfg = fast_cfg(steps=100, snapshots=10)
    est = disk.estimate(cfg, 1_000_000, 4)
    assert est["parts"]["snapshots"] == 10 * (4_000_000 + 16_000) and est["parts"]["checkpoint"] == 12_000_000
    cfg.train.snapshots.keep = "none"
    assert disk.estimate(cfg, 1_000_000, 4)["parts"]["snapshots"] == 0
    monkeypatch.setattr(disk, "free_bytes", lambda folder: 10_000_000)
    line = disk.describe(est, tmp_path, jobs=100)
    assert "100 jobs: about" in line and "WARNING: more than the 10.0 MB free" in line
    assert "WARNING" not in disk.describe(disk.estimate(cfg, 10, 4), tmp_path)


def test_paper_sweep_presets_fit_100_paper_scale_runs_in_20_gb():
    from conceptspace.config import compose

    cfg = compose(["experiment=paper/col_sweep"])
    assert cfg.train.snapshots.keep == "none"
    assert 100 * disk.estimate(cfg, 10_620_000, 4)["bytes"] <= 20e9


def test_provenance_is_recorded_at_every_start_and_shown_in_the_report(run_copy, run_cli):
    sessions = provenance.read(run_copy)
    assert len(sessions) == 1
    assert {"code", "torch", "diffusers", "python", "device", "precision", "machine", "command"} <= sessions[0].keys()
    assert sessions[0]["torch"] == torch.__version__ and sessions[0]["precision"] == "fp32"
    train(fast_cfg(steps=6, snapshots=2, checkpoint_every=3, tracker=True), run_copy)  # a rerun adds a session
    assert len(provenance.read(run_copy)) == 2
    assert run_cli("report", str(run_copy))[0] == 0
    html = (run_copy / "report.html").read_text()
    assert "Provenance" in html and sessions[0]["code"] in html


def test_aggregate_keeps_runs_of_different_code_versions_apart_unless_allowed(trained, tmp_path, run_cli):
    for seed, code in ((0, "aaaa"), (1, "bbbb")):
        run = tmp_path / "sweep" / f"seed={seed}"
        shutil.copytree(trained, run)
        cfg = OmegaConf.load(run / "config.yaml")
        cfg.seed = seed
        OmegaConf.save(cfg, run / "config.yaml")
        (run / provenance.FILE).write_text(json.dumps([{"code": code}]))
    code, out, _ = run_cli("aggregate", str(tmp_path / "sweep"))
    assert code == 0 and "2 code versions (aaaa, bbbb)" in out and "keep them apart" in out
    assert len((tmp_path / "sweep" / "aggregate" / "conditions.csv").read_text().splitlines()) == 1 + 2
    code, out, _ = run_cli("aggregate", str(tmp_path / "sweep"), "--allow-mixed")
    assert code == 0 and "pooled (--allow-mixed)" in out
    assert len((tmp_path / "sweep" / "aggregate" / "conditions.csv").read_text().splitlines()) == 1 + 1


def test_fault_points_are_off_unless_asked_and_an_unknown_point_is_refused(monkeypatch):
    from conceptspace import faults

    monkeypatch.delenv(faults.VARIABLE, raising=False)
    faults.point("checkpoint.before_rename")  # no-op
    monkeypatch.setenv(faults.VARIABLE, "checkpoint.before_renam")
    with pytest.raises(ValueError, match="unknown point"):
        faults.point("checkpoint.before_rename")


def test_an_append_after_a_torn_line_keeps_every_new_line(tmp_path):
    """A kill mid-append leaves a line without its newline; without cutting it, the next append's first
    line is glued onto it and lost to every reader."""
    from conceptspace.tracker.rows import append_rows, read_rows

    path = tmp_path / "rows.jsonl"
    row = {"step": 1, "cell": "blue-small", "held_out": True, "probe": 0, "seed": 0, "readout": "analytic",
           "method": "naive", "setting": "", "p": {}, "coords": {}, "target": {}, "found": True}
    append_rows(path, [row])
    with open(path, "a") as f:
        f.write('{"step": 2, "cell": "blue-sm')  # torn by a kill
    append_rows(path, [{**row, "probe": 1}, {**row, "probe": 2}])
    assert [r["probe"] for r in read_rows(path)] == [0, 1, 2]
    assert path.read_text().endswith("\n") and path.read_text().count("\n") == 3


def test_archived_rows_read_from_gzip_when_the_plain_file_is_absent(tmp_path):
    """docs/results/ keeps runs as rows.jsonl.gz; every reader (report, aggregate) goes through read_rows."""
    import gzip

    from conceptspace.tracker.rows import append_rows, read_rows

    row = {"step": 1, "cell": "blue-small", "held_out": True, "probe": 0, "seed": 0, "readout": "analytic",
           "method": "naive", "setting": "", "p": {}, "coords": {}, "target": {}, "found": True}
    plain = tmp_path / "rows.jsonl"
    append_rows(plain, [row, {**row, "probe": 1}])
    (tmp_path / "rows.jsonl.gz").write_bytes(gzip.compress(plain.read_bytes()))
    expected = read_rows(plain)
    plain.unlink()
    assert read_rows(plain) == expected and len(expected) == 2
    (tmp_path / "rows.jsonl.gz").unlink()
    assert read_rows(plain) == []


def test_the_code_version_is_read_once_per_process(monkeypatch):
    """A multirun's jobs run the code its process imported: a commit made while the sweep runs must not be
    recorded as the code of its later jobs."""
    heads = iter(["aaaa", "", "bbbb", ""])  # rev-parse, diff; then what a later commit would answer
    provenance.code_version.cache_clear()
    monkeypatch.setattr(provenance, "_git", lambda *args, strip=True: next(heads))
    try:
        assert provenance.code_version() == "aaaa" and provenance.code_version() == "aaaa"
    finally:
        provenance.code_version.cache_clear()
