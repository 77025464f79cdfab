"""``se-numpy predict`` end to end on images the tests write, and the preprocessing by hand."""
import json

import numpy as np
import pytest

import se_numpy as sn
from se_numpy import cli
from se_numpy.models.zoo import Preprocessing
from se_numpy.predict import imagenet_classes
from se_numpy.predict.preprocess import read_image, to_input

Image = pytest.importorskip("PIL.Image")
MODEL = "mobilenetv3_small_100"      # the cheapest zoo model at 224x224


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / f"{MODEL}.safetensors"
    sn.io.save_weights(path, sn.models.create(MODEL, seed=3).state_dict())
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for index, (width, height) in enumerate([(320, 240), (200, 300)]):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        path = folder / f"image{index}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths


def test_class_names_ship_with_the_package():
    classes = imagenet_classes()
    assert len(classes) == 1000
    assert classes[0] == ("n01440764", "tench, Tinca tinca")
    assert classes[999][0] == "n15075141"                 # the last ImageNet-1k synset
    assert len({synset for synset, _ in classes}) == 1000


def test_constant_image_normalises_to_the_hand_computed_values(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("RGB", (300, 200), (51, 102, 204)).save(path)
    config = Preprocessing(224, "bicubic", 0.875)
    x = to_input(read_image(path), config)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    expected = [(51 / 255 - 0.485) / 0.229, (102 / 255 - 0.456) / 0.224, (204 / 255 - 0.406) / 0.225]
    for channel, value in enumerate(expected):
        np.testing.assert_allclose(x[channel], value, rtol=1e-6)


def test_resize_and_centre_crop_geometry(tmp_path):
    """448x320, crop 0.875 at 224: shorter side 320 -> floor(224/0.875) = 256, width
    int(256·448/320) = 358; crop left = round((358 - 224)/2) = 67, so the red/blue edge at
    column 224 of the original (179 after resizing) lands at column 179 - 67 = 112."""
    pixels = np.zeros((320, 448, 3), np.uint8)
    pixels[:, :224] = (255, 0, 0)
    pixels[:, 224:] = (0, 0, 255)
    path = tmp_path / "halves.png"
    Image.fromarray(pixels).save(path)
    x = to_input(read_image(path), Preprocessing(224, "bilinear", 0.875, (0, 0, 0), (1, 1, 1)))
    red, blue = x[0], x[2]
    assert np.all(red[:, :110] > 0.99) and np.all(blue[:, :110] < 0.01)
    assert np.all(red[:, 114:] < 0.01) and np.all(blue[:, 114:] > 0.99)


def test_predict_prints_top_k_for_a_batch(weights, images, capsys):
    assert cli.main(["predict", *images, "--model", MODEL, "--weights", str(weights),
                     "--topk", "3", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [result["image"] for result in results] == images
    classes = imagenet_classes()
    model = sn.models.create(MODEL, weights=weights).eval()
    for result in results:
        top = result["top"]
        assert len(top) == 3
        probabilities = [entry["probability"] for entry in top]
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) < 1
        for entry in top:
            assert (entry["synset"], entry["label"]) == classes[entry["index"]]
        # the same numbers as running the model by hand on the preprocessed image
        x = to_input(read_image(result["image"]), sn.models.zoo.preprocessing(MODEL))[None]
        logits = model(x)[0].astype(np.float64)
        reference = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        assert [entry["index"] for entry in top] == list(np.argsort(-reference)[:3])
        np.testing.assert_allclose(probabilities, np.sort(reference)[::-1][:3], rtol=1e-5)
    assert cli.main(["predict", images[0], "--model", MODEL, "--weights", str(weights)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == images[0] and len(text) == 6            # path + 5 classes


def test_unreadable_image_is_one_line_error(weights, tmp_path, capsys):
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    assert cli.main(["predict", str(bad), "--model", MODEL, "--weights", str(weights)]) == 2
    error = capsys.readouterr().err.strip()
    assert "not_an_image.png: not a readable image" in error and "\n" not in error
    assert cli.main(["predict", str(tmp_path / "missing.jpg"), "--model", MODEL,
                     "--weights", str(weights)]) == 2
    assert "no such image file" in capsys.readouterr().err


def test_weights_that_do_not_fit_are_one_line_error(images, tmp_path, capsys):
    other = tmp_path / "seresnet18.npz"
    sn.io.save_weights(other, sn.models.create("seresnet18").state_dict())
    assert cli.main(["predict", images[0], "--model", MODEL, "--weights", str(other)]) == 2
    error = capsys.readouterr().err.strip()
    assert "does not fit mobilenetv3_small_100" in error and "missing keys" in error
    assert "\n" not in error and len(error) < 2000
    assert cli.main(["predict", images[0], "--model", MODEL, "--weights", "x.pth"]) == 2
    assert "safetensors" in capsys.readouterr().err
