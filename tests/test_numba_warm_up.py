"""The conftest's two-process Numba warm-up: the split it deals is race-free by construction.

``numba_warm_up.split`` gives each process whole components of the contract's
rows, grouped by the jitted functions they can reach. These tests read code
objects only (nothing is compiled): the reachability finds the row helpers a
loop calls, every row is warmed exactly once, and no jitted function is
reachable from two processes.
"""
import numba_warm_up
from se_numpy.kernels import contract
from se_numpy.kernels.numba import rows, se


def test_reachable_follows_a_wrapper_to_its_loops_and_their_helpers():
    found = numba_warm_up.reachable(se.squeeze_forward)
    names = {d.py_func.__qualname__ for d in found.values()}
    assert names == {"squeeze_forward_loop_serial", "squeeze_forward_loop_parallel",
                     "row_sum"}, names
    assert rows.row_sum.py_func.__qualname__ in names


def test_rows_sharing_a_helper_share_a_component():
    # scale_backward and se_backward_ds both call row_dot: one process must compile both
    groups = [set(names) for names, _ in numba_warm_up.components()]
    assert any({"scale_backward", "se_backward_ds"} <= group for group in groups), groups


def test_split_covers_every_row_once_and_shares_no_jitted_function():
    shares = numba_warm_up.split(2)
    assert len(shares) == 2
    warmed = [row for names, _ in shares for row in names]
    assert sorted(warmed) == sorted(op.name for op in contract.CONTRACT)
    (_, first), (_, second) = shares
    assert not first.keys() & second.keys()
    # dealt by weight: neither process gets more than two thirds of the compiling
    weights = [numba_warm_up.compile_weight(owned) for _, owned in shares]
    assert max(weights) <= 2 * min(weights), weights
