"""Ensembles: member i equals the single run of its config (bitwise under `loop`, to fp32 rounding under
`vmap`), a killed ensemble resumes to the uninterrupted result, a diverging member stops alone with its last
good checkpoint, the step never reads a device value back between log and save steps, and the launcher
groups a sweep by shape."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

import conceptspace.member as member_module
from conceptspace.errors import UserError
from conceptspace.train import train, train_ensemble
from tests.helpers import FAST, fast_cfg, final_state

# three members that differ in what an ensemble allows to differ: seed, Δcolor, lr, EMA and CFG dropout
MEMBERS = [("seed=0",), ("seed=1", "data.sep_col=0.6", "train.lr=3e-4"),
           ("seed=3", "train.ema.enabled=true", "train.cfg_dropout=0.3")]


def cfgs_of(members, *common, steps=6, tracker=True):
    return [fast_cfg(*m, *common, steps=steps, tracker=tracker) for m in members]


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "tracker" / "rows.jsonl").read_text().splitlines()]


def metrics(run_dir):  # steps_per_s is wall time, the one thing allowed to differ
    return [{k: v for k, v in json.loads(line).items() if k != "steps_per_s"}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def singles(cfgs, root):
    for i, cfg in enumerate(cfgs):
        train(cfg, root / f"single{i}")
    return [root / f"single{i}" for i in range(len(cfgs))]


@pytest.fixture(scope="module")
def single_runs(tmp_path_factory):
    """MEMBERS trained alone, at the default thread count."""
    return singles(cfgs_of(MEMBERS), tmp_path_factory.mktemp("singles"))


def test_loop_members_are_bitwise_their_single_runs(tmp_path, single_runs):
    cfgs = cfgs_of(MEMBERS)
    dirs = [tmp_path / f"member{i}" for i in range(len(cfgs))]
    out = train_ensemble(cfgs, dirs, strategy="loop")
    assert [o["step"] for o in out] == [6] * 3
    for ens, single in zip(dirs, single_runs):
        a, b = final_state(ens), final_state(single)
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        assert all(torch.equal(x, y) for x, y in zip(a["optimizer"]["state"][0].values(),
                                                     b["optimizer"]["state"][0].values()))
        assert rows(ens) == rows(single) and metrics(ens) == metrics(single)
        assert sorted(p.name for p in (ens / "snapshots").iterdir()) == \
            sorted(p.name for p in (single / "snapshots").iterdir())
        assert json.loads((ens / "status.json").read_text())["state"] == "done"
    assert final_state(dirs[2])["ema"] is not None  # the EMA member kept its own EMA


def test_threads_members_are_bitwise_their_single_runs_on_one_thread(tmp_path):
    cfgs = cfgs_of(MEMBERS)
    dirs = [tmp_path / f"member{i}" for i in range(len(cfgs))]
    threads = torch.get_num_threads()
    train_ensemble(cfgs, dirs, strategy="threads")
    assert torch.get_num_threads() == threads  # restored after the ensemble
    torch.set_num_threads(1)
    try:
        single = singles(cfgs, tmp_path)
    finally:
        torch.set_num_threads(threads)
    for ens, one in zip(dirs, single):
        a, b = final_state(ens), final_state(one)
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        assert rows(ens) == rows(one) and metrics(ens) == metrics(one)


def close_rows(a, b):
    """The clarification's rule for an fp32 ensemble: coordinates within 1e-4, decisions equal except within
    1e-3 of the boundary."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x["step"], x["cell"], x["probe"], x["found"]) == (y["step"], y["cell"], y["probe"], y["found"])
        for c in x["coords"]:
            assert abs(x["coords"][c] - y["coords"][c]) < 1e-4
            if abs(x["coords"][c] - 0.5) >= 1e-3:
                assert (x["p"][c] > 0.5) == (y["p"][c] > 0.5)


@pytest.mark.parametrize("formulation", [[], ["diffusion=vdm", "model.concept_conditioning=per_block", "train.lr=1e-3",
                                          "train.grad_clip=0.01"]],
                         ids=["ddpm", "vdm"])
