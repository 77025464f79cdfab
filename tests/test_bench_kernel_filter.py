"""``se-numpy bench --kernels``: a run limited to some kernels times those and nothing else."""
import json

import pytest

from se_numpy import cli
from se_numpy.bench import format_table, run_benchmark


def test_only_the_named_kernels_are_timed_and_reported(tmp_path):
    names = ["spatial_scale_forward", "channel_pool_forward"]
    result = run_benchmark("numba", shapes=[(2, 3, 4, 6)], repeats=1, out_dir=str(tmp_path),
                           include_torch=False, quick=True, kernels=names)
    entry = json.loads((tmp_path / "kernels_numba.json").read_text())["shapes"][0]
    # the contract's order, not the order asked for; no SE block, no progression
    assert [row["kernel"] for row in entry["kernels"]] == ["channel_pool_forward",
                                                           "spatial_scale_forward"]
    assert "se_block" not in entry and "progression" not in entry
    for row in entry["kernels"]:
        assert set(row["results"]) == {"numpy", "numba"}
        assert row["results"]["numba"]["fraction_of_bandwidth"] > 0
    table = format_table(result)
    assert "spatial_scale_forward" in table and "squeeze_forward" not in table
    assert "SE block" not in table
    assert (tmp_path / "kernels_numba.png").read_bytes()[:4] == b"\x89PNG"


def test_an_unknown_kernel_name_is_refused_with_the_valid_ones(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"kernels: expected names from \[.*'squeeze_forward'"):
        run_benchmark("numba", shapes=[(1, 2, 4, 4)], out_dir=str(tmp_path), kernels=["sqeeze"])
    assert cli.main(["bench", "--kernels", "sqeeze", "--out", str(tmp_path), "--quick"]) == 2
    assert "se-numpy bench: error: kernels: expected names" in capsys.readouterr().err
