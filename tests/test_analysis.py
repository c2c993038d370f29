"""Analysis, report and aggregate on fabricated rows and run dirs with known answers (CPU, fast)."""

import csv
import json
import re

import numpy as np
import pytest
import yaml
from PIL import Image

from conceptspace import analysis
from conceptspace.tracker.rows import append_rows
from synthetic_shapes import ShapesConfig

STEPS = [100 * (i + 1) for i in range(20)]  # 20 snapshots
# σ = 1.5 snapshots (truncate 4) on a 0 -> 1 step at snapshot k gives 0.633 at k, 0.846 at k+1, 0.955 at k+2,
# so a step reaches 0.8 one snapshot and 0.9 two snapshots after it jumps.
LAG = {0.8: 1, 0.9: 2}


# ---- fabricated runs ---------------------------------------------------------------------------------------
def fabricate_rows(spec, learn_at, converge_at=5, steps=STEPS, probes=4, methods=None):
    """Held-out cells: concept c is right (p 0.9) from snapshot learn_at[c] on, wrong (p 0.1) before.
    Training cells: 0.3 from their corner before `converge_at`, 0.01 after. methods: {name: {setting: learn_at}}."""
    rows = []
    plan = [("naive", "", learn_at)] + [(m, s, at) for m, sets in (methods or {}).items() for s, at in sets.items()]
    for i, step in enumerate(steps):
        for cell in spec.cells:
            name, held = spec.cell_name(cell), spec.is_held_out(cell)
            target = dict(zip(spec.names, cell))
            for method, setting, at in plan if held else plan[:1]:
                for probe in range(probes):
                    if held:
                        err = {c: 0.1 if i >= at[c] else 0.9 for c in spec.names}
                    else:
                        err = {c: 0.3 if i < converge_at else 0.01 for c in spec.names}
                    p = {c: abs(target[c] - err[c]) for c in spec.names}
                    rows.append({"step": step, "cell": name, "held_out": held, "probe": probe, "seed": probe,
                                 "readout": "analytic", "method": method, "setting": setting, "p": p,
                                 "coords": p, "target": target})
    return rows


def write_run(run_dir, *, sep_col=0.4, seed=0, learn_at=None, state="done", steps=STEPS, methods=None,
              samples=False):
    shapes = ShapesConfig(sep_col=sep_col)
    run_dir.mkdir(parents=True)
    data = {"source": "shapes", "concepts": ["color", "size"], "held_out": [["blue", "small"]], "sep_col": sep_col,
            "sep_size": 0.4, "sep_bg": 0.4, "image_size": 32, "mode": "finite", "per_cell": 2048}
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"name": "fab", "seed": seed, "data": data,
                                                         "train": {"steps": STEPS[-1]}}))
    (run_dir / "concept_spec.json").write_text(json.dumps(shapes.spec.to_dict()))
    error = "CUDA out of memory" if state == "failed" else None
    (run_dir / "status.json").write_text(json.dumps({"state": state, "step": steps[-1] if steps else 0,
                                                     "total_steps": STEPS[-1], "error": error}))
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 10, "loss": 1.0, "lr": 1e-3}) + "\n")
    if learn_at is not None and steps:
        append_rows(run_dir / "tracker" / "rows.jsonl", fabricate_rows(shapes.spec, learn_at, steps=steps,
                                                                       methods=methods))
    if samples:
        (run_dir / "tracker" / "samples").mkdir(parents=True, exist_ok=True)
        for i, step in enumerate(steps[:3]):
            Image.new("RGB", (64, 32), (40 * i, 80, 120)).save(run_dir / "tracker" / "samples" / f"step_{step:06d}.png")
    return run_dir


def spec2x2():
    return ShapesConfig().spec


# ---- learning time ------------------------------------------------------------------------------------------
def test_gaussian_smooth_matches_scipy_reflect():
    ndimage = pytest.importorskip("scipy.ndimage")
    x = np.random.default_rng(0).random(17)
    for sigma in (0.7, 1.5, 2.0, 6.0):  # 6.0: the kernel is wider than the series
        assert np.allclose(analysis.gaussian_smooth(x, sigma), ndimage.gaussian_filter1d(x, sigma), atol=1e-12)