def test_vmap_members_equal_their_single_runs_to_fp32_rounding(tmp_path, formulation, single_runs):
    cfgs = cfgs_of(MEMBERS, *formulation)
    dirs = [tmp_path / f"member{i}" for i in range(len(cfgs))]
    train_ensemble(cfgs, dirs, strategy="vmap")
    for ens, single in zip(dirs, singles(cfgs, tmp_path) if formulation else single_runs):
        a, b = final_state(ens), final_state(single)
        # gradients agree to ~1e-7; AdamW's first steps are about lr * sign(g), so a parameter whose gradient
        # is ~0 may move by up to lr differently: weights agree to 1e-4 (lr 1e-3 at most here)
        assert max((a["model"][k] - b["model"][k]).abs().max().item() for k in a["model"]) < 1e-4
        if a["process"] is not None:  # the VDM's learned schedule trained inside the vmap too
            assert all(torch.allclose(a["process"][k], b["process"][k], atol=1e-5) for k in a["process"])
            assert not torch.equal(a["process"]["b"], torch.tensor(-5.0))
        close_rows(rows(ens), rows(single))


def test_vmap_without_a_tracker_snapshots_and_finishes(tmp_path):
    dirs = [tmp_path / "a", tmp_path / "b"]
    train_ensemble(cfgs_of(MEMBERS[:2], steps=3, tracker=False), dirs, strategy="vmap")
    assert all(json.loads((d / "status.json").read_text())["state"] == "done" for d in dirs)
    assert all(any((d / "snapshots").iterdir()) for d in dirs)


def test_vmap_gradients_are_each_members_own(tmp_path):
    """One vmapped grad call gives every member the gradient it computes alone (not a sum, not a shared norm)."""
    from conceptspace.distributed import World
    from conceptspace.ensemble import LoopStep, VmapStep

    cfgs = cfgs_of(MEMBERS[:2], tracker=False)
    caught = {}
    for name, strategy in (("loop", LoopStep()), ("vmap", VmapStep())):
        ms = [member_module.Member(c, tmp_path / name / str(i), torch.device("cpu"), World())
              for i, c in enumerate(cfgs)]
        caught[name] = []
        for m in ms:
            m.update = lambda loss, m=m, into=caught[name]: into.append([p.grad.clone() for p in m.params])
        strategy(ms)
    for ga, gb in zip(caught["loop"], caught["vmap"]):
        assert max((x - y).abs().max().item() for x, y in zip(ga, gb)) < 1e-6
    assert max((x - y).abs().max().item() for x, y in zip(*caught["loop"])) > 1e-3  # the members differ


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_a_killed_ensemble_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, strategy):
    cfgs = cfgs_of(MEMBERS[:2], steps=8, tracker=True)
    straight = [tmp_path / "straight" / str(i) for i in range(2)]
    resumed = [tmp_path / "resumed" / str(i) for i in range(2)]
    train_ensemble(cfgs, straight, strategy)
    real = member_module.step_generator

    def killed(seed, step, device):
        if step == 5:
            raise KeyboardInterrupt
        return real(seed, step, device)

    monkeypatch.setattr(member_module, "step_generator", killed)
    with pytest.raises(KeyboardInterrupt):
        train_ensemble(cfgs, resumed, strategy)
    assert [final_state(d)["step"] for d in resumed] == [3, 3]
    monkeypatch.setattr(member_module, "step_generator", real)
    train_ensemble(cfgs, resumed, strategy)  # the same call again = resume
    for a, b in zip(straight, resumed):
        sa, sb = final_state(a), final_state(b)
        assert sa["step"] == sb["step"] == 8
        assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])
        assert rows(a) == rows(b) and metrics(a) == metrics(b)


