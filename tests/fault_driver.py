"""Run by test_faults.py in its own process: kill a tiny training run at every write point in turn and
rerun it after each kill, plus an uninterrupted run beside it.

Each attempt runs in a forked child that ends with os._exit at the fault point (a real process exit, no
cleanup, no exception handling), so the driver only composes configs and forks: it never starts torch's
thread pool itself, which keeps the children fork-safe. Prints one JSON line: the exit code per attempt.

    python -m tests.fault_driver ddpm|vdm OUT_DIR     training, killed at every write point
    python -m tests.fault_driver verbs OUT_DIR        elicit, report and sample, killed at their writes
"""

import json
import os
import sys
import traceback
from pathlib import Path

from conceptspace import faults
from tests.helpers import fast_cfg

# (point, n-th time in that process): every point, in an order in which each one is reached. Snapshots at
# steps 2, 5, 10; logs at 3, 6, 9, 10; checkpoints at 4, 8, 10: no two coincide except the last step.
CHAIN = [
    ("run_files.before_rename", 1), ("status.before_rename", 1), ("snapshot.after_config", 1),
    ("snapshot.after_weights", 1), ("snapshot.before_rename", 1), ("rows.mid_append", 1),
    ("grid.before_rename", 1), ("metrics.mid_append", 1), ("checkpoint.before_fsync", 1),
    ("checkpoint.before_rename", 1),
    ("rows.mid_append", 2),             # step 5, after the first checkpoint (step 4): torn rows past it
    ("truncate.before_rename", 1),      # the resume at step 4 cuts the rows and logs of steps 5+
    ("snapshot.after_config", 1),       # step 5 again: over a complete snapshot of the same step
    ("metrics.mid_append", 2),          # step 9, after the checkpoint at 8: a torn line past it
    ("checkpoint.before_rename", 1),    # the final checkpoint (step 10)
]
# The VDM differs from the DDPM only in what its snapshots and checkpoints carry (the learned schedule) and in
# restoring it on resume, so its chain kills at those writes only; rows, logs and grids are the DDPM chain's.
VDM_CHAIN = [
    ("snapshot.after_weights", 1),      # step 2: weights written, the schedule not yet
    ("snapshot.before_rename", 1),      # step 2 again, complete but not renamed
    ("checkpoint.before_rename", 1),    # step 4: no checkpoint yet, so every rerun so far started at 0
    ("rows.mid_append", 2),             # step 5, past the checkpoint at 4: torn rows
    ("truncate.before_rename", 1),      # the resume at step 4 (schedule restored) cuts the rows of steps 5+
    ("checkpoint.before_rename", 1),    # step 8, after that resume
]
CHAINS = {"ddpm": CHAIN, "vdm": VDM_CHAIN}
FORMULATIONS = {
    "ddpm": ["train.ema.enabled=true", "train.cfg_dropout=0.2"],
    "vdm": ["diffusion=vdm", "model.concept_conditioning=per_block", "train.lr=1e-3", "train.grad_clip=0.01"],
}


def config(formulation: str):
    return fast_cfg(*FORMULATIONS[formulation], "train.log_every=3", "train.batch_size=4", steps=10, snapshots=3,
                    checkpoint_every=4, tracker=True)


def in_child(fn) -> int:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn()
        except SystemExit as e:
            code = e.code or 0
        except BaseException:  # noqa: BLE001: reported through the exit code
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


# (verb arguments after RUN_DIR, points to kill at in turn): each verb's every kind of write
VERBS = {
    "elicit": (["n_probes=4", "methods=[naive,overprompt]", "overprompt.offsets=[0.25,0.45]"],
               [("rows.mid_append", 1), ("output.before_rename", 3)]),
    "report": ([], [("output.before_rename", 2)]),
    "sample": (["small blue", "--step", "all", "--n", "2"], [("output.before_rename", 4)]),
}


def verbs(out: Path) -> dict:
    """A trained run copied twice: in one, each verb runs once; in the other, it is killed at each point
    in turn and rerun."""
    import shutil

    from conceptspace.cli import main as cli
    from conceptspace.train import train

    codes = {"train": in_child(lambda: train(config("ddpm"), out / "run"))}
    for name in ("straight", "killed"):
        shutil.copytree(out / "run", out / name)
    for verb, (args, points) in VERBS.items():
        def call(where: str, argv=(verb, *args)):
            return in_child(lambda: sys.exit(cli([argv[0], str(out / where), *argv[1:]])))

        codes[f"{verb}:straight"] = call("straight")
        for point, nth in points:
            os.environ[faults.VARIABLE] = f"{point}@{nth}"
            codes[f"{verb}:{point}@{nth}"] = call("killed")
        os.environ.pop(faults.VARIABLE)
        codes[f"{verb}:final"] = call("killed")
    return codes


def preload() -> None:
    """Import what the children need (the driver runs no torch op, so forking stays safe): each child then
    spends its time on the writes, not on importing matplotlib, torchvision and diffusers again."""
    import conceptspace.analysis.report  # noqa: F401
    import conceptspace.elicit.command  # noqa: F401
    import conceptspace.readout  # noqa: F401
    import conceptspace.sample_command  # noqa: F401
    import conceptspace.tracker.track  # noqa: F401
    import conceptspace.train  # noqa: F401


def main(formulation: str, out: Path) -> None:
    preload()
    if formulation == "verbs":
        print(json.dumps(verbs(out)))
        return
    from conceptspace.train import train

    cfg = config(formulation)
    codes = {"straight": in_child(lambda: train(cfg, out / "straight"))}
    for i, (point, nth) in enumerate(CHAINS[formulation]):
        os.environ[faults.VARIABLE] = f"{point}@{nth}"
        codes[f"{i}:{point}@{nth}"] = in_child(lambda: train(cfg, out / "killed"))
    os.environ.pop(faults.VARIABLE)
    codes["final"] = in_child(lambda: train(cfg, out / "killed"))
    print(json.dumps(codes))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
