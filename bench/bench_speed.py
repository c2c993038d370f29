"""Training speed now against a landed baseline commit, one after the other on this machine (issue "Fast where
the researcher is"): the real loop (`bench_train.bench_training`, tracker off) of each setting, run in a fresh
process per (tree, setting) so neither import state nor thread pools leak between them.

    python bench/bench_speed.py                         # baseline 0998b58, in a git worktree under .cache/
    python bench/bench_speed.py --steps 20 --only paper_vdm
Prints one table: steps/s at the baseline and now, their ratio, and the authors' figure where there is one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch
from child import ROOT, run_child

from conceptspace.devices import native_bf16

# name -> (overrides valid at both commits, the authors' training step in steps/s or None). The authors' figure
# was measured on the machine (2-core Intel Xeon with AMX), not necessarily this one: shown, not divided.
SETTINGS = {
    "paper_vdm": (["experiment=paper_vdm", "train.batch_size=64", "train.precision=fp32"], 0.54),
    "paper_ddpm": (["model=paper", "train.batch_size=64", "train.precision=fp32"], 0.54),
    "laptop": (["experiment=laptop", "train.precision=fp32"], None),
}
CHILD = """
import json, sys
sys.path[:0] = [{tree!r}, {bench!r}]
from bench_train import bench_training
print("RESULT " + json.dumps(bench_training({overrides!r} + ["data.per_cell=256"], {steps})))
"""


def worktree(commit: str) -> Path:
    path = ROOT / ".cache" / f"bench-{commit}"
    if not path.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit], check=True,
                       capture_output=True)
    return path


def measure(tree: Path, overrides: list[str], steps: int) -> float:
    code = CHILD.format(tree=str(tree), bench=str(ROOT / "bench"), overrides=overrides, steps=steps)
    return run_child(code, f"{tree.name}: {' '.join(overrides)}", cwd=tree)["steps_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default="0998b58")
    parser.add_argument("--steps", type=int, default=30, help="per paper-scale setting; the laptop runs 5x")
    parser.add_argument("--only", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    base = worktree(args.baseline)
    rows = []
    for name in args.only:
        overrides, authors = SETTINGS[name]
        steps = args.steps * (5 if name == "laptop" else 1)
        before, after = measure(base, overrides, steps), measure(ROOT, overrides, steps)
        rows.append((name, before, after, authors))
        print(f"measured {name}: {before:.3f} -> {after:.3f} steps/s", file=sys.stderr, flush=True)
    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    print(f"cpu {caps.get('cpu_name', '?')}, {torch.get_num_threads()} threads, native bf16 "
          f"{native_bf16(torch.device('cpu'))}; torch {torch.__version__}; 32x32 "
          f"(laptop: its preset's 16x16), batch 64, fp32, tracker off")
    print(f"{'setting':12s} {'@' + args.baseline:>12s} {'now':>10s} {'now/base':>9s} {'authors (issue machine)':>24s}")
    for name, before, after, authors in rows:
        print(f"{name:12s} {before:12.3f} {after:10.3f} {after / before:9.2f} {authors if authors else '':>24}")


if __name__ == "__main__":
    main()
