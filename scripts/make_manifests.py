"""Write tests/manifests/<model>.json: timm's state-dict key names, shapes and dtypes, per model.

Needs PyTorch and timm (never dependencies of se_numpy); run it once whenever
the zoo gains a model or timm changes its key names:

    /path/to/venv-with-torch-and-timm/bin/python scripts/make_manifests.py [NAME ...]

Each manifest records, in timm's order, every entry of ``state_dict()`` as
[key, shape, dtype], the number of trainable parameters, and timm's default
preprocessing configuration for the name (input size, interpolation, crop
fraction, mean and std). The tests build random weights from a manifest, write
them as safetensors and load them strictly into se_numpy's model of that name,
so CI checks the key names against timm's without torch.
"""
import json
import os
import sys

import timm
import torch

from se_numpy.models.zoo import TIMM_NAMES

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "manifests")


def manifest(name):
    with torch.no_grad():
        model = timm.create_model(name, pretrained=False)
    config = model.pretrained_cfg
    entries = [[key, list(value.shape), str(value.dtype).replace("torch.", "")]
               for key, value in model.state_dict().items()]
    return {"model": name, "timm_version": timm.__version__,
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "preprocessing": {key: config.get(key) for key in
                              ("input_size", "interpolation", "crop_pct", "crop_mode", "mean",
                               "std", "num_classes")},
            "state_dict": entries}


def to_json(data):
    """The manifest as JSON with one state-dict entry per line (readable diffs)."""
    head = {key: value for key, value in data.items() if key != "state_dict"}
    lines = json.dumps(head, indent=1)[:-2] + ',\n "state_dict": [\n'
    lines += ",\n".join(json.dumps(entry) for entry in data["state_dict"])
    return lines + "\n ]\n}\n"


def main(names):
    os.makedirs(OUT, exist_ok=True)
    for name in names or TIMM_NAMES:
        path = os.path.join(OUT, f"{name}.json")
        data = manifest(name)
        temporary = path + ".tmp"
        with open(temporary, "w") as handle:
            handle.write(to_json(data))
        os.replace(temporary, path)
        print(f"{path}: {len(data['state_dict'])} entries, {data['parameters']} parameters")


if __name__ == "__main__":
    main(sys.argv[1:])
