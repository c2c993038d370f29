"""The elicitation summary of a run, from its rows: elicit/elicitation.csv (every step x method x setting,
with Wilson intervals), elicit/accuracy.png, and elicit/summary.json — the leads (split-half headline,
max-over-settings beside it) and the setting each method selected on the selection half (what `sample`
uses by default)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..analysis.curves import wilson, wilson_half_width
from ..analysis.rundir import summarise_run
from ..analysis.stats import JOINT
from ..checkpoint import atomic_write_text


def summarise(run_dir: Path, spec, targets, ecfg) -> dict:
    from ..analysis import figures, run_figures

    run = summarise_run(run_dir)
    stats, readout = run["stats"], run["readout"]
    out = Path(run_dir) / "elicit"
    out.mkdir(exist_ok=True)
    names = {spec.cell_name(c) for c in targets}
    table = io.StringIO()
    w = csv.writer(table)
    w.writerow(["step", "cell", "method", "setting", "n", "no_object", *[f"acc_{c}" for c in spec.names],
                "acc_joint", "joint_lo", "joint_hi"])
    for st in sorted(stats, key=lambda s: (s.step, s.cell, s.method, s.setting)):
        if st.readout == readout and st.cell in names:
            lo, hi = wilson(st.correct[JOINT], st.n)
            w.writerow([st.step, st.cell, st.method, st.setting, st.n, st.no_object,
                        *[f"{st.accuracy[c]:.4f}" for c in spec.names], f"{st.joint:.4f}", f"{lo:.4f}", f"{hi:.4f}"])
    atomic_write_text(out / "elicitation.csv", table.getvalue())
    leads = {f"{cell}/{m}": {est: x.to_dict() for est, x in ls.items()}
             for cell, by_method in run["leads"].items() if cell in names for m, ls in by_method.items()}
    selected = {f"{cell}/{m}": ls["split"].setting for cell, by_method in run["leads"].items() if cell in names
                for m, ls in by_method.items() if "split" in ls}
    per_half = min((s.n + 1) // 2 for s in stats if s.cell in names) if stats else 0
    fig = run_figures.elicitation_figure(run, cells=sorted(names))
    figures.save_figure(fig, out / "accuracy.png")
    summary = {"readout": readout, "rule": "paper (smoothed joint accuracy ≥ 0.8, σ = 2 snapshots)",
               "probes_per_half": per_half, "half_width_at_0.8": round(wilson_half_width(0.8, per_half), 3)
               if per_half else None, "lead": leads, "selected": selected}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=str))
    return summary


def log_to_wandb(run_cfg, run_dir: Path, summary: dict) -> None:
    """The elicitation plot and lead table into the run's own W&B run (when it had one)."""
    import numpy as np
    from PIL import Image

    from ..logger import reopen

    logger = reopen(run_cfg, run_dir)
    if not logger.takes_images:
        return
    step = run_cfg.train.steps
    logger.log_images({"elicitation/accuracy": np.asarray(Image.open(Path(run_dir) / "elicit" / "accuracy.png")
                                                         .convert("RGB"))}, step)
    logger.log_table("elicitation/lead", [{"cell_method": k, "estimate": est, "setting": str(d.get("setting")),
                                           "lead": str(d.get("lead")), "bound": d.get("bound")}
                                          for k, by_est in summary["lead"].items() for est, d in by_est.items()],
                     step)
    logger.finish()
