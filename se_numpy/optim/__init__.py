"""Optimisers and learning-rate schedules.

    opt = sn.optim.SGD(sn.optim.param_groups(model, weight_decay=5e-4), lr=0.1, momentum=0.9)
    schedule = sn.optim.LinearWarmup(5, then=sn.optim.CosineSchedule(100))
    opt.set_lr(schedule.factor(epoch))
"""
from .groups import param_groups
from .schedules import (ConstantSchedule, CosineSchedule, LinearWarmup, MultiStepSchedule,
                        StepSchedule, make_schedule)
from .sgd import SGD

__all__ = ["SGD", "param_groups", "ConstantSchedule", "StepSchedule", "MultiStepSchedule",
           "CosineSchedule", "LinearWarmup", "make_schedule"]
