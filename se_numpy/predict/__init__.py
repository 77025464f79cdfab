"""Run a zoo model on image files: ``se-numpy predict IMAGE... --model NAME --weights FILE``.

    results = sn.predict.classify(["cat.jpg"], "seresnet50", "seresnet50.safetensors", topk=5)
    results[0]["top"][0]    # {"index": 281, "synset": "n02123045", "label": "tabby, ...",
                            #  "probability": 0.83}

Each image is preprocessed as timm does for that model name
(``models.zoo.preprocessing``; ``predict/preprocess.py``), the batch runs in
eval mode, and the softmax of the logits gives the probabilities of the 1000
ImageNet classes, whose WordNet synsets and names ship with the package
(``imagenet_classes.txt``, in the classes' index order).
"""
import os

import numpy as np

from ..functional.loss import log_softmax
from .preprocess import read_image, to_input

_CLASSES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_classes.txt")


def imagenet_classes():
    """[(synset, label), ...] for the 1000 ImageNet-1k classes, in index order."""
    with open(_CLASSES_FILE, encoding="utf-8") as handle:
        return [tuple(line.rstrip("\n").split("\t", 1)) for line in handle if line.strip()]


def classify(image_paths, model_name, weights, topk=5, dtype=np.float32):
    """Top-k ImageNet classes of every image: a list of {"image", "top": [...]} dicts.

    Raises ValueError (one line) for an unreadable image or a weights file that
    does not fit the model.
    """
    from ..models import create
    from ..models.zoo import preprocessing

    if not image_paths:
        raise ValueError("no images given")
    if isinstance(topk, bool) or not isinstance(topk, int) or not 1 <= topk <= 1000:
        raise ValueError(f"topk: expected an int from 1 to 1000, got {topk!r}")
    config = preprocessing(model_name)
    batch = np.stack([to_input(read_image(path), config, dtype) for path in image_paths])
    try:
        model = create(model_name, weights=weights, dtype=dtype)
    except ValueError as error:
        raise ValueError(" ".join(str(error).split())) from None       # one line
    if getattr(model, "num_classes", 1000) != 1000:
        raise ValueError(f"{model_name}: expected a 1000-class ImageNet classifier")
    probabilities = np.exp(log_softmax(model.eval()(batch).astype(np.float64)))
    classes = imagenet_classes()
    results = []
    for path, row in zip(image_paths, probabilities):
        order = np.argsort(-row, kind="stable")[:topk]
        results.append({"image": os.fspath(path), "top": [
            {"index": int(index), "synset": classes[index][0], "label": classes[index][1],
             "probability": float(row[index])} for index in order]})
    return results


def format_results(results):
    """Plain text: the image path, then one line per class: probability, synset, label."""
    lines = []
    for result in results:
        lines.append(result["image"])
        for entry in result["top"]:
            lines.append(f"  {entry['probability']:7.4f}  {entry['synset']}  {entry['label']}")
    return "\n".join(lines)


def _run(args):
    import json
    import sys
    try:
        results = classify(args.images, args.model, args.weights, args.topk)
    except (ValueError, FileNotFoundError) as error:
        print(f"se-numpy predict: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(json.dumps(results, indent=1) if args.json else format_results(results))
    return 0


def add_commands(subparsers):
    """Register ``se-numpy predict`` on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "predict", help="top-k ImageNet classes of images, with a zoo model and its weights",
        description="Classify images with a zoo model (timm names) and a .safetensors or .npz "
                    "weights file, using the model's own timm preprocessing.")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any Pillow format)")
    parser.add_argument("--model", required=True, help="model name, e.g. seresnet50")
    parser.add_argument("--weights", required=True, help=".safetensors or .npz weights file")
    parser.add_argument("--topk", type=int, default=5, help="classes shown per image")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=_run)
    return parser
