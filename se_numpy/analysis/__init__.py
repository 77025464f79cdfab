"""Counting, gate recording and the paper's complexity table.

    sn.analysis.count_params(model)                      # int
    sn.analysis.count_flops(model, (1, 3, 224, 224))     # int, multiply-accumulates
    sn.analysis.flops_breakdown(model, (1, 3, 224, 224)) # per-layer rows
    with sn.analysis.record_gates(model) as gates: ...   # SE gate values (Fig. 6)
"""
from .counting import (LayerCost, count_flops, count_params, flops_breakdown, format_breakdown,
                       se_params_closed_form)
from .gates import GateRecord, record_gates

__all__ = ["count_params", "count_flops", "flops_breakdown", "format_breakdown", "LayerCost",
           "se_params_closed_form", "record_gates", "GateRecord"]
