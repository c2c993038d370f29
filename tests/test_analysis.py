"""Analysis, report and aggregate on fabricated rows and run dirs with known answers (CPU, fast)."""

import csv
import json
import re

import numpy as np
import pytest
import yaml
from PIL import Image

from conceptspace.analysis import claims, conditions, lead, rundir, stats, times
from conceptspace.analysis.curves import Curve, gaussian_smooth, wilson
from conceptspace.tracker.rows import append_rows
from synthetic_shapes import ShapesConfig

STEPS = [100 * (i + 1) for i in range(20)]  # 20 snapshots


# ---- fabricated runs ---------------------------------------------------------------------------------------
def fabricate_rows(spec, learn_at, converge_at=5, steps=STEPS, probes=4, methods=None):
    """Held-out cells: concept c is right (p 0.9) from snapshot learn_at[c] on, wrong (p 0.1) before.
    Training cells: 0.6 from their corner (read wrong) before `converge_at`, 0.01 after.
    methods: {name: {setting: learn_at}}."""
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
                        err = {c: 0.6 if i < converge_at else 0.01 for c in spec.names}
                    p = {c: abs(target[c] - err[c]) for c in spec.names}
                    rows.append({"step": step, "cell": name, "held_out": held, "probe": probe, "seed": probe,
                                 "readout": "analytic", "method": method, "setting": setting, "p": p,
                                 "coords": p, "target": target, "found": True})
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


def step_curve(k, n=32, length=20, steps=STEPS):
    """0 successes before snapshot k, n of n from k on."""
    acc = np.array([0.0] * k + [1.0] * (length - k))
    return Curve(np.array(steps[:length]), acc * n, np.full(length, float(n)))


# ---- smoothing, intervals, learning times ------------------------------------------------------------------
def test_gaussian_smooth_matches_scipy_reflect_with_the_papers_truncation():
    ndimage = pytest.importorskip("scipy.ndimage")
    x = np.random.default_rng(0).random(17)
    for sigma, truncate in ((0.7, 4.0), (2.0, 6.0), (6.0, 6.0)):  # 6.0: the kernel is wider than the series
        assert np.allclose(gaussian_smooth(x, sigma, truncate), ndimage.gaussian_filter1d(x, sigma, truncate=truncate),
                           atol=1e-12)


def test_wilson_interval_known_values():
    lo, hi = wilson(8, 10)
    assert (float(lo), float(hi)) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    lo, hi = wilson(0, 0)
    assert (float(lo), float(hi)) == (0.0, 1.0)


def test_learning_time_rules_on_a_step():
    """Unsmoothed step at snapshot 8: the paper's rule calls it there; the notebook's (0.9, 3-snapshot
    erosion) at the centre of the first 3-run, one snapshot later."""
    c = step_curve(8)
    paper, notebook = times.learning_time(c, "paper", sigma=0), times.learning_time(c, "notebook", sigma=0)
    assert (paper.step, paper.censored, paper.certain) == (STEPS[8], False, True)
    assert (notebook.step, notebook.censored) == (STEPS[9], False)
    smoothed = times.learning_time(c, "paper")  # σ = 2 spreads the step: 0.8 is reached after it
    assert STEPS[8] < smoothed.step <= STEPS[10] and not smoothed.censored


def test_learning_time_is_not_decided_by_a_few_samples():
    """4 of 4 correct has a Wilson lower bound of 0.51: the time is reported but marked uncertain; 32 of 32
    (lower bound 0.89) clears 0.8, so the interval closes on the same snapshot."""
    few, many = times.learning_time(step_curve(8, n=4), sigma=0), times.learning_time(step_curve(8, n=32), sigma=0)
    assert few.step == STEPS[8] and not few.certain and few.hi is None and few.lo == STEPS[8]
    assert many.certain and many.lo == many.hi == STEPS[8]


