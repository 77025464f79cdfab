"""Named chains of layers, with or without a residual connection around them.

``NamedSequential`` runs its children in the order they were assigned, under
their attribute names, so state-dict keys read ``conv_pw.weight``,
``bn1.running_mean``, ... as in timm, where ``Sequential`` would say ``0.weight``.

``ResidualChain`` is the residual unit in its most general form,

    out = post( F(x) + shortcut(x) )      F = the branch children, one after another

with shortcut(x) = x (``skip`` and no shortcut module), a projection module,
or nothing at all (``skip=False``: out = post(F(x))), and ``post`` an optional
activation after the addition. Backward follows the residual unit's rule
(``nn/residual.py``): the addition copies d_pre to both paths and the two
contributions to dx add,

    d_pre = post'ᵀ d_out,   dx = F'(x)ᵀ d_pre + shortcut'(x)ᵀ d_pre.

The mobile blocks (``nn/mbconv.py``) and RegNet's bottleneck are ResidualChains.
"""
from .composed import ComposedCounting
from .module import Module


class NamedSequential(ComposedCounting, Module):
    """Children run in the order they were assigned; ``NamedSequential.of(conv=..., bn=...)``.

    Subclasses assign their children and call ``self._finish()`` at the end of ``__init__``.
    """

    def _finish(self):
        self._order = list(self._modules)

    @classmethod
    def of(cls, **children):
        sequence = cls()
        for name, child in children.items():
            setattr(sequence, name, child)
        sequence._finish()
        return sequence

    def forward(self, x):
        for name in self._order:
            x = getattr(self, name)(x)
        return x

    def backward(self, dy):
        for name in reversed(self._order):
            dy = getattr(self, name).backward(dy)
        return dy

    def child_input_shapes(self, input_shape):
        entries, shape = [], tuple(input_shape)
        for name in self._order:
            entries.append((name, shape))
            shape = getattr(self, name).output_shape(shape)
        return entries

    def output_shape(self, input_shape):
        name, shape = self.child_input_shapes(input_shape)[-1]
        return getattr(self, name).output_shape(shape)


class ResidualChain(ComposedCounting, Module):
    """out = post( F(x) + shortcut(x) ); see the module docstring.

    Args:
        branch: [(name, module), ...], the residual branch F in order.
        skip: add the shortcut (False: out = post(F(x)), a plain chain).
        shortcut: (name, module) of a projection, or None for the identity.
        post: (name, module) applied after the addition, or None.

    Children are registered in the order branch, shortcut, post (timm's key order).
    """

    def __init__(self, branch, skip=True, shortcut=None, post=None):
        super().__init__()
        self._branch = [name for name, _ in branch]
        for name, module in branch:
            setattr(self, name, module)
        self.skip = bool(skip)
        self._shortcut = None
        if shortcut is not None:
            if not self.skip:
                raise ValueError("shortcut: a projection needs skip=True")
            self._shortcut = shortcut[0]
            setattr(self, shortcut[0], shortcut[1])
        self._post = None
        if post is not None:
            self._post = post[0]
            setattr(self, post[0], post[1])

    def forward(self, x):
        out = x
        for name in self._branch:
            out = getattr(self, name)(out)
        if self.skip:
            shortcut = getattr(self, self._shortcut)(x) if self._shortcut else x
            if shortcut.shape != out.shape:
                raise ValueError(f"{type(self).__name__}: the branch gives {out.shape} but the "
                                 f"shortcut {shortcut.shape}; a changing shape needs a projection")
            out = out + shortcut
        if self._post:
            out = getattr(self, self._post)(out)
        return out

    def backward(self, dout):
        d_pre = getattr(self, self._post).backward(dout) if self._post else dout
        dx = d_pre
        for name in reversed(self._branch):
            dx = getattr(self, name).backward(dx)
        if self.skip:
            dx = dx + (getattr(self, self._shortcut).backward(d_pre) if self._shortcut
                       else d_pre)
        return dx

    def child_input_shapes(self, input_shape):
        entries, shape = [], tuple(input_shape)
        for name in self._branch:
            entries.append((name, shape))
            shape = getattr(self, name).output_shape(shape)
        if self._shortcut:
            entries.append((self._shortcut, tuple(input_shape)))
        if self._post:
            entries.append((self._post, shape))
        return entries

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        for name in self._branch:
            shape = getattr(self, name).output_shape(shape)
        return shape

    def extra_repr(self):
        return f"skip={self.skip}"
