"""Record the excitation gates s of every SE block during forward passes.

    with sn.analysis.record_gates(model) as gates:
        model(images)
    gates["layer3.2.se"]            # list of (N, C) arrays, one per forward pass
    gates.stacked("layer3.2.se")    # (total N, C)
    gates.summary()                 # per block: mean, spread, share near 0 or 1

The paper's Fig. 6 plots the mean gate of each channel per class at several
depths: early blocks give almost class-independent gates, the last ones
(SE_5_2, SE_5_3) saturate towards 1 and matter less. A block whose gates sit
at one constant for every image is doing a fixed rescaling only; ``summary``
makes that visible.
"""
from contextlib import contextmanager

import numpy as np

from ..nn.se import SEBlock


class GateRecord(dict):
    """{SE block name: [gates (N, C) of each forward pass]}, with helpers."""

    def stacked(self, name):
        """All recorded gates of one block, stacked over passes: (total N, C)."""
        if not self[name]:
            raise ValueError(f"no gates recorded for {name!r}: run a forward pass inside "
                             "record_gates")
        return np.concatenate(self[name], axis=0)

    def summary(self, near=0.05):
        """{name: {"mean", "std_over_images", "near_zero", "near_one"}} for recorded blocks.

        ``std_over_images`` is the spread of each channel's gate across images,
        averaged over channels: close to 0 means the gate does not depend on the
        input. ``near_zero`` / ``near_one`` are the shares of gates within
        ``near`` of 0 or 1 (saturated sigmoids).
        """
        result = {}
        for name, passes in self.items():
            if not passes:
                continue
            s = self.stacked(name)
            result[name] = {"mean": float(s.mean()),
                            "std_over_images": float(s.std(axis=0).mean()),
                            "near_zero": float(np.mean(s < near)),
                            "near_one": float(np.mean(s > 1 - near))}
        return result


@contextmanager
def record_gates(model):
    """Context manager collecting every SE block's gates while it is active.

    A forward hook (``Module.register_forward_hook``) on each SE block copies
    ``last_gates`` after every forward variant: ``block(x)``, and the fused
    ``forward_add`` / ``forward_add_relu`` a residual unit calls, so the unit
    keeps its fastest path and computes the same numbers. The hooks are
    removed on exit, even after an exception.
    """
    blocks = [(name, module) for name, module in model.named_modules()
              if isinstance(module, SEBlock)]
    if not blocks:
        raise ValueError(f"record_gates: {type(model).__name__} has no SEBlock to record")
    record = GateRecord((name, []) for name, _ in blocks)

    def recorder(gates_list):
        def hook(block, args, output):
            gates_list.append(np.array(block.last_gates, copy=True))
        return hook

    handles = []
    try:
        for name, block in blocks:
            handles.append(block.register_forward_hook(recorder(record[name])))
        yield record
    finally:
        for handle in handles:
            handle.remove()
