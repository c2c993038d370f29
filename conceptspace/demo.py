"""`make demo`: the main job on the CPU default, as the commands a user would type:
render the 2x2 data -> train the tiny preset (tracking every snapshot) -> elicit -> report."""

from __future__ import annotations

import sys
import time

from .cli import main as cli

RUN_DIR = "runs/demo"
# 16 probes per half (the tracker's 16 reused for naive); the paper's three bluest prompts and a null control
# of as many settings; one latent-intervention setting: about 2 min on 2 cores. The laptop F3 sweep uses the same.
ELICIT = ("n_probes=32", "null.settings=3", "overprompt.offsets=[0.25,0.35,0.45]", "intervention.alphas=[1.0]")


def run(*argv: str) -> None:
    print(f"\n$ conceptspace {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    code = cli(list(argv))
    print(f"({time.perf_counter() - start:.0f} s)", flush=True)
    if code:
        sys.exit(code)


def main() -> None:
    run("render", "hydra.run.dir=runs/demo_render")
    run("train", "experiment=demo")  # run dir: runs/demo (rerunning resumes / finds it complete)
    run("elicit", RUN_DIR, *ELICIT)
    run("report", RUN_DIR)
    print(f"\nopen {RUN_DIR}/report.html")


if __name__ == "__main__":
    main()
