"""`hydra/launcher=ensemble`: a multirun's training jobs grouped into ensembles, each trained in one process.

    conceptspace train -m experiment=laptop/grid hydra/launcher=ensemble hydra.launcher.members=6

Jobs whose shapes agree (`ensemble.SHARED`: network, image size, batch size, formulation, precision, device)
share a group, in sweep order, at most `members` per ensemble; the launcher prints one line saying how the
sweep was grouped. Every job is composed and validated before any trains. Each member writes the run dir
the basic launcher would have given its job (same `hydra.sweep.dir/subdir`, same `.hydra/` files), so
rerunning the command resumes and the downstream verbs see ordinary runs.

`backend`: `local` trains the ensembles one after the other in this process; `submitit_local` and
`submitit_slurm` submit one job per ensemble through submitit (`submitit: {...}` goes to the executor's
`update_parameters`, e.g. timeout_min, partition, gpus_per_node) and wait for them.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

from omegaconf import OmegaConf, open_dict, read_write

from .errors import UserError

BACKENDS = ("local", "submitit_local", "submitit_slurm")
MEMBERS = 8  # hydra.launcher.members when the command does not set it


def group_jobs(cfgs: list, members: int) -> list[list[int]]:
    """Job indices per ensemble: equal `group_key`s together in sweep order, chunks of at most `members`."""
    from .ensemble import group_key

    by_key: dict[str, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        by_key.setdefault(group_key(cfg), []).append(i)
    return [idx[i:i + members] for idx in by_key.values() for i in range(0, len(idx), members)]


def describe(groups: list[list[int]], shapes: int) -> str:
    sizes = [len(g) for g in groups]
    return (f"ensemble launcher: {sum(sizes)} jobs -> {len(groups)} ensemble{'s' if len(groups) != 1 else ''} "
            f"of {'+'.join(map(str, sizes))} members ({shapes} distinct shape{'s' if shapes != 1 else ''})")


def check_launcher(members, strategy, backend) -> None:
    from .ensemble import check_strategy

    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise UserError(f"hydra.launcher.members: got {members!r}; allowed: an integer >= 1")
    check_strategy(strategy)
    if backend not in BACKENDS:
        raise UserError(f"hydra.launcher.backend: got {backend!r}; allowed: {list(BACKENDS)}")


def job_configs(hydra_context, config, job_overrides, initial_job_idx: int):
    """(task config, output dir, hydra config) per job, resolved the way hydra's run_job resolves them."""
    from hydra.core.hydra_config import HydraConfig

    out = []
    for idx, overrides in enumerate(job_overrides):
        sweep = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(sweep):
            sweep.hydra.job.id = sweep.hydra.job.num = initial_job_idx + idx
        HydraConfig.instance().set_config(sweep)
        out_dir = Path(str(sweep.hydra.sweep.dir)) / str(sweep.hydra.sweep.subdir)
        with read_write(sweep.hydra.runtime):
            sweep.hydra.runtime.output_dir = str(out_dir.absolute())
        HydraConfig.instance().set_config(sweep)
        task = copy.deepcopy(sweep)
        with read_write(task), open_dict(task):
            del task["hydra"]
        out.append((task, out_dir, copy.deepcopy(HydraConfig.instance().cfg), list(overrides)))
    return out


def save_hydra_files(out_dir: Path, task_cfg, hydra_cfg, overrides: list[str]) -> None:
    """The `.hydra/` folder the basic launcher writes into every job dir."""
    from .checkpoint import atomic_write_text

    folder = out_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "config.yaml", OmegaConf.to_yaml(task_cfg), fault="run_files")
    atomic_write_text(folder / "hydra.yaml", OmegaConf.to_yaml(hydra_cfg), fault="run_files")
    atomic_write_text(folder / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(overrides)), fault="run_files")


def train_group(cfgs: list, out_dirs: list[Path], strategy: str) -> list[dict]:
    from .devices import configure_threads
    from .train import train_ensemble

    configure_threads()
    return train_ensemble(cfgs, out_dirs, strategy)


def launch(hydra_context, config, job_overrides, initial_job_idx: int, members: int, strategy: str, backend: str,
           submitit_params: dict) -> list:
    """Compose, validate and group every job, then train the ensembles; one JobReturn per job, in order."""
    from hydra.core.utils import JobReturn, JobStatus

    from .validate import validate

    try:
        check_launcher(members, strategy, backend)
        jobs = job_configs(hydra_context, config, job_overrides, initial_job_idx)
        for i, (cfg, *_rest, overrides) in enumerate(jobs):
            try:
                validate("train", cfg)
            except UserError as e:
                raise UserError(f"job {i} ({' '.join(overrides)}): {e}") from None
        cfgs = [j[0] for j in jobs]
        groups = group_jobs(cfgs, members)
        from .ensemble import group_key

        print(describe(groups, len({group_key(c) for c in cfgs})), flush=True)
        for cfg, out_dir, hydra_cfg, overrides in jobs:
            save_hydra_files(out_dir, cfg, hydra_cfg, overrides)
        results = run_groups(groups, jobs, strategy, backend, submitit_params, Path(str(config.hydra.sweep.dir)))
    except UserError as e:
        print(f"conceptspace train: error: {e}", file=sys.stderr)
        sys.exit(2)
    returns = []
    for (cfg, _out_dir, hydra_cfg, overrides), result in zip(jobs, results):
        ret = JobReturn(overrides=overrides, cfg=cfg, hydra_cfg=hydra_cfg, working_dir=str(Path.cwd()),
                        task_name="train", status=JobStatus.COMPLETED)
        ret.return_value = result
        returns.append(ret)
    return returns


def run_groups(groups, jobs, strategy, backend, submitit_params, sweep_dir: Path) -> list:
    """Train each ensemble (here, or as one submitit job each); the per-job results in job order."""
    results: list = [None] * len(jobs)
    pending, failures = [], []
    for group in groups:
        cfgs, dirs = [jobs[i][0] for i in group], [jobs[i][1] for i in group]
        if backend == "local":
            try:
                for i, r in zip(group, train_group(cfgs, dirs, strategy)):
                    results[i] = r
            except UserError as e:  # a diverged member: the sweep's other ensembles still train (as basic's jobs)
                print(f"conceptspace train: ensemble of jobs {group}: {e}", file=sys.stderr, flush=True)
                failures.append(f"jobs {group}")
            continue
        import submitit

        executor = submitit.AutoExecutor(folder=str(sweep_dir / ".submitit" / "%j"),
                                         cluster="local" if backend == "submitit_local" else "slurm")
        executor.update_parameters(**submitit_params)
        pending.append((group, executor.submit(train_group, cfgs, dirs, strategy)))
    for group, job in pending:
        try:
            out = job.result()
        except Exception as e:  # noqa: BLE001 (the job's own error, in one line)
            last = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            print(f"conceptspace train: ensemble of jobs {group} (submitit job {job.job_id}): {last}",
                  file=sys.stderr, flush=True)
            failures.append(f"jobs {group}")
            continue
        for i, r in zip(group, out):
            results[i] = r
    if failures:
        raise UserError(f"{len(failures)} of {len(groups)} ensembles failed ({', '.join(failures)}); the other "
                        "runs finished, and rerunning the command resumes the failed ones")
    return results