@pytest.mark.parametrize("threshold", [0.8, 0.9])
def test_learning_time_of_a_step_lags_by_the_smoothing(threshold):
    acc = np.array([0.0] * 8 + [1.0] * 12)
    assert analysis.learning_time(STEPS, acc, threshold, sigma=0) == (STEPS[8], False)
    assert analysis.learning_time(STEPS, acc, threshold) == (STEPS[8 + LAG[threshold]], False)


def test_learning_time_ignores_a_spike_but_keeps_a_run_that_dips_later():
    spike = np.zeros(20)
    spike[5], spike[12:] = 1.0, 1.0  # one lucky snapshot: smoothed to 0.27, never ≥ 0.8
    assert analysis.learning_time(STEPS, spike, 0.8) == (STEPS[13], False)
    dip = np.zeros(20)
    dip[5:11] = 1.0  # crosses, stays 3+ snapshots, then falls back: the first lasting crossing counts
    assert analysis.learning_time(STEPS, dip, 0.8) == (STEPS[6], False)
    short = np.zeros(20)
    short[5:7] = 1.0  # 2 snapshots above unsmoothed: run=3 rejects it
    assert analysis.learning_time(STEPS, short, 0.8, sigma=0) == (STEPS[-1], True)


def test_learning_time_censored_when_never_crossing_or_only_at_the_end():
    assert analysis.learning_time(STEPS, np.linspace(0, 0.79, 20), 0.8, sigma=0) == (STEPS[-1], True)
    tail = np.zeros(20)
    tail[-2:] = 1.0  # still-open run at the last snapshot: not confirmed yet
    assert analysis.learning_time(STEPS, tail, 0.8, sigma=0) == (2000, True)
    assert analysis.learning_time(STEPS[::-1], np.ones(20), 0.9) == (STEPS[0], False)  # order-independent
    with pytest.raises(ValueError):
        analysis.learning_time([], [], 0.8)


# ---- stats, convergence, turn, elicitation -------------------------------------------------------------------
def test_cell_stats_coordinates_and_accuracies():
    spec = spec2x2()
    rows = [{"step": 5, "cell": "blue-small", "held_out": True, "probe": i, "seed": i, "readout": "analytic",
             "method": "naive", "setting": "", "p": p, "coords": p, "target": {"color": 1, "size": 1}}
            for i, p in enumerate([{"color": 0.9, "size": 0.2}, {"color": 0.7, "size": 0.6},
                                   {"color": 0.4, "size": 0.8}, {"color": 0.6, "size": 0.1}])]
    (s,) = analysis.cell_stats(rows, spec)
    assert s.n == 4 and s.step == 5 and s.held_out and s.target == {"color": 1, "size": 1}
    assert s.coords == pytest.approx({"color": 0.65, "size": 0.425})
    assert s.accuracy == pytest.approx({"color": 0.75, "size": 0.5}) and s.joint == pytest.approx(0.25)


def test_training_convergence_step_on_fabricated_rows():
    spec = spec2x2()
    stats = analysis.cell_stats(fabricate_rows(spec, {"color": 30, "size": 30}, converge_at=7), spec)
    assert analysis.training_convergence_step(stats, spec, readout="analytic") == (STEPS[7], False)
    never = analysis.cell_stats(fabricate_rows(spec, {"color": 30, "size": 30}, converge_at=99), spec)
    assert analysis.training_convergence_step(never, spec, readout="analytic") == (STEPS[-1], True)


def l_path(corner=10, n=21, pause=0):
    x = np.concatenate([np.linspace(0, 1, corner + 1), np.ones(pause + n - corner - 1)])
    y = np.concatenate([np.zeros(corner + 1 + pause), np.linspace(0, 1, n - corner)[1:]])
    return np.arange(len(x)) * 50, {"color": x, "size": y}


