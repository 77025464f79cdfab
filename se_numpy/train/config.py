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
        # every field is checked: a config also comes from a checkpoint's JSON
        for name, minimum, optional in (("epochs", 0, False), ("batch_size", 1, False),
                                        ("warmup", 0, False), ("seed", 0, False),
                                        ("reduction", 1, True), ("train_limit", 1, True),
                                        ("test_limit", 1, True)):
            _check_int(name, getattr(self, name), minimum, optional)
        for name in ("lr", "momentum", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not 0 <= value <= MAX_INT or value != value:
                raise ValueError(f"{name}: expected a finite non-negative number, got "
                                 f"{_short(value)}")
        for name in ("model", "data", "backend", "schedule"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name}: expected a string, got "
                                f"{type(getattr(self, name)).__name__}")
        for name in ("nesterov", "no_decay_bn_bias"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name}: expected True or False, got {getattr(self, name)!r}")
        if self.augment is not None and not isinstance(self.augment, bool):
            raise TypeError(f"augment: expected True, False or None, got {self.augment!r}")
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


MAX_INT = 2**53      # every count and seed stays exact as a float (schedules divide by them)


def _check_int(name, value, minimum, optional):
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_INT:
        raise ValueError(f"{name}: expected an integer >= {minimum}"
                         + (" or None" if optional else "")
                         + (" (at most 2**53)" if isinstance(value, int) and value > MAX_INT
                            else "") + f", got {_short(value)}")


def _short(value):
    """repr of a value from a file or the command line, cut short (a 400-digit int...)."""
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 64 else \
        f"an integer of {value.bit_length()} bits"
    return text[:40]
