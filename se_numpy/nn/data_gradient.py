"""Training without the images' gradient: the convolutions that read the data skip dx.

A training step needs dL/dθ for every parameter, never dL/dx for the images.
PyTorch knows this from autograd (the images do not require grad) and skips
the first convolution's dx; here a layer cannot know where its input came
from, so ``Conv2d.needs_input_grad`` says it, and this context manager sets it
on exactly the convolutions that read the data:

    with sn.nn.data_gradient_skipped(model):
        for x, y in batches:
            loss = loss_fn(model(x), y)
            model.backward(loss_fn.backward())     # returns None: no dL/dx computed

During each forward of ``model`` a hook on every Conv2d notes the array it was
given; a hook on ``model`` itself, which runs when that forward ends, sets
``needs_input_grad = False`` on the convolutions whose input *is* the model's
input (the same object, not an equal copy). The backward that follows skips
their dx: for SE-ResNet-20 that is the stem's dx, its unfolding of dout and its
matrix product. On leaving, every flag is what it was before, so gradients of
the input (a saliency map, ``sn.gradcheck`` of the whole model) work as usual.

It is meant for networks whose input feeds one chain of layers, as every model of
``sn.models`` does. A model of your own that sends its input to several branches
and adds their input gradients gets None from each marked branch inside the block.
"""
import contextlib

from .conv import Conv2d


@contextlib.contextmanager
def data_gradient_skipped(model):
    """Inside: every forward of ``model`` marks the Conv2d layers that read its input as
    needing no input gradient (``needs_input_grad = False``); on exit the flags are restored."""
    convolutions = [module for module in model.modules() if isinstance(module, Conv2d)]
    before = [convolution.needs_input_grad for convolution in convolutions]
    inputs_seen = []                  # (convolution, its input) in the forward under way

    def note_input(convolution, args, output):
        inputs_seen.append((convolution, args[0]))

    def mark_data_readers(module, args, output):
        for convolution, seen in inputs_seen:
            if seen is args[0]:
                convolution.needs_input_grad = False
        inputs_seen.clear()           # and drop the references to the maps

    handles = [convolution.register_forward_hook(note_input) for convolution in convolutions]
    handles.append(model.register_forward_hook(mark_data_readers))
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()
        for convolution, flag in zip(convolutions, before):
            convolution.needs_input_grad = flag