def test_turn_step_of_l_shaped_trajectories():
    steps, coords = l_path(corner=10)
    assert analysis.turn_step(steps, coords) == steps[10]
    steps, coords = l_path(corner=6)
    assert analysis.turn_step(steps, coords, sigma=0) == steps[6]
    steps, coords = l_path(corner=8, pause=4)  # rests at the corner: no direction there, the turn is the pause
    noisy = {c: v + np.random.default_rng(1).normal(0, 1e-4, v.size) for c, v in coords.items()}
    assert steps[8] <= analysis.turn_step(steps, noisy) <= steps[13]
    assert analysis.turn_step(steps[:5], {"color": np.zeros(5), "size": np.zeros(5)}) is None
    line = np.linspace(0, 1, 20) + np.random.default_rng(2).normal(0, 1e-3, 20)
    assert analysis.turn_step(np.arange(20), {"color": line, "size": line[::-1] * 0.5}) is None  # straight


def test_elicitation_lead_with_censoring():
    late, early, never = (np.array([0.0] * k + [1.0] * (20 - k)) for k in (12, 4, 20))
    assert analysis.elicitation_lead((STEPS, late), (STEPS, early), sigma=0) == {
        "naive_step": 1300, "naive_censored": False, "method_step": 500, "method_censored": False,
        "lead": 800, "bound": "exact"}
    lower = analysis.elicitation_lead((STEPS, never), (STEPS, early), sigma=0)
    assert (lower["lead"], lower["bound"]) == (2000 - 500, "lower")
    assert analysis.elicitation_lead((STEPS, late), (STEPS, never), sigma=0)["bound"] == "upper"
    assert analysis.elicitation_lead((STEPS, never), (STEPS, never))["lead"] is None


def test_summarise_run(tmp_path):
    run = write_run(tmp_path / "r", learn_at={"color": 9, "size": 3})
    summary = analysis.summarise_run(run)
    times = summary["learning_times"]["blue-small"]
    assert times["color"] == {0.8: (STEPS[10], False), 0.9: (STEPS[11], False)}
    assert times["size"][0.8] == (STEPS[4], False) and times["joint"][0.9] == (STEPS[11], False)
    assert summary["convergence"] == (STEPS[5], False) and summary["readout"] == "analytic"
    assert STEPS[3] <= summary["turn"]["blue-small"] <= STEPS[9]


# ---- verbs --------------------------------------------------------------------------------------------------
def assert_self_contained(html):
    assert re.findall(r'src="(?!data:)', html) == [] and "<link" not in html and "http" not in html


def test_report_on_a_fabricated_run(run_cli, tmp_path):
    run = write_run(tmp_path / "run", learn_at={"color": 9, "size": 3}, samples=True,
                    methods={"overprompt": {"s=1": {"color": 5, "size": 3}, "s=2": {"color": 3, "size": 2}}})
    code, out, err = run_cli("report", str(run))
    assert code == 0, err
    html = (run / "report.html").read_text()
    assert_self_contained(html)
    assert "Learning times" in html and "<td>1100</td>" in html and "<td>1200</td>" in html  # color @0.8, 0.9
    assert "Elicitation" in html and "overprompt" in html and "data:image/gif;base64" in html
    for name in ("trajectory.png", "accuracy.png", "elicitation.png", "samples.gif"):
        assert (run / "figures" / name).stat().st_size > 0


def test_figure_to_uint8():
    from conceptspace import plots

    spec = spec2x2()
    stats = analysis.cell_stats(fabricate_rows(spec, {"color": 9, "size": 3}), spec)
    fig = plots.trajectory_figure(stats, spec, readout="analytic", convergence_step=600)
    image = plots.figure_to_uint8(fig)
    plots.plt.close(fig)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.std() > 0


