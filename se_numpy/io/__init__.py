"""Weights files: ``.safetensors`` (what the model hubs serve) and ``.npz``, never pickles.

    state = sn.io.load_weights("seresnet50.safetensors")     # {name: ndarray}
    sn.io.save_weights("mine.safetensors", model.state_dict())
    model = sn.models.create("seresnet50", weights="seresnet50.safetensors")
"""
from .weights import SUFFIXES, load_weights, save_weights

__all__ = ["load_weights", "save_weights", "SUFFIXES"]
