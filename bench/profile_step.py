"""Where a training step's time goes (torch.profiler over the real loss, backward and AdamW step of a preset),
grouped into a few kinds of operator, then the top operators themselves.

    python bench/profile_step.py                                  # experiment=laptop/hidden_capability
    python bench/profile_step.py experiment=paper_vdm train.batch_size=64 --steps 3
    python bench/profile_step.py experiment=laptop/hidden_capability train.precision=bf16
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from conceptspace.config import compose
from conceptspace.data import build_source
from conceptspace.devices import use_bf16
from conceptspace.diffusion import build_process
from conceptspace.member import step_generator
from conceptspace.model import build_model

KINDS = {  # substring of the aten operator name -> kind (first match wins): "conv" covers mkldnn_convolution
    # and convolution_backward, "mm" covers addmm and bmm
    "conv": "convolution (fwd+bwd)", "native_group_norm": "group norm", "mm": "linear / matmul",
    "_foreach": "optimizer (AdamW)", "adam": "optimizer (AdamW)", "silu": "activation", "gelu": "activation",
    "upsample": "resampling",
}


def kind_of(name: str) -> str:
    return next((k for key, k in KINDS.items() if key in name), "other (elementwise, copies, ...)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("overrides", nargs="*", default=["experiment=laptop/hidden_capability"])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    cfg = compose(["logger=none", "tracker.enabled=false", "data.per_cell=256", *args.overrides])
    source = build_source(cfg.data, cfg.seed)
    model = build_model(cfg.model, source.spec, source.image_size)
    process = build_process(cfg.diffusion)
    params = [*model.parameters(), *process.parameters()]
    optimizer = torch.optim.AdamW(params, lr=cfg.train.lr, fused=True)  # as the run's (member.Member)
    autocast = use_bf16(cfg.train.precision, torch.device("cpu"), cfg.diffusion.name)

    def step(i: int) -> None:
        with record_function("phase: data"):
            images, vectors = source.train_batch(i, cfg.train.batch_size)
        with record_function("phase: forward + loss"), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            loss = process.loss(model, images, vectors, step_generator(cfg.seed, i, torch.device("cpu")), None)
        with record_function("phase: backward"):
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        with record_function("phase: clip + AdamW"):
            torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip or float("inf"))
            optimizer.step()

    for i in range(2):  # warm-up: allocator, oneDNN primitive caches
        step(i)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(2, 2 + args.steps):
            step(i)
    averages = prof.key_averages()
    phases = {e.key: e.cpu_time_total for e in averages if e.key.startswith("phase: ")}
    events = [e for e in averages if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events)
    kinds: dict[str, float] = defaultdict(float)
    for e in events:
        kinds[kind_of(e.key)] += e.self_cpu_time_total
    print(f"{' '.join(args.overrides)}: {args.steps} steps, batch {cfg.train.batch_size}, {cfg.data.image_size}px, "
          f"{torch.get_num_threads()} threads, {'bf16 autocast' if autocast else 'fp32'}; "
          f"{total / 1e3 / args.steps:.1f} ms of aten self time per step")
    wall = sum(phases.values())
    print(f"{'phase (wall, inclusive)':36s} {'share':>7s} {'ms/step':>8s}")
    for name, t in phases.items():
        print(f"{name[7:]:36s} {t / wall:7.1%} {t / 1e3 / args.steps:8.1f}")
    print(f"\n{'kind of operator (self time)':36s} {'share':>7s}")
    for name, t in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"{name:36s} {t / total:7.1%}")
    print(f"\n{'top operators (self time)':36s} {'share':>7s}")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:10]:
        print(f"{e.key[:36]:36s} {e.self_cpu_time_total / total:7.1%}")


if __name__ == "__main__":
    main()