def test_aggregate_a_fabricated_sweep(run_cli, tmp_path):
    sweep = tmp_path / "sweep"
    known = {}  # run -> (T0.8 color, censored)
    for sep_col, color_at in ((0.2, 12), (0.6, 4)):
        for seed in (0, 1):
            name = f"sep_col={sep_col},seed={seed}"
            at = color_at + seed if not (sep_col == 0.2 and seed == 1) else 99  # one seed never learns colour
            write_run(sweep / name, sep_col=sep_col, seed=seed, learn_at={"color": at, "size": 2})
            (sweep / name / ".hydra").mkdir()
            (sweep / name / ".hydra" / "config.yaml").write_text("not: a run\n")
            known[name] = (STEPS[at + 1], False) if at < 20 else (STEPS[-1], True)
    write_run(sweep / "sep_col=0.4,seed=0", sep_col=0.4, learn_at={"color": 3, "size": 2}, state="running",
              steps=STEPS[:6])
    write_run(sweep / "sep_col=0.8,seed=0", sep_col=0.8, state="failed", steps=[])
    code, out, err = run_cli("aggregate", str(sweep))
    assert code == 0, err
    with open(sweep / "aggregate" / "runs.csv") as f:
        rows = {r["run"]: r for r in csv.DictReader(f)}
    assert len(rows) == 6
    for name, (step, censored) in known.items():
        assert (int(rows[name]["T0.8_blue-small_color"]), rows[name]["T0.8_blue-small_color_censored"]) == \
               (step, str(censored))
    assert rows["sep_col=0.4,seed=0"]["state"] == "running"
    assert rows["sep_col=0.8,seed=0"]["state"] == "failed" and "out of memory" in rows["sep_col=0.8,seed=0"]["error"]
    signal = {name: float(rows[name]["signal_norm_color"]) for name in ("sep_col=0.2,seed=0", "sep_col=0.6,seed=0")}
    assert signal["sep_col=0.6,seed=0"] > signal["sep_col=0.2,seed=0"]
    html = (sweep / "aggregate" / "sweep.html").read_text()
    assert_self_contained(html)
    assert "sep_col=0.4,seed=0" in html and "running" in html and "failed" in html and "censored" in html
    for name in ("learning_time_vs_signal.png", "trajectories.png"):
        assert (sweep / "aggregate" / name).stat().st_size > 0


@pytest.mark.parametrize("argv, message", [
    (["report", "{tmp}/nope"], "does not exist"),
    (["report", "{tmp}/empty"], "no tracker rows"),
    (["report"], "usage: conceptspace report RUN_DIR"),
    (["aggregate", "{tmp}/nope"], "does not exist"),
    (["aggregate", "{tmp}/empty"], "no runs found"),
    (["aggregate", "{tmp}/empty", "--out"], "--out: needs a directory"),
])
def test_bad_input_is_one_line(run_cli, tmp_path, argv, message):
    write_run(tmp_path / "empty" / "x", steps=[])
    (tmp_path / "empty" / "x" / "config.yaml").rename(tmp_path / "empty" / "x" / "config.yml")
    code, _, err = run_cli(*[a.format(tmp=tmp_path) for a in argv])
    assert code == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err


def test_three_concepts_get_one_panel_per_pair(tmp_path):
    from conceptspace import plots

    spec = ShapesConfig(concepts=("color", "size", "bg"),
                        held_out=(("blue", "small", "light"), ("blue", "small", "dark"))).spec
    stats = analysis.cell_stats(fabricate_rows(spec, {"color": 9, "size": 3, "bg": 5}), spec)
    fig = plots.trajectory_figure(stats, spec, readout="analytic", convergence_step=600)
    assert len([ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]) == 3
    paths = plots.write_run_figures(tmp_path, stats, spec, readout="analytic")
    assert sorted(paths) == ["accuracy", "trajectory"] and all(p.stat().st_size > 0 for p in paths.values())


def test_readout_agreement_counts_matching_decisions():
    from conceptspace.analysis import readout_agreement
    from synthetic_shapes import ShapesConfig

    spec = ShapesConfig().spec

    def row(readout, probe, pc, ps):
        return {"step": 1, "cell": "blue-small", "probe": probe, "method": "naive", "setting": "",
                "readout": readout, "p": {"color": pc, "size": ps}}

    rows = [row("analytic", 0, 0.9, 0.9), row("learned", 0, 0.8, 0.7),   # agree on both
            row("analytic", 1, 0.9, 0.2), row("learned", 1, 0.6, 0.8),   # agree on colour only
            row("analytic", 2, 0.1, 0.1)]                                # no partner: ignored
    got = readout_agreement(rows, spec)
    assert got["samples"] == 2 and got["color"] == 1.0 and got["size"] == 0.5 and got["joint"] == 0.5
    assert readout_agreement(rows[:1], spec) is None
