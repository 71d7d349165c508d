"""Training: typed config, the DDP-aware trainer, schedules, checkpoints and the demo job.

Names are loaded lazily; importing ``massface.training`` starts no process group and builds nothing.
"""

from massface._lazy import lazy_exports

_EXPORTS = {
    "Config": "config",
    "ConfigError": "config",
    "load_config": "config",
    "Trainer": "trainer",
    "TrainingStopped": "trainer",
    "gather_with_grad": "distributed",
    "init_distributed": "distributed",
    "CheckpointManager": "checkpoint",
    "build_scheduler": "schedules",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