def test_learning_time_censored_when_never_crossing():
    t = times.learning_time(Curve(np.array(STEPS), np.linspace(0, 0.79, 20) * 32, np.full(20, 32.0)), sigma=0)
    assert (t.step, t.censored, t.certain) == (STEPS[-1], True, False)
    with pytest.raises(ValueError):
        times.learning_time(Curve(np.array([]), np.array([]), np.array([])))


# ---- stats, convergence, turn ------------------------------------------------------------------------------
def test_cell_stats_coordinates_and_accuracies():
    spec = spec2x2()
    rows = [{"step": 5, "cell": "blue-small", "held_out": True, "probe": i, "seed": i, "readout": "analytic",
             "method": "naive", "setting": "", "p": p, "coords": p, "target": {"color": 1, "size": 1}}
            for i, p in enumerate([{"color": 0.9, "size": 0.2}, {"color": 0.7, "size": 0.6},
                                   {"color": 0.4, "size": 0.8}, {"color": 0.6, "size": 0.1}])]
    (s,) = stats.cell_stats(rows, spec)
    assert s.n == 4 and s.step == 5 and s.held_out and s.target == {"color": 1, "size": 1}
    assert s.coords == pytest.approx({"color": 0.65, "size": 0.425})
    assert s.accuracy == pytest.approx({"color": 0.75, "size": 0.5}) and s.joint == pytest.approx(0.25)
    even, odd = stats.cell_stats(rows, spec, half=0)[0], stats.cell_stats(rows, spec, half=1)[0]
    assert (even.n, odd.n, even.correct["joint"], odd.correct["joint"]) == (2, 2, 0, 1)


def test_a_sample_without_an_object_is_wrong_on_every_concept():
    """The analytic readout reads chance (p = 0.5) on a blank image; (p > 0.5) == 0 would call that a correct
    red-large sample. found = False makes it wrong, and it is counted as no-object."""
    spec = spec2x2()
    blank = {"color": 0.5, "size": 0.5}
    rows = [{"step": 1, "cell": "red-large", "held_out": False, "probe": i, "seed": i, "readout": "analytic",
             "method": "naive", "setting": "", "p": blank, "coords": blank, "target": {"color": 0, "size": 0},
             "found": found} for i, found in enumerate([False, False, True])]
    (s,) = stats.cell_stats(rows, spec)
    assert s.no_object == 2 and s.correct == {"color": 1, "size": 1, "joint": 1} and s.joint == pytest.approx(1 / 3)


def test_convergence_step_both_rules_on_fabricated_rows():
    spec = spec2x2()
    st = stats.cell_stats(fabricate_rows(spec, {"color": 30, "size": 30}, converge_at=7), spec)
    assert times.convergence_step(st, spec, readout="analytic", rule="corners") == (STEPS[7], False)
    assert times.convergence_step(st, spec, readout="analytic", rule="msd") == (STEPS[7], False)
    never = stats.cell_stats(fabricate_rows(spec, {"color": 30, "size": 30}, converge_at=99), spec)
    assert times.convergence_step(never, spec, readout="analytic") == (STEPS[-1], True)


def l_path(corner=10, n=21, pause=0):
    x = np.concatenate([np.linspace(0, 1, corner + 1), np.ones(pause + n - corner - 1)])
    y = np.concatenate([np.zeros(corner + 1 + pause), np.linspace(0, 1, n - corner)[1:]])
    return np.arange(len(x)) * 50, {"color": x, "size": y}


def test_turn_step_of_l_shaped_trajectories():
    steps, coords = l_path(corner=10)
    assert times.turn_step(steps, coords) == steps[10]
    steps, coords = l_path(corner=6)
    assert times.turn_step(steps, coords, sigma=0) == steps[6]
    assert times.turn_step(steps[:5], {"color": np.zeros(5), "size": np.zeros(5)}) is None
    line = np.linspace(0, 1, 20) + np.random.default_rng(2).normal(0, 1e-3, 20)
    assert times.turn_step(np.arange(20), {"color": line, "size": line[::-1] * 0.5}) is None  # straight


# ---- F2: memorised then turned -----------------------------------------------------------------------------
def held_out_path(*segments):
    """Piecewise-linear concept-space path through the given (color, size) points, 10 snapshots per segment."""
    xs, ys = [segments[0][0]], [segments[0][1]]
    for (x0, y0), (x1, y1) in zip(segments, segments[1:]):
        xs += list(np.linspace(x0, x1, 11)[1:])
        ys += list(np.linspace(y0, y1, 11)[1:])
    return np.arange(len(xs)) * 50, {"color": np.array(xs), "size": np.array(ys)}


SMALL_RED, BLUE_SMALL = {"color": 0.0, "size": 1.0}, {"color": 1.0, "size": 1.0}


def test_memorised_then_turned_is_found_turning_where_it_turns():
    """From the centre to the small-red corner (step 500), a pause there until step 1000, then to the target:
    it is memorised, and the turn is where it leaves the corner (step 1000)."""
    steps, coords = held_out_path((0.5, 0.5), (0.0, 1.0), (0.0, 1.0), (1.0, 1.0))
    got = claims.memorisation(steps, coords, SMALL_RED, BLUE_SMALL)
    assert got["verdict"] == "memorised then turned" and got["turn_step"] == 1000
    assert got["approach_distance"] < 0.05 and 500 <= got["approach_step"] <= 1000
    v_steps, v_coords = held_out_path((0.5, 0.5), (0.05, 0.95), (1.0, 1.0))  # no pause: turns at the approach
    got = claims.memorisation(v_steps, v_coords, SMALL_RED, BLUE_SMALL)
    assert got["verdict"] == "memorised then turned" and got["turn_step"] == got["approach_step"] == 500


def test_straight_and_stuck_trajectories():
    steps, coords = held_out_path((0.5, 0.5), (1.0, 1.0))
    assert claims.memorisation(steps, coords, SMALL_RED, BLUE_SMALL)["verdict"] == "went straight"
    steps, coords = held_out_path((0.5, 0.5), (0.0, 1.0), (0.05, 0.95))
    got = claims.memorisation(steps, coords, SMALL_RED, BLUE_SMALL)
    assert got["verdict"] == "never turned" and got["turn_step"] is None


def test_memorised_corner_is_the_training_cell_sharing_the_stronger_concept():
    spec = spec2x2()
    assert claims.memorised_cell(spec, (1, 1), {"color": 0.05, "size": 0.99}) == spec.cell("red-small")
    assert claims.memorised_cell(spec, (1, 1), {"color": 0.9, "size": 0.4}) == spec.cell("blue-large")


# ---- F3: the lead, biased and unbiased ---------------------------------------------------------------------
def bernoulli_rows(spec, cell, method, setting, p_of_step, rng, probes=64, steps=STEPS):
    rows = []
    target = dict(zip(spec.names, spec.cell(cell)))
    for step, p in zip(steps, p_of_step):
        for probe in range(probes):
            ok = rng.random() < p
            pr = {c: float(target[c]) if ok else 1.0 - target[c] for c in spec.names}
            rows.append({"step": step, "cell": cell, "held_out": True, "probe": probe, "seed": probe,
                         "readout": "analytic", "method": method, "setting": setting, "p": pr, "coords": pr,
                         "target": target, "found": True})
    return rows


def by_half(rows, spec):
    return {None: stats.cell_stats(rows, spec), 0: stats.cell_stats(rows, spec, half=0),
            1: stats.cell_stats(rows, spec, half=1)}