def test_members_left_at_different_steps_by_a_kill_catch_up(tmp_path, monkeypatch):
    """A kill between two members' checkpoint writes: the member ahead waits while the other catches up."""
    cfgs = cfgs_of(MEMBERS[:2], steps=8, tracker=True)
    dirs = [tmp_path / str(i) for i in range(2)]
    real = member_module.Member.checkpoint

    def dies_at_second_members_checkpoint(self):
        if self.run_dir == dirs[1] and self.step == 6:
            raise KeyboardInterrupt
        real(self)

    monkeypatch.setattr(member_module.Member, "checkpoint", dies_at_second_members_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train_ensemble(cfgs, dirs)
    assert [final_state(d)["step"] for d in dirs] == [6, 3]
    monkeypatch.setattr(member_module.Member, "checkpoint", real)
    train_ensemble(cfgs, dirs)
    for ens, single in zip(dirs, singles(cfgs, tmp_path)):
        a, b = final_state(ens), final_state(single)
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        assert rows(ens) == rows(single)


def poison(monkeypatch, member_seed: int, call: int):
    """Member `member_seed`'s loss is NaN at its `call`-th loss."""
    real = member_module.build_process

    def build(diffusion_cfg):
        process = real(diffusion_cfg)
        loss, calls = process.loss, {"n": 0}

        def maybe_nan(model, images, vectors, generator, shard=None):
            value = loss(model, images, vectors, generator, shard)
            if generator.initial_seed() in poisoned:
                calls["n"] += 1
                return value * float("nan") if calls["n"] == call else value
            return value
        process.loss = maybe_nan
        return process

    poisoned = {member_module.step_seed(member_seed, s, "loss") for s in range(100)}
    monkeypatch.setattr(member_module, "build_process", build)


def test_a_diverging_member_stops_alone_and_nothing_non_finite_is_saved(tmp_path, monkeypatch):
    # logs every 100 steps: only the snapshot at step 2 and the checkpoints at 3 and 6 read the flag
    cfgs = cfgs_of(MEMBERS[:2], "train.log_every=100", steps=6, tracker=True)
    dirs = [tmp_path / str(i) for i in range(2)]
    poison(monkeypatch, member_seed=1, call=2)  # member 1's step 1 is non-finite; step 2 is a snapshot
    with pytest.raises(UserError, match=r"1 of 2 ensemble members diverged .*loss is nan at step 1"):
        train_ensemble(cfgs, dirs)
    assert json.loads((dirs[1] / "status.json").read_text())["state"] == "failed"
    assert not (dirs[1] / "snapshots").exists() and not (dirs[1] / "checkpoint.pt").exists()
    assert not (dirs[1] / "tracker" / "rows.jsonl").exists()
    assert json.loads((dirs[0] / "status.json").read_text())["state"] == "done"
    assert final_state(dirs[0])["step"] == 6


def test_no_host_read_between_log_and_save_steps(tmp_path, monkeypatch):
    """The training step itself never reads a tensor back (each read would be a device sync on a GPU)."""
    cfg = fast_cfg("train.log_every=100", "train.snapshots.steps=[12]", steps=12, snapshots=1, checkpoint_every=100)
    inside, steps, reads = [False], [], []
    real_step = member_module.Member.train_step

    def watched_step(self):
        inside[0] = 2 <= self.step < 10  # well inside: no log, snapshot or checkpoint is due
        steps.append(self.step) if inside[0] else None
        try:
            real_step(self)
        finally:
            inside[0] = False

    def spying(name):
        real = getattr(torch.Tensor, name)

        def spy(self, *args, **kwargs):
            if inside[0]:
                reads.append(name)
            return real(self, *args, **kwargs)
        return spy

    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, spying(name))
    monkeypatch.setattr(member_module.Member, "train_step", watched_step)
    train(cfg, tmp_path)
    assert steps == list(range(2, 10)) and reads == []


