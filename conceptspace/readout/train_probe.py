"""`conceptspace train-probe`: train the concept classifier that serves as the learned readout.

    conceptspace train-probe name=probe                         shapes (data=shapes_2x2 by default), all cells
    conceptspace train-probe name=probe data=shapes_2x2x2
    conceptspace train-probe name=probe data=celeba             the CelebA attribute classifier

(`name=probe` keeps the probe's run dir, runs/probe/<overrides>, apart from the diffusion runs.)

Shapes: every batch is a fresh render of random cells (held-out cells included) at class gaps drawn from
`probe.ranges`, so one probe reads every run of a Δ sweep. CelebA: `celeba.source.CelebASource.labelled`.
Validation: per-concept accuracy on clean renders over the `probe.eval` grid of gaps (shapes) or the valid
split (CelebA), printed as a table and written to RUN_DIR/probe_metrics.json. The probe is saved to
RUN_DIR/<probe.subdir> (config.json + safetensors, ConceptSpec inside). Reuse it in any run on the same
concepts by passing that folder as `tracker.probe_path=RUN_DIR/probe`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..devices import resolve_device
from .classifier import ConceptClassifier
from .probe_data import as_unit_float, build_probe_data
from .probe_settings import check_probe

EVAL_CHUNK = 1024


def check(cfg) -> None:
    """Validate the probe settings before anything is written (one-line UserError naming the field)."""
    check_probe(cfg)


def train_probe(cfg, out_dir: Path) -> dict:
    check(cfg)
    probe, out_dir, started = cfg.probe, Path(out_dir), time.time()
    device = resolve_device(str(cfg.device))
    torch.manual_seed(cfg.seed)
    data = build_probe_data(cfg.data, probe, cfg.seed, device)
    model = ConceptClassifier(spec=data.spec.to_dict(), channels=[int(c) for c in probe.channels],
                              norm_groups=int(probe.norm_groups)).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"train-probe: {n_params:,} parameters, concepts {data.spec.names}, {probe.steps} steps x batch "
          f"{probe.batch_size} on {device}")
    final_loss = fit(model, data, probe)
    rows = evaluate(model, data.validation_sets())
    worst = {n: min(r["accuracy"][n] for r in rows) for n in data.spec.names}
    passed = all(a >= probe.eval.min_accuracy for a in worst.values())
    print(format_table(rows, data.spec.names))
    print(f"probe check (every concept >= {probe.eval.min_accuracy} on every validation set): "
          f"{'PASS' if passed else 'FAIL'}")
    model_dir = out_dir / probe.subdir
    model.save_pretrained(model_dir)
    metrics = {
        "source": str(cfg.data.source), "concepts": data.spec.names, "parameters": n_params,
        "steps": int(probe.steps), "batch_size": int(probe.batch_size), "final_loss": final_loss,
        "validation": rows, "min_accuracy": worst, "passed": passed, "probe_path": str(model_dir),
        "seconds": round(time.time() - started, 1),
    }
    for folder in (out_dir, model_dir):  # the metrics travel with the probe when it is reused
        (folder / "probe_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"saved probe to {model_dir}  (use it with tracker.probe_path={model_dir})")
    return metrics


def fit(model: ConceptClassifier, data, probe) -> float:
    """AdamW on the sum of the per-concept cross-entropies (paper_setup.md §3.1). Returns the last loss."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(probe.lr), weight_decay=float(probe.weight_decay))
    model.train()
    running = None
    for step in range(int(probe.steps)):
        images, cells = data.batch(step, int(probe.batch_size))
        logits = model(images)
        loss = F.cross_entropy(logits.flatten(0, 1), cells.flatten(), reduction="sum") / len(images)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if probe.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(probe.grad_clip))
        optimizer.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if probe.log_every and (step + 1) % int(probe.log_every) == 0:
            print(f"  step {step + 1:>6d}  loss {running:.4f}", flush=True)
    model.eval()
    return float(running) if running is not None else float("nan")


@torch.no_grad()
def evaluate(model: ConceptClassifier, sets) -> list[dict]:
    """Per-concept accuracy ((p > 0.5) == value index) on each validation set."""
    names = model.spec.names
    device = next(model.parameters()).device
    rows = []
    for settings, images, cells in sets:
        p = torch.cat([model.probabilities(as_unit_float(chunk.to(device))) for chunk in images.split(EVAL_CHUNK)])
        correct = ((p > 0.5).long() == cells.to(device)).float().mean(0).tolist()
        rows.append({"settings": dict(settings), "n": len(images), "accuracy": dict(zip(names, correct))})
    return rows


def format_table(rows: list[dict], names: list[str]) -> str:
    keys = list(rows[0]["settings"]) if rows else []
    head = keys + ["n"] + [f"acc {n}" for n in names]
    lines = ["  ".join(f"{h:>10s}" for h in head)]
    for r in rows:
        cells = [f"{r['settings'][k]:>10}" if isinstance(r["settings"][k], str) else f"{r['settings'][k]:>10.3f}"
                 for k in keys]
        cells += [f"{r['n']:>10d}"] + [f"{r['accuracy'][n]:>10.4f}" for n in names]
        lines.append("  ".join(cells))
    worst = [f"{min(r['accuracy'][n] for r in rows):>10.4f}" for n in names] if rows else []
    lines.append("  ".join([f"{'min':>10s}"] + [" " * 10] * len(keys) + worst))
    return "\n".join(lines)