def test_split_half_lead_picks_on_one_half_and_scores_on_the_other():
    spec, rng = spec2x2(), np.random.default_rng(0)
    late, early, never = (np.clip((np.arange(20) - k) / 3, 0, 1) for k in (12, 3, 40))
    rows = bernoulli_rows(spec, "blue-small", "naive", "", late, rng)
    rows += bernoulli_rows(spec, "blue-small", "overprompt", "good", early, rng)
    rows += bernoulli_rows(spec, "blue-small", "overprompt", "bad", never, rng)
    got = lead.split_half_lead(by_half(rows, spec), "blue-small", "overprompt", readout="analytic")
    assert got.setting == "good" and got.bound == "exact" and got.lead == got.naive.step - got.elicited.step
    assert 600 <= got.lead <= 1200 and got.interval[0] <= got.lead <= got.interval[1]


def test_the_null_control_shows_the_max_over_settings_bias_and_no_split_half_lead():
    """Five settings that are all the naive prompt on fresh seeds: the max over settings per snapshot reaches
    0.8 earlier than naive (the bias), the split-half estimate's interval contains 0."""
    spec, rng = spec2x2(), np.random.default_rng(1)
    ramp = np.clip(np.arange(20) / 19 * 1.1, 0, 0.98)  # slow rise: where noise decides when 0.8 is crossed
    rows = bernoulli_rows(spec, "blue-small", "naive", "", ramp, rng)
    for k in range(5):
        rows += bernoulli_rows(spec, "blue-small", "null", f"copy={k}", ramp, rng)
    halves = by_half(rows, spec)
    split = lead.split_half_lead(halves, "blue-small", "null", readout="analytic")
    biased = lead.max_over_settings_lead(halves[None], "blue-small", "null", readout="analytic")
    assert split.interval[0] <= 0 <= split.interval[1]
    assert biased.lead > 0


def test_lead_bounds_under_censoring():
    late, early, never = step_curve(12), step_curve(4), step_curve(20)
    exact = lead.lead_between(late, early, estimate="split", method="m", setting="s", sigma=0)
    assert (exact.lead, exact.bound) == (800, "exact")
    lower = lead.lead_between(never, early, estimate="split", method="m", setting="s", sigma=0)
    assert (lower.lead, lower.bound) == (2000 - 500, "lower")
    assert lead.lead_between(late, never, estimate="split", method="m", setting="s", sigma=0).bound == "upper"
    assert lead.lead_between(never, never, estimate="split", method="m", setting="s").lead is None


# ---- across seeds and sweeps -------------------------------------------------------------------------------
def test_censored_median_never_drops_a_censored_seed():
    got = conditions.censored_median([100, 200, 300], [False, False, True])
    assert (got["median"], got["median_censored"], got["n_crossed"], got["max"], got["max_censored"]) == \
           (200, False, 2, 300, True)
    most_censored = conditions.censored_median([100, 2000, 2000], [False, True, True])
    assert most_censored["median_censored"] and most_censored["median"] == 2000
    assert conditions.format_censored(got) == "200 [100–>300], 2/3 crossed"
    assert conditions.censored_median([100, 300], [False, False])["median"] == 200