def test_members_that_cannot_share_an_ensemble_are_one_line(tmp_path):
    cfgs = [fast_cfg("seed=0"), fast_cfg("seed=1", "train.batch_size=4")]
    with pytest.raises(UserError, match="must agree on"):
        train_ensemble(cfgs, [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(UserError, match=r"hydra.launcher.strategy: got 'fibres'"):
        train_ensemble(cfgs[:1], [tmp_path / "a"], strategy="fibres")
    with pytest.raises(UserError, match=r"got 'threads' with model.dropout > 0"):
        train_ensemble([fast_cfg("model.dropout=0.1")], [tmp_path / "a"], strategy="threads")
    assert not (tmp_path / "a").exists()


def test_the_launcher_groups_jobs_by_shape_in_sweep_order():
    from conceptspace.ensemble import group_key
    from conceptspace.launcher import describe, group_jobs

    cfgs = [fast_cfg(f"seed={s}", f"data.image_size={z}") for s in (0, 1, 2) for z in (16, 32)]
    groups = group_jobs(cfgs, members=2)
    assert groups == [[0, 2], [4], [1, 3], [5]]
    assert describe(groups, len({group_key(c) for c in cfgs})) == \
        "ensemble launcher: 6 jobs -> 4 ensembles of 2+1+2+1 members (2 distinct shapes)"
    lrs = [fast_cfg(f"seed={s}", f"train.lr={lr}") for s in (0, 1) for lr in (1e-4, 1e-3)]
    assert group_jobs(lrs, members=8) == [[0, 1, 2, 3]]  # lr and seed may differ inside an ensemble


def test_the_launcher_trains_one_submitit_job_per_ensemble_into_per_job_run_dirs(tmp_path, run_cli):
    """`hydra/launcher=ensemble` with the submitit backend: 3 jobs -> 2 ensembles -> 2 submitit jobs; each
    job's run dir where the basic launcher puts it, and `aggregate` reads them as ordinary runs."""
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "conceptspace.cli", "train", "-m", "name=ens", *FAST, "train.steps=4",
           "train.snapshots.count=2", "train.checkpoint_every=4", "seed=0,1,2", "hydra/launcher=ensemble",
           "hydra.launcher.members=2", "hydra.launcher.backend=submitit_local",
           "+hydra.launcher.submitit.timeout_min=10", f"hydra.sweep.dir={sweep}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ensemble launcher: 3 jobs -> 2 ensembles of 2+1 members (1 distinct shape)" in done.stdout
    jobs = [p for p in (sweep / ".submitit").iterdir() if p.is_dir() and p.name.isdigit()]
    assert len(jobs) == 2  # one submitit job per ensemble, not per run
    runs = sorted(p for p in sweep.iterdir() if (p / "config.yaml").exists())
    assert len(runs) == 3 and all((p / ".hydra" / "overrides.yaml").exists() for p in runs)
    code, _, err = run_cli("aggregate", str(sweep))
    assert code == 0, err
    with open(sweep / "aggregate" / "runs.csv") as f:
        table = list(csv.DictReader(f))
    assert sorted(r["seed"] for r in table) == list("012")
    assert all(r["state"] == "done" and not r["error"] for r in table)
    code, _, err = run_cli(*cmd[3:-1], "hydra.launcher.members=0", f"hydra.sweep.dir={tmp_path / 'bad'}")
    assert code == 2 and "hydra.launcher.members: got 0" in err and "Traceback" not in err
    assert not any((tmp_path / "bad").glob("*/config.yaml"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA-graph capture needs CUDA (this machine has none)")
def test_cuda_graph_step_equals_the_eager_step(tmp_path):
    cfg = fast_cfg("device=cuda", "train.precision=fp32", steps=6)
    graphed = fast_cfg("device=cuda", "train.precision=fp32", "train.compile.enabled=true",
                       "train.compile.mode=reduce-overhead", steps=6)
    train(cfg, tmp_path / "eager")
    train(graphed, tmp_path / "graphed")
    a, b = final_state(tmp_path / "eager"), final_state(tmp_path / "graphed")
    assert all(torch.allclose(a["model"][k], b["model"][k], atol=1e-5) for k in a["model"])


def test_a_failing_ensemble_does_not_stop_the_sweeps_others(monkeypatch, capsys):
    """As under the basic launcher, where every job runs and the failures are reported after."""
    import conceptspace.launcher as launcher

    trained = []

    def fake_train_group(cfgs, dirs, strategy):
        trained.append(dirs)
        if dirs[0] == "a":
            raise UserError("1 of 2 ensemble members diverged")
        return [{"step": 1} for _ in dirs]

    monkeypatch.setattr(launcher, "train_group", fake_train_group)
    jobs = [(None, d, None, []) for d in ("a", "b", "c")]
    with pytest.raises(UserError, match=r"1 of 2 ensembles failed \(jobs \[0, 1\]\); the other runs finished"):
        launcher.run_groups([[0, 1], [2]], jobs, "loop", "local", {}, None)
    assert trained == [["a", "b"], ["c"]]
    assert "ensemble of jobs [0, 1]: 1 of 2 ensemble members diverged" in capsys.readouterr().err


def test_every_member_logs_to_its_own_wandb_run(tmp_path, monkeypatch):
    """K W&B runs open at once in one process (offline): each member's metrics reach its own run."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfgs = cfgs_of(MEMBERS[:2], "logger=wandb", steps=4, tracker=True)
    dirs = [tmp_path / "a", tmp_path / "b"]
    train_ensemble(cfgs, dirs, strategy="loop")
    ids = [final_state(d)["wandb_run_id"] for d in dirs]
    assert all(ids) and ids[0] != ids[1]
    for d, run_id in zip(dirs, ids):
        run = list((d / "wandb").glob(f"offline-run-*-{run_id}"))
        assert run and list(run[0].glob("*.wandb"))
        history = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        assert [h["step"] for h in history if "loss" in h] == [2, 4]
