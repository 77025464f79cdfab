"""``TrainConfig``: every setting of a training run, saved with each checkpoint.

A run is reproducible from its config alone: the same config on the same
backend gives the same parameters, bit for bit.
"""
from dataclasses import asdict, dataclass, fields


@dataclass
class TrainConfig:
    """Settings of one training run (defaults: a small SE net on the embedded data).

    model           a name from ``sn.models.names()``
    data            ``synthetic``, ``synthetic:SEED``, ``cifar10:DIR`` ... (see data/registry.py)
    epochs          passes over the training set
    batch_size      images per SGD step
    lr              peak learning rate (before the schedule's factor)
    momentum, nesterov, weight_decay   SGD settings (PyTorch's rule, see optim/sgd.py)
    no_decay_bn_bias   exempt BatchNorm and bias parameters from weight decay
    schedule        ``cosine``, ``step`` or ``constant``
    schedule_unit   ``iteration`` (lr changes every batch) or ``epoch`` (between epochs)
    warmup          linear warm-up length, in ``schedule_unit``s (0: none)
    reduction       SE reduction ratio r (None: the model's default; SE models only)
    augment         random crop + flip; None means "on for CIFAR, off otherwise"
    backend         ``numpy``, ``numba`` or ``cuda``
    seed            seeds the model's initialisation and the data order/augmentation
    dtype           ``float32`` or ``float64``
    train_limit, test_limit   use only the first N images of each split (quick runs)
    """

    model: str = "se_tiny_resnet"
    data: str = "synthetic"
    epochs: int = 6
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    no_decay_bn_bias: bool = True
    schedule: str = "cosine"
    schedule_unit: str = "iteration"
    warmup: int = 0
    reduction: int = None
    augment: bool = None
    backend: str = "numpy"
    seed: int = 0
    dtype: str = "float32"
    train_limit: int = None
    test_limit: int = None

    def __post_init__(self):
        if int(self.epochs) < 0:
            raise ValueError(f"epochs: expected a non-negative integer, got {self.epochs}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {self.batch_size}")
        if not float(self.lr) >= 0:
            raise ValueError(f"lr: expected a non-negative number, got {self.lr}")
        if self.schedule_unit not in ("iteration", "epoch"):
            raise ValueError(f"schedule_unit: expected 'iteration' or 'epoch', "
                             f"got {self.schedule_unit!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype: expected 'float32' or 'float64', got {self.dtype!r}")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Build from a dict (e.g. a checkpoint's), refusing unknown keys."""
        known = {field.name for field in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"TrainConfig: unknown settings {sorted(unknown)}")
        return cls(**values)
