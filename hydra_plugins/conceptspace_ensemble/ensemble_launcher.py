"""Hydra's entry point for `hydra/launcher=ensemble` (plugins must live under `hydra_plugins`); the work is
in conceptspace.launcher. (No `from __future__ import annotations`: Hydra execs plugin modules
outside sys.modules, where a dataclass cannot resolve string annotations.)"""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher

from conceptspace.launcher import MEMBERS


@dataclass
class EnsembleLauncherConf:
    _target_: str = "hydra_plugins.conceptspace_ensemble.ensemble_launcher.EnsembleLauncher"
    members: int = MEMBERS     # runs per ensemble (one process each)
    strategy: str = "auto"     # auto (loop on a CPU, vmap on a GPU) | loop | vmap: conceptspace/ensemble.py
    backend: str = "local"     # local | submitit_local | submitit_slurm: one submitit job per ensemble
    submitit: Dict[str, Any] = field(default_factory=dict)  # executor.update_parameters(**submitit), e.g. timeout_min


ConfigStore.instance().store(group="hydra/launcher", name="ensemble", node=EnsembleLauncherConf,
                             provider="conceptspace")


class EnsembleLauncher(Launcher):
    def __init__(self, members: int = MEMBERS, strategy: str = "auto", backend: str = "local",
                 submitit: Optional[dict] = None) -> None:
        self.members, self.strategy, self.backend = members, strategy, backend
        self.submitit = dict(submitit or {})
        self.config = self.hydra_context = self.task_function = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[Any]:
        from conceptspace.launcher import launch

        return launch(self.hydra_context, self.config, job_overrides, initial_job_idx, self.members, self.strategy,
                      self.backend, self.submitit)
