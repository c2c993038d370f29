"""Figures and the run report on fabricated run dirs (CPU, no model): every figure function runs on a run
with elicitation rows and on one with naive rows only; the report says what the run shows and holds the
leads table; `conceptspace report --help` exits 0."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from conceptspace.tracker.rows import append_rows
from synthetic_shapes import ShapesConfig

STEPS = [100 * (i + 1) for i in range(30)]  # 30 snapshots, steps 100..3,000
OFFSETS = [0.1, 0.15, 0.25, 0.35, 0.45]  # the paper's absolute over-prompt grid


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def fabricate_rows(spec, *, rng, steps, probes, t_color, t_size, t_train, methods):
    """Per sample and concept: correct with probability sigmoid((step − T)/width), p on the right side of 0.5
    when correct. The held-out cell learns size first (towards small-red: memorisation), colour later; each
    over-prompt offset learns colour earlier the larger it is; null = K copies of naive on fresh draws.
    A few samples have no object (found false)."""
    plan = [("naive", "", 0.0)]
    if "overprompt" in methods:
        plan += [("overprompt", f"offset={o:g}", 250.0 + 3000.0 * o) for o in OFFSETS]
    if "null" in methods:
        plan += [("null", f"k={k}", 0.0) for k in range(1, 6)]
    rows = []
    for step in steps:
        for cell in spec.cells:
            name, held = spec.cell_name(cell), spec.is_held_out(cell)
            target = dict(zip(spec.names, (int(v) for v in cell)))
            for method, setting, shift in plan if held else plan[:1]:
                for probe in range(probes):
                    if held:  # colour starts wrong (memorised as red), size at chance
                        q = {"color": _sigmoid((step - (t_color - shift)) / 180.0),
                             "size": 0.5 + 0.5 * _sigmoid((step - t_size) / 150.0)}
                    else:  # training cells: chance, then right
                        q = {c: 0.5 + 0.5 * _sigmoid((step - t_train) / 150.0) for c in spec.names}
                    p = {}
                    for c in spec.names:
                        right = rng.random() < q.get(c, 0.9)
                        side = 0.5 + 0.5 * rng.random() ** 0.2  # (0.5, 1]: mostly sure of the value index 1
                        p[c] = float(side if right == bool(target[c]) else 1.0 - side)
                    rows.append({"step": step, "cell": name, "held_out": held, "probe": probe,
                                 "seed": 100000 + probe + (1000 * len(rows) if method == "null" else 0),
                                 "readout": "analytic", "method": method, "setting": setting, "p": p, "coords": p,
                                 "target": target, "found": bool(rng.random() > 0.02)})
    return rows


def fabricate_run(run_dir, *, seed=0, sep_col=0.4, sep_size=0.4, methods=("overprompt", "null"), steps=STEPS,
                  probes=64, t_color=None, t_size=600.0, t_train=500.0, samples=True):
    """A finished shapes run dir with tracker rows (and probe-sample grids): what `train` + `elicit` leave."""
    rng = np.random.default_rng(seed)
    if t_color is None:  # weaker colour signal: later colour learning (F1), a little seed noise
        t_color = 2000.0 - 6000.0 * (sep_col - 0.3) + 1500.0 * (sep_size - 0.4) + rng.normal(0, 100)
    shapes = ShapesConfig(sep_col=sep_col, sep_size=sep_size)
    run_dir.mkdir(parents=True)
    data = {"source": "shapes", "concepts": ["color", "size"], "held_out": [["blue", "small"]], "sep_col": sep_col,
            "sep_size": sep_size, "sep_bg": 0.4, "image_size": 32, "mode": "finite", "per_cell": 2048}
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"name": "fab", "seed": seed, "data": data,
                                                         "train": {"steps": steps[-1]}}))
    (run_dir / "concept_spec.json").write_text(json.dumps(shapes.spec.to_dict()))
    (run_dir / "status.json").write_text(json.dumps({"state": "done", "step": steps[-1], "total_steps": steps[-1],
                                                     "error": None}))
    append_rows(run_dir / "tracker" / "rows.jsonl",
                fabricate_rows(shapes.spec, rng=rng, steps=steps, probes=probes, t_color=t_color, t_size=t_size,
                               t_train=t_train, methods=methods))
    if samples:
        folder = run_dir / "tracker" / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        for i, step in enumerate(steps):  # 4 rows (cells) of 8 tiles, like the tracker's grid
            tiles = rng.integers(0, 255, (4 * 17 + 1, 8 * 17 + 1, 3), dtype=np.uint8) // (1 + i // 3)
            Image.fromarray(tiles).save(folder / f"step_{step:06d}.png")
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{'full': a run with naive, overprompt and null rows, 'naive': naive rows only} and their summaries."""
    from conceptspace.analysis.rundir import summarise_run

    root = tmp_path_factory.mktemp("figs")
    full = fabricate_run(root / "full")
    naive = fabricate_run(root / "naive", methods=(), samples=False)
    return {"full": (full, summarise_run(full)), "naive": (naive, summarise_run(naive))}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A small Δcolor × Δsize sweep, 3 seeds per condition, fewer snapshots and probes (fast)."""
    from conceptspace.analysis.conditions import group_conditions, summarise_condition
    from conceptspace.analysis.rundir import summarise_run

    root = tmp_path_factory.mktemp("sweep")
    summaries = []
    for sep_col in (0.2, 0.3, 0.4):
        for sep_size in (0.3, 0.4):
            for seed in range(3):
                run = fabricate_run(root / f"c{sep_col}_s{sep_size}_{seed}", seed=seed, sep_col=sep_col,
                                    sep_size=sep_size, steps=STEPS[::3], probes=8, samples=False)
                summaries.append(summarise_run(run))
    conditions = [summarise_condition(g) | {"runs": g} for g in group_conditions(summaries)]
    return summaries, conditions


def _check(fig, tmp_path, name):
    """The figure draws, has a title, and every visible axes with data is labelled."""
    from conceptspace.analysis import figures

    assert fig is not None
    image = figures.figure_to_uint8(fig)
    assert image.ndim == 3 and image.shape[2] == 3 and image.std() > 0
    assert fig.get_suptitle() or any(ax.get_title() for ax in fig.axes)
    for ax in fig.axes:
        if ax.get_visible() and ax.lines and ax.get_label() != "<colorbar>":
            assert ax.get_xlabel() and ax.get_ylabel(), (name, ax.get_title())
    path = figures.save_figure(fig, tmp_path / f"{name}.png")
    assert path.stat().st_size > 1000


@pytest.mark.parametrize("kind", ["full", "naive"])
def test_run_figures(runs, kind, tmp_path):
    from conceptspace.analysis import run_figures, sweep_figures

    run_dir, summary = runs[kind]
    spec, readout = summary["spec"], summary["readout"]
    conv = summary["convergence"]["corners"]
    _check(run_figures.trajectory_figure(summary["stats"], spec, readout=readout,
                                         convergence_step=None if conv[1] else conv[0]), tmp_path, "trajectory")
    _check(run_figures.elicitation_figure(summary, ["blue-small"]), tmp_path, "elicitation")
    _check(run_figures.accuracy_figure(summary["stats"], spec, readout=readout), tmp_path, "accuracy")
    cond = __import__("conceptspace.analysis.conditions", fromlist=["x"]).summarise_condition([summary])
    _check(sweep_figures.hidden_capability_figure([cond | {"runs": [summary]}]), tmp_path, "hidden")
    _check(sweep_figures.condition_trajectories_figure([cond | {"runs": [summary]}]), tmp_path, "ctraj")
    strip = run_figures.sample_strip_figure(run_dir, {"training converged": conv[0]}, spec=spec)
    if kind == "full":
        _check(strip, tmp_path, "strip")
    else:
        assert strip is None  # no sample grids


def test_elicitation_figure_shows_split_max_and_per_setting_curves(runs):
    from conceptspace.analysis import figures, run_figures

    _, summary = runs["full"]
    fig = run_figures.elicitation_figure(summary, ["blue-small"])
    main, per_setting = fig.axes[:2]
    labels = main.get_legend().get_texts()
    text = " ".join(t.get_text() for t in labels)
    assert "naive prompting" in text and "chosen on even probes" in text and "max over settings" in text
    assert "null" in text and "overprompt" in text
    grey = [ln for ln in main.lines if ln.get_label().startswith("null")]
    assert grey and all(ln.get_color() == figures.METHOD_COLOURS["null"] for ln in grey)
    settings = [t.get_text() for t in per_setting.get_legend().get_texts()]
    assert sum(s.startswith("offset=") for s in settings) == len(OFFSETS)
    assert any("selected" in s for s in settings)
    assert any(abs(ln.get_ydata()[0] - 0.8) < 1e-9 for ln in main.lines if len(ln.get_ydata()) == 2)  # threshold
    fig_naive = run_figures.elicitation_figure(runs["naive"][1], ["blue-small"])
    assert len([a for a in fig_naive.axes if a.get_visible()]) == 1  # no per-setting panel without settings


def test_sweep_figures(sweep, tmp_path):
    from conceptspace.analysis import claim_figures, claims, figures, sweep_figures

    summaries, conditions = sweep
    assert len(conditions) == 6 and all(c["n_seeds"] == 3 for c in conditions)
    fig = sweep_figures.hidden_capability_figure(conditions)
    _check(fig, tmp_path, "hidden")
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert all("3 seeds" in t and "Δcolor" in t for t in titles)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "overprompt (split-half setting per seed)" in legend and not any(x.startswith("null (") for x in legend)
    fig = sweep_figures.condition_trajectories_figure(conditions)
    assert "3 seeds" in fig.get_suptitle()
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    _check(fig, tmp_path, "ctraj")
    trends = claims.f1_trends(summaries)
    fig = claim_figures.f1_figure(summaries, trends)
    text = " ".join(t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts())
    assert "ρ" in text and "crossed only" in text
    assert sum(1 for ax in fig.axes if ax.images) >= 1  # the (Δcolor, Δsize) heat map
    _check(fig, tmp_path, "f1")
    points = claims.f4_points(summaries)
    fig = claim_figures.f4_figure(points, claims.f4_trend(points))
    assert "ρ" in fig.axes[0].get_title()
    assert fig.axes[0].get_title() == claim_figures.f4_figure(points, None).axes[0].get_title()  # trend computed
    _check(fig, tmp_path, "f4")
    # degenerate inputs draw a message, not an exception
    for fig in (claim_figures.f1_figure([], []), claim_figures.f4_figure([], {}),
                sweep_figures.hidden_capability_figure([]), sweep_figures.condition_trajectories_figure([])):
        figures.figure_to_uint8(fig)


def test_sample_steps_skip_the_first_frame_and_keep_the_last():
    from conceptspace.analysis.run_figures import choose_sample_steps

    avail = [50, 100, 200, 400, 800]
    chosen = choose_sample_steps(avail, {"training converged": 150, "turn": None, "naive T": 10})
    assert 50 not in chosen and 800 in chosen and chosen[200] == ["training converged"]
    assert chosen[100] == ["naive T"]  # snapped to the first snapshot at or after it, never the first frame
    assert list(choose_sample_steps(avail, {})) == [100, 200, 800]  # mid-run frames up to 3
    assert list(choose_sample_steps([50], {})) == [50]


def test_report_says_what_the_run_shows(runs):
    from conceptspace.analysis.report import build_report
    from conceptspace.analysis.rundir import headline

    run_dir, summary = runs["full"]
    out = build_report(run_dir)
    page = out.read_text()
    first = headline(summary)[0]
    assert first.split(";")[0] in page
    assert page.index("What this run shows") < page.index("<img")
    assert page.index("Hidden capability") < page.index("Concept space")  # the first screen shows the phenomenon
    assert "Elicitation leads" in page and "split-half" in page and "max over settings" in page
    assert "Wilson ± at 0.8" in page and "probes / half" in page and "offset=" in page
    assert "null control" in page and "consistent with 0" in page
    assert "Learning times" in page and "notebook" in page and "Memorisation" in page
    assert "src=\"http" not in page and page.count("data:image/png;base64") >= 3  # self-contained
    naive_out = build_report(runs["naive"][0]).read_text()
    assert "no elicitation rows" in naive_out


def test_report_cli_help_and_errors(run_cli, tmp_path):
    code, out, _ = run_cli("report", "--help")
    assert code == 0 and "RUN_DIR" in out
    code, _, err = run_cli("report")
    assert code == 2 and err.count("\n") == 1 and "usage" in err
    code, _, err = run_cli("report", str(tmp_path / "missing"))
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err


def test_naive_vs_elicited_samples_show_the_step_of_the_largest_gain(runs):
    """The report's first-screen picture: the held-out cell's naive probe row (its row of the tracker grid)
    above the split-chosen over-prompt's grid (elicit/samples/), at the snapshot where the smoothed joint
    accuracy of the over-prompt beats naive prompting most."""
    from conceptspace.analysis import run_figures
    from conceptspace.analysis.curves import curve
    from conceptspace.elicit.command import grid_path

    run_dir, summary = runs["full"]
    setting = summary["leads"]["blue-small"]["overprompt"]["split"].setting
    blue = np.zeros((17, 8 * 17 + 1, 3), np.uint8)
    blue[..., 2] = 200
    for step in STEPS:
        path = grid_path(run_dir, step, "blue-small", "overprompt", setting)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(blue).save(path)
    step, method, rows = run_figures.contrast_rows(run_dir, summary, "blue-small")
    stats, readout = summary["stats"], summary["readout"]
    naive = curve(stats, "blue-small", readout=readout).smoothed()[0]
    elicited = curve(stats, "blue-small", readout=readout, method="overprompt", setting=setting).smoothed()[0]
    assert method == "overprompt" and step == STEPS[int(np.argmax(elicited - naive))]
    labels = [label.split(":")[0] for label, _ in rows]
    assert labels == ["naive prompt", f"overprompt {setting} (chosen on the even probes)"]
    with Image.open(run_dir / "tracker" / "samples" / f"step_{step:06d}.png") as grid:
        tracker = np.asarray(grid.convert("RGB"))
    held_row = [summary["spec"].cell_name(c) for c in summary["spec"].cells].index("blue-small")
    pitch = tracker.shape[0] // 4
    assert np.array_equal(rows[0][1], tracker[held_row * pitch:(held_row + 1) * pitch])
    assert np.array_equal(rows[1][1], blue)
    assert "where overprompt beats naive" in run_figures.contrast_figure(run_dir, summary, "blue-small").get_suptitle()
    assert run_figures.contrast_figure(runs["naive"][0], runs["naive"][1], "blue-small") is None
    for step in STEPS:  # without the elicited grids there is nothing to set beside the naive row
        grid_path(run_dir, step, "blue-small", "overprompt", setting).unlink()
    assert len(run_figures.contrast_rows(run_dir, summary, "blue-small")[2]) == 1
    assert run_figures.contrast_figure(run_dir, summary, "blue-small") is None
