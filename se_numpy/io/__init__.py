"""Weights files: ``.safetensors`` (what the model hubs serve) and ``.npz``, never pickles.

    state = sn.io.load_weights("seresnet50.safetensors")     # {name: ndarray}
    sn.io.save_weights("mine.safetensors", model.state_dict())
    model = sn.models.create("seresnet50", weights="seresnet50.safetensors")
    for some in sn.io.read_weights(path, sn.io.stored_shapes(path)): ...   # ~16 MB at a time
"""
from .weights import SUFFIXES, load_weights, read_weights, save_weights, stored_shapes

__all__ = ["load_weights", "save_weights", "stored_shapes", "read_weights", "SUFFIXES"]