def test_spearman_and_trend_verdicts():
    assert claims.spearman([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1)
    assert claims.spearman([1, 1, 2, 2], [5, 6, 7, 8]) == pytest.approx(0.894, abs=1e-3)  # ties averaged
    assert claims.spearman([1, 2], [1, 2]) is None
    falling = claims.trend([0.1, 0.1, 0.4, 0.4, 0.8, 0.8], [900, 1000, 500, 600, 300, 2000],
                           [False, False, False, False, False, True], expected_sign=-1)
    assert falling["verdict"] == "reproduced" and falling["n_censored"] == 1
    assert claims.trend([0.1, 0.4, 0.8], [100, 200, 300], [False] * 3, -1)["verdict"] == "contradicted"


def test_summarise_run(tmp_path):
    run = write_run(tmp_path / "r", learn_at={"color": 9, "size": 3})
    summary = rundir.summarise_run(run)
    lt = summary["learning_times"]["blue-small"]
    assert set(lt) == {"color", "size", "joint"} and set(lt["color"]) == {"paper", "notebook"}
    assert STEPS[9] < lt["color"]["paper"].step < lt["color"]["notebook"].step
    assert lt["size"]["paper"].step < lt["color"]["paper"].step and not lt["joint"]["paper"].censored
    assert summary["convergence"]["corners"] == (STEPS[5], False) and summary["readout"] == "analytic"
    assert summary["memorisation"]["blue-small"]["corner"] == "red-small"  # size has the stronger signal at Δ 0.4
    assert summary["no_object"]["blue-small"] == 0.0
    # another rows file of the same run (e.g. `conceptspace track --rows`) is read instead when named
    other = write_run(tmp_path / "other", learn_at={"color": 4, "size": 3})
    (other / "tracker" / "rows.jsonl").rename(run / "tracker" / "other.jsonl")
    again = rundir.summarise_run(run, rows_file="other.jsonl")["learning_times"]["blue-small"]["color"]["paper"]
    assert STEPS[4] < again.step < lt["color"]["paper"].step


# ---- verbs --------------------------------------------------------------------------------------------------
def assert_self_contained(html):
    assert re.findall(r'src="(?!data:)', html) == [] and "<link" not in html and "http" not in html


def test_aggregate_a_fabricated_sweep(run_cli, tmp_path):
    """Two Δcolor values x two seeds (one never learns colour) plus a running and a failed run: conditions
    pool the seeds, censored seeds are counted, F1 sees colour learned later at the weaker Δcolor."""
    sweep = tmp_path / "sweep"
    for sep_col, color_at in ((0.2, 12), (0.3, 8), (0.6, 4)):
        for seed in (0, 1):
            name = f"sep_col={sep_col},seed={seed}"
            at = color_at + seed if not (sep_col == 0.2 and seed == 1) else 99  # one seed never learns colour
            write_run(sweep / name, sep_col=sep_col, seed=seed, learn_at={"color": at, "size": 2},
                      methods={"overprompt": {"offset=0.25": {"color": max(at - 3, 0), "size": 2}}})
            (sweep / name / ".hydra").mkdir()
            (sweep / name / ".hydra" / "config.yaml").write_text("not: a run\n")
    write_run(sweep / "sep_col=0.4,seed=0", sep_col=0.4, learn_at={"color": 3, "size": 2}, state="running",
              steps=STEPS[:6])
    write_run(sweep / "sep_col=0.8,seed=0", sep_col=0.8, state="failed", steps=[])
    code, out, err = run_cli("aggregate", str(sweep))
    assert code == 0, err
    with open(sweep / "aggregate" / "runs.csv") as f:
        rows = {r["run"]: r for r in csv.DictReader(f)}
    assert len(rows) == 8
    assert rows["sep_col=0.2,seed=1"]["T0.8_blue-small_color_censored"] == "True"
    assert rows["sep_col=0.8,seed=0"]["state"] == "failed" and "out of memory" in rows["sep_col=0.8,seed=0"]["error"]
    with open(sweep / "aggregate" / "conditions.csv") as f:
        conds = {r["delta_color"]: r for r in csv.DictReader(f)}
    assert set(conds) == {"0.2", "0.3", "0.6"} and all(c["n_seeds"] == "2" for c in conds.values())
    assert conds["0.2"]["T0.8_color"].endswith("1/2 crossed")
    result = json.loads((sweep / "aggregate" / "claims.json").read_text())
    f1 = [t for t in result["F1"] if t["concept"] == "color" and t["against"] == "delta_color"]
    assert f1 and f1[0]["verdict"] == "reproduced" and f1[0]["n_censored"] == 1
    assert any(line.startswith("F1 ") for line in result["verdicts"])
    assert any("F3 blue-small overprompt" in line for line in result["verdicts"])
    html = (sweep / "aggregate" / "sweep.html").read_text()
    assert_self_contained(html)
    assert "Verdicts" in html and "running" in html and "failed" in html
    for name in ("hidden_capability.png", "trajectories.png", "f1_learning_time.png"):
        assert (sweep / "aggregate" / name).stat().st_size > 0


@pytest.mark.parametrize("argv, message", [
    (["aggregate", "{tmp}/nope"], "does not exist"),
    (["aggregate", "{tmp}/empty"], "no runs found"),
    (["aggregate", "{tmp}/empty", "--out"], "expected one argument"),
])
def test_bad_input_is_one_line(run_cli, tmp_path, argv, message):
    write_run(tmp_path / "empty" / "x", steps=[])
    (tmp_path / "empty" / "x" / "config.yaml").rename(tmp_path / "empty" / "x" / "config.yml")
    code, _, err = run_cli(*[a.format(tmp=tmp_path) for a in argv])
    assert code == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err


def test_aggregate_help_exits_zero(run_cli):
    code, out, _ = run_cli("aggregate", "--help")
    assert code == 0 and "SWEEP_DIR" in out


def test_readout_agreement_counts_matching_decisions():
    spec = ShapesConfig().spec

    def row(readout, probe, pc, ps):
        return {"step": 1, "cell": "blue-small", "probe": probe, "method": "naive", "setting": "",
                "readout": readout, "p": {"color": pc, "size": ps}}

    rows = [row("analytic", 0, 0.9, 0.9), row("learned", 0, 0.8, 0.7),   # agree on both
            row("analytic", 1, 0.9, 0.2), row("learned", 1, 0.6, 0.8),   # agree on colour only
            row("analytic", 2, 0.1, 0.1)]                                # no partner: ignored
    got = stats.readout_agreement(rows, spec)
    assert got["samples"] == 2 and got["color"] == 1.0 and got["size"] == 0.5 and got["joint"] == 0.5
    assert stats.readout_agreement(rows[:1], spec) is None


def test_coordinates_average_the_samples_with_an_object_only():
    """A sample without an object reads chance (0.5) and has no place in concept space: averaging it in would
    pull every trajectory toward the centre whenever the model draws blanks."""
    spec = spec2x2()
    rows = [{"step": 1, "cell": "blue-small", "held_out": True, "probe": i, "seed": i, "readout": "analytic",
             "method": "naive", "setting": "", "p": p, "coords": p, "target": {"color": 1, "size": 1},
             "found": found}
            for i, (p, found) in enumerate([({"color": 0.9, "size": 0.7}, True), ({"color": 0.7, "size": 0.9}, True),
                                            ({"color": 0.5, "size": 0.5}, False)])]
    (s,) = stats.cell_stats(rows, spec)
    assert s.coords == pytest.approx({"color": 0.8, "size": 0.8})
    (blank,) = stats.cell_stats([{**r, "found": False} for r in rows], spec)
    assert blank.coords == {"color": 0.5, "size": 0.5}  # no sample has an object: chance, not a position


def test_f3_verdict_is_undetermined_when_only_lower_bounds_are_not_positive():
    """A method reaching 0.8 at the last snapshot while naive prompting never does has a lead of 'at least
    0': not evidence against the claim, so not 'not reproduced'; an exact lead of 0 is."""
    from conceptspace.analysis.conditions import f3_verdict

    def stats(values, bounds):
        known = [v for v in values if v is not None]
        return {"n": len(values), "n_positive": sum(v > 0 for v in known), "median": float(np.median(known)),
                "min": min(known), "max": max(known), "values": values, "value_bounds": bounds}

    assert f3_verdict(stats([0, 0, 0], ["lower"] * 3), None).startswith("undetermined")
    assert f3_verdict(stats([0, 0, 0], ["exact", "lower", "lower"]), None) == "not reproduced"
    assert f3_verdict(stats([500, 300, 0], ["exact", "exact", "lower"]), None) == "reproduced"
