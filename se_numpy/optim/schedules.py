"""Learning-rate schedules as closed forms: lr(t) = initial_lr · factor(t).

Each schedule is a small object with ``factor(t)`` for a step count t = 0, 1, 2, ...
The *unit* of t is the caller's choice: the trainer counts either epochs
(``unit="epoch"``: the lr changes between epochs, as in the SE paper's
"divided by 10 every 30 epochs") or iterations (``unit="iteration"``: the
lr changes before every mini-batch, smoother for short runs). Because
``factor`` is a pure function of t, resuming a run needs no scheduler state.

The formulas are the closed forms in PyTorch's documentation:

    StepLR             factor(t) = γ^⌊t / step_size⌋
    MultiStepLR        factor(t) = γ^(number of milestones ≤ t)
    CosineAnnealingLR  factor(t) = m + (1 − m) · ½ (1 + cos(π · t / T)),  t clamped to [0, T],
                       m = eta_min / initial_lr
    LinearLR (warm-up) factor(t) = s + (1 − s) · min(t, W) / W

Composition: ``LinearWarmup(W, s, then=CosineSchedule(T))`` multiplies the
two factors, as PyTorch's ``ChainedScheduler`` does with multiplicative
schedulers: the warm-up ramps the lr up over the first W steps while the
inner schedule runs from t = 0.
"""
import bisect
import math


class ConstantSchedule:
    """factor(t) = 1."""

    def factor(self, t):
        return 1.0

    def __repr__(self):
        return "ConstantSchedule()"


class StepSchedule:
    """Multiply the lr by ``gamma`` every ``step_size`` steps: factor(t) = γ^⌊t/step_size⌋."""

    def __init__(self, step_size, gamma=0.1):
        if int(step_size) < 1:
            raise ValueError(f"step_size: expected a positive integer, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def factor(self, t):
        return self.gamma ** (int(t) // self.step_size)

    def __repr__(self):
        return f"StepSchedule(step_size={self.step_size}, gamma={self.gamma})"


class MultiStepSchedule:
    """Multiply the lr by ``gamma`` at each milestone: factor(t) = γ^#{milestones ≤ t}."""

    def __init__(self, milestones, gamma=0.1):
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)

    def factor(self, t):
        return self.gamma ** bisect.bisect_right(self.milestones, int(t))

    def __repr__(self):
        return f"MultiStepSchedule(milestones={self.milestones}, gamma={self.gamma})"


class CosineSchedule:
    """Half a cosine from 1 down to ``min_factor`` over ``total_steps``, then flat.

    factor(t) = m + (1 − m) · ½ (1 + cos(π · min(t, T) / T))
    """

    def __init__(self, total_steps, min_factor=0.0):
        if int(total_steps) < 1:
            raise ValueError(f"total_steps: expected a positive integer, got {total_steps}")
        self.total_steps, self.min_factor = int(total_steps), float(min_factor)

    def factor(self, t):
        progress = min(max(t, 0), self.total_steps) / self.total_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_factor + (1.0 - self.min_factor) * cosine

    def __repr__(self):
        return f"CosineSchedule(total_steps={self.total_steps}, min_factor={self.min_factor})"


class LinearWarmup:
    """Ramp linearly from ``start_factor`` to 1 over ``warmup_steps``, times an inner schedule.

    factor(t) = (s + (1 − s) · min(t, W) / W) · then.factor(t)

    A large initial lr can blow up a freshly initialised network (BatchNorm
    statistics are still far from their final values); the warm-up avoids that.
    """

    def __init__(self, warmup_steps, start_factor=0.1, then=None):
        if int(warmup_steps) < 1:
            raise ValueError(f"warmup_steps: expected a positive integer, got {warmup_steps}")
        if not 0.0 < start_factor <= 1.0:
            raise ValueError(f"start_factor: expected a value in (0, 1], got {start_factor}")
        self.warmup_steps, self.start_factor = int(warmup_steps), float(start_factor)
        self.then = ConstantSchedule() if then is None else then

    def factor(self, t):
        ramp = min(max(t, 0), self.warmup_steps) / self.warmup_steps
        warm = self.start_factor + (1.0 - self.start_factor) * ramp
        return warm * self.then.factor(t)

    def __repr__(self):
        return (f"LinearWarmup(warmup_steps={self.warmup_steps}, "
                f"start_factor={self.start_factor}, then={self.then!r})")


def make_schedule(name, total_steps, warmup_steps=0, step_size=None, gamma=0.1,
                  min_factor=0.0):
    """Build a schedule by name: ``"constant"``, ``"step"`` or ``"cosine"``, with optional warm-up.

    ``step_size`` for ``"step"`` defaults to a third of ``total_steps``.
    """
    if name == "constant":
        schedule = ConstantSchedule()
    elif name == "step":
        schedule = StepSchedule(step_size or max(1, total_steps // 3), gamma)
    elif name == "cosine":
        schedule = CosineSchedule(max(1, total_steps), min_factor)
    else:
        raise ValueError(f"schedule: expected 'constant', 'step' or 'cosine', got {name!r}")
    if warmup_steps and warmup_steps > 0:
        schedule = LinearWarmup(warmup_steps, then=schedule)
    return schedule
