"""The elicitation summary of a run, from its rows: the table, the figure, the leads (elicit/summary.json)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..tracker.rows import read_rows


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
    logger.log_table("elicitation/lead", [{"cell_method": k, **{f: str(v) for f, v in d.items()}}
                                          for k, d in summary["lead"].items()], step)
    logger.finish()


def summarise(run_dir: Path, spec, targets, threshold: float) -> dict:
    """Write elicit/elicitation.csv, elicit/accuracy.png and elicit/summary.json from the rows."""
    from .. import analysis, plots

    rows = read_rows(Path(run_dir) / "tracker" / "rows.jsonl")
    stats = analysis.cell_stats(rows, spec)
    readout = analysis.pick_readout(stats)
    out = Path(run_dir) / "elicit"
    out.mkdir(exist_ok=True)
    names = {spec.cell_name(c) for c in targets}
    with open(out / "elicitation.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "cell", "method", "setting", *[f"acc_{c}" for c in spec.names], "acc_joint"])
        for st in sorted(stats, key=lambda s: (s.step, s.cell, s.method, s.setting)):
            if st.readout == readout and st.cell in names:
                w.writerow([st.step, st.cell, st.method, st.setting, *[f"{st.accuracy[c]:.4f}" for c in spec.names],
                            f"{st.joint:.4f}"])
    methods = sorted({s.method for s in stats if s.cell in names and s.readout == readout})
    lead = {}
    for cell in names:
        naive = analysis.accuracy_curve(stats, cell, analysis.JOINT, readout=readout)
        for m in methods:
            if m != "naive":
                curve = analysis.best_setting_curve(stats, cell, analysis.JOINT, readout=readout, method=m)
                lead[f"{cell}/{m}"] = analysis.elicitation_lead(naive, curve, threshold)
    fig = plots.accuracy_figure(stats, spec, readout=readout, methods=tuple(methods),
                                title=f"held-out accuracy by method ({readout} readout)")
    plots.save_figure(fig, out / "accuracy.png")
    summary = {"readout": readout, "threshold": threshold, "lead": lead}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary
