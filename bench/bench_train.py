"""Training and tracking throughput of the real loop (`conceptspace.train.train`, tracker off), read from
the run's own metrics.jsonl, and the tracker's sampling throughput (all cells x probes x 50 steps).

    python bench/bench_train.py                   # tiny on the CPU, paper on a GPU if there is one
    python bench/bench_train.py --preset paper --steps 300 --batch 64
Prints a table. Targets live in the issues: paper preset on an H100 >= 130 steps/s at batch 64.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from conceptspace.config import compose
from conceptspace.devices import resolve_device, use_bf16
from conceptspace.diffusion import build_process
from conceptspace.model import build_model, count_parameters
from conceptspace.sampling import sample
from conceptspace.tracker.probes import ProbeSet
from conceptspace.train import train


def bench_training(overrides: list[str], steps: int) -> dict:
    cfg = compose(["logger=none", "tracker.enabled=false", f"train.steps={steps}", f"train.log_every={steps // 2}",
                   "train.snapshots.count=1", f"train.snapshots.start={steps}", f"train.checkpoint_every={steps}",
                   *overrides])
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, Path(tmp))
        lines = [json.loads(x) for x in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    rate = lines[-1]["steps_per_s"]  # the second half of the run: warm-up excluded
    return {"steps_per_s": rate, "img_per_s": rate * cfg.train.batch_size}


def bench_sampling(overrides: list[str], n_probes: int, sample_steps: int) -> dict:
    cfg = compose(overrides)
    device = resolve_device(cfg.device)
    from synthetic_shapes import ShapesConfig

    spec = ShapesConfig.from_cfg(cfg.data).spec
    model = build_model(cfg.model, spec, cfg.data.image_size).to(device)
    process = build_process(cfg.diffusion)
    probes = ProbeSet.build(spec, n_probes, 0)
    autocast = use_bf16(cfg.train.precision, device, cfg.diffusion.name)  # as the run's tracker
    run = lambda: sample(model, process, probes.vectors(), probes.seeds, steps=sample_steps,  # noqa: E731
                         batch_size=cfg.tracker.batch_size, autocast=autocast)
    run()
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    return {"images": len(probes.seeds), "seconds": seconds, "params_M": count_parameters(model) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="paper" if torch.cuda.is_available() else "tiny")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--probes", type=int, default=32)
    parser.add_argument("--sample-steps", type=int, default=50)
    args = parser.parse_args()
    overrides = [f"model={args.preset}", f"train.batch_size={args.batch}"]
    t = bench_training(overrides, args.steps)
    s = bench_sampling(overrides, args.probes, args.sample_steps)
    device = "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu x{torch.get_num_threads()}"
    cfg = compose(overrides)
    bf16 = use_bf16(cfg.train.precision, resolve_device(cfg.device), cfg.diffusion.name)
    print(f"device {device}; torch {torch.__version__}; preset {args.preset} ({s['params_M']:.2f}M params); "
          f"32x32, batch {args.batch}; {'bf16 autocast' if bf16 else 'fp32'} (train.precision={cfg.train.precision})")
    print(f"{'what':44s} {'value':>12s}")
    print(f"{'train steps/s (real loop, tracker off)':44s} {t['steps_per_s']:12.2f}")
    print(f"{'train images/s':44s} {t['img_per_s']:12.1f}")
    label = f"tracker sampling: 4 cells x {args.probes} probes x {args.sample_steps} steps, s"
    print(f"{label:44s} {s['seconds']:12.2f}")


if __name__ == "__main__":
    main()
