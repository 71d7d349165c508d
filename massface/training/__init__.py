"""Training: typed config, the DDP-aware trainer, schedules, checkpoints and the demo job.

Read in this order: ``config`` (the keys and their defaults) → ``builders`` (one factory per part, and
``MINING_MODES``: each mode's metric loss and batch source) → ``trainer`` (``Trainer.__init__`` builds,
``Trainer.fit`` loops) → ``batch_sources`` (where each mode's batches come from) → ``callbacks`` (metrics,
TensorBoard, console, checkpoints, evaluation) → ``distributed`` / ``checkpoint`` / ``schedules``.

Names are loaded lazily; importing ``massface.training`` starts no process group and builds nothing.
"""

from massface._lazy import lazy_exports

_EXPORTS = {
    "Config": "config",
    "ConfigError": "config",
    "load_config": "config",
    "Trainer": "trainer",
    "TrainingStopped": "trainer",
    "ExistingRunError": "trainer",
    "MINING_MODES": "builders",
    "gather_with_grad": "distributed",
    "init_distributed": "distributed",
    "CheckpointManager": "checkpoint",
    "build_scheduler": "schedules",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
