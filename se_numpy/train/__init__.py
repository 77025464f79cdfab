"""Training: the loop, checkpoints, and the train/evaluate/demo commands.

    from se_numpy.train import Trainer, TrainConfig
    history = Trainer(TrainConfig(model="se_resnet20", epochs=10), "runs/se20").fit()

See docs/training.md.
"""
from .checkpoint import load_checkpoint, read_meta, save_checkpoint
from .config import TrainConfig
from .run_lock import RunDirectoryBusy, RunDirectoryLock
from .trainer import CheckpointWriteError, Trainer, TrainingDiverged, build_model, evaluate

__all__ = ["Trainer", "TrainConfig", "TrainingDiverged", "CheckpointWriteError", "evaluate",
           "build_model", "save_checkpoint", "load_checkpoint", "read_meta",
           "RunDirectoryLock", "RunDirectoryBusy"]
