"""A whole SE network checked at once: a planted 1 % bug in one tensor is found and located.

The bug scales one module's contribution to one parameter's gradient (all
entries, or a single entry) by 1.01. ``check_module`` must fail on exactly
that tensor, name the entries, and pass the correct network; tensors whose
gradient is exactly 0 at the input (SE gates behind dead ReLUs) are listed
as not tested rather than counted as checked.

The CI test uses the small ``se_tiny_resnet``; the same check on SE-ResNet-20
is a measurement, run by hand:

    python tests/test_gradcheck_network.py se_resnet20
"""
import sys
import time

import numpy as np
import pytest

import se_numpy as sn
from se_numpy.gradcheck import check_module


def plant(module, parameter, factor, entry=None):
    """Scale module.backward's contribution to ``parameter``'s gradient (one entry or all)."""
    base = type(module)

    def backward(self, dy):
        p = getattr(self, parameter)
        before = p.grad.copy()
        dx = base.backward(self, dy)
        delta = p.grad - before
        if entry is None:
            delta *= factor
        else:
            delta.flat[entry] *= factor
        p.grad[...] = before + delta          # still adds into p.grad, as backward must
        return dx

    module.__class__ = type(f"Buggy{base.__name__}", (base,), {"backward": backward})


def network(name):
    return sn.models.create(name, dtype=np.float64)


def image(shape=(2, 3, 8, 8)):
    return np.random.default_rng(0).standard_normal(shape)


def failing(report):
    return [name for name, result in report.tensors.items() if not result.passed]


def test_correct_network_passes_and_says_what_it_did_not_test():
    report = check_module(network("se_tiny_resnet"), image(), mode="train")
    assert report.passed, report
    for name, reason in report.untested.items():
        assert "gradient is 0 here" in reason and not np.any(report[name].gradient_norm)


@pytest.mark.parametrize("entry", [None, 5])
def test_one_percent_bug_in_one_tensor_is_located(entry):
    model = network("se_tiny_resnet")
    plant(model.layer2[0].conv2, "weight", 1.01, entry)
    # the stage holding the bug (13 tensors) keeps CI short; the whole network is measured
    # by hand (module docstring) and the correct whole network is the test above
    report = check_module(model, image(), mode="train", only=["layer2.*"])
    assert failing(report) == ["layer2.0.conv2.weight"], report
    located = report["layer2.0.conv2.weight"].located
    shape = report["layer2.0.conv2.weight"].shape
    if entry is None:
        assert len(located) >= 1 and "× 1.01" in report["layer2.0.conv2.weight"].hint
    else:
        assert located == [tuple(int(i) for i in np.unravel_index(entry, shape))]


def test_only_and_skip_restrict_the_check():
    model = network("se_tiny_resnet")
    plant(model.layer2[0].conv2, "weight", 1.01)
    only = check_module(model, image(), mode="train", only=["layer2.0.conv*"], invariants=False)
    assert failing(only) == ["layer2.0.conv2.weight"]
    assert all(name.startswith("layer2.") for name, r in only.tensors.items()
               if r.untested is None)
    skipped = check_module(model, image(), mode="train", only=["layer2.0.*"],
                           skip=["layer2.0.conv2.*"], invariants=False)
    assert skipped.passed and "layer2.0.conv2.weight" in skipped.untested


def measure(name):
    """Time a correct check and a located 1 % bug (all entries; one entry) on ``name``."""
    for label, bug in (("correct", None), ("1 % in layer2.1.bn1.weight", ("bn", None)),
                       ("1 % in one entry of layer3.0.conv2.weight", ("conv", 1234))):
        model = network(name)
        if bug and bug[0] == "bn":
            plant(model.layer2[1].bn1, "weight", 1.01)
        elif bug:
            plant(model.layer3[0].conv2, "weight", 1.01, bug[1])
        start = time.perf_counter()
        report = check_module(model, image(), mode="train", progress=False)
        seconds = time.perf_counter() - start
        bad = failing(report)
        print(f"{name}, {label}: {'passed' if report.passed else 'FAILED'} in {seconds:.1f} s, "
              f"{report.evaluations[0]} forward / {report.evaluations[1]} backward calls; "
              f"failing tensors {bad}; located {[report[b].located[:4] for b in bad]}; "
              f"hints {[report[b].hint for b in bad]}; "
              f"{len(report.untested)} of {len(report.tensors)} tensors not tested")


if __name__ == "__main__":
    measure(sys.argv[1] if len(sys.argv) > 1 else "se_resnet20")
