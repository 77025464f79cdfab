"""Counting for modules built from children: shapes and multiply-accumulates without data.

A composite module (a residual unit, an Inception module, a whole network)
says which child sees which input shape, in execution order; its cost is then
the sum of its children's costs. ``se_numpy.analysis.flops_breakdown`` walks
the same lists down to the single layers, so no forward pass on real data is
ever needed to count a model, even SE-ResNet-152 at 224x224.
"""


class ComposedCounting:
    """Mixin: ``flops`` from ``child_input_shapes``; a subclass also gives ``output_shape``.

    Element-wise work (additions, ReLU, concatenation) costs no
    multiply-accumulates, so only the children are counted.
    """

    def child_input_shapes(self, input_shape):
        """[(child name, the input shape that child receives), ...] in execution order."""
        raise NotImplementedError

    def flops(self, input_shape):
        return sum(int(getattr(self, name).flops(shape))
                   for name, shape in self.child_input_shapes(input_shape))
