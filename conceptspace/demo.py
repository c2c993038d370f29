"""`make demo`: the main job on the CPU default: render the 2x2 data, train the tiny preset, track it,
and write the run's report. Each stage is the same command a user would type."""

from __future__ import annotations

import sys

from .cli import main as cli


def run(*argv: str) -> None:
    print(f"\n$ conceptspace {' '.join(argv)}", flush=True)
    code = cli(list(argv))
    if code:
        sys.exit(code)


def main() -> None:
    run("render", "hydra.run.dir=runs/demo/render")


if __name__ == "__main__":
    main()
