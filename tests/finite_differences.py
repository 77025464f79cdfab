"""A deliberately plain central-difference VJP, independent of se_numpy.gradcheck.

Layer tests use it beside ``check_module`` so that a bug in the checker itself
could not hide a bug in a layer: the two must agree with the backward pass.
"""
import numpy as np

STEP = 1e-6


def numerical_vjp(function, array, dout, step=STEP):
    """d/d(array) of Σ dout · function(), by central differences (array is perturbed in place)."""
    gradient = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + step
        plus = np.sum(dout * function())
        array[index] = original - step
        minus = np.sum(dout * function())
        array[index] = original
        gradient[index] = (plus - minus) / (2 * step)
    return gradient
