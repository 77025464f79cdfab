"""The timm zoo without torch: every name against the manifest of timm's keys and shapes.

The manifests (``tests/manifests/<name>.json``) were written by
``scripts/make_manifests.py`` from timm itself; here each model is built, its
``state_dict()`` compared key by key (order included) and shape by shape with
timm's, then random weights made from the manifest are written as safetensors,
loaded strictly with ``create(name, weights=...)``, read back unchanged, and
run forward at a small input size. Models are freed after use (SENet-154 holds
115M parameters).
"""
import json
import os

import numpy as np
import pytest

import se_numpy as sn
from memory import release_memory
from se_numpy.models.zoo import PREPROCESSING, TIMM_NAMES

MANIFESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "manifests")
SMALL_INPUT = 40          # five halvings leave 2x2 (odd sizes on the way exercise ceil mode)


def manifest(name):
    with open(os.path.join(MANIFESTS, f"{name}.json")) as handle:
        return json.load(handle)


def random_weights(entries, seed=0):
    """Arrays of the manifest's shapes and dtypes; positive running variances."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape, dtype in entries:
        if dtype == "int64":
            state[key] = np.array(rng.integers(0, 100), dtype=np.int64).reshape(shape)
        elif key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 1.5, shape).astype(dtype)
        else:
            state[key] = (rng.random(shape, dtype=np.float32) * 0.2 - 0.1).astype(dtype)
    return state


def test_every_timm_name_has_a_manifest_and_a_model():
    assert sorted(TIMM_NAMES) == sorted(name[:-5] for name in os.listdir(MANIFESTS))
    assert set(TIMM_NAMES) <= set(sn.models.names())


@pytest.mark.parametrize("name", TIMM_NAMES)
def test_timm_weights_load_from_safetensors_run_and_come_back_in_timms_keys(name, tmp_path):
    expected = manifest(name)
    path = tmp_path / f"{name}.safetensors"
    sn.io.save_weights(path, random_weights(expected["state_dict"]))
    release_memory()
    model = sn.models.create(name, weights=path).eval()
    release_memory()                      # the file's arrays and the initial weights
    assert sn.analysis.count_params(model) == expected["parameters"]
    x = np.random.default_rng(1).standard_normal((1, 3, SMALL_INPUT, SMALL_INPUT))
    logits = model(x.astype(np.float32))
    assert logits.shape == (1, 1000) and logits.dtype == np.float32
    assert np.all(np.isfinite(logits))
    state = model.state_dict()
    del model
    release_memory()
    # timm's keys in timm's order, its shapes (SE weights as 1x1 convolutions) and dtypes
    assert [key for key, _, _ in expected["state_dict"]] == list(state)
    for key, shape, dtype in expected["state_dict"]:
        assert state[key].shape == tuple(shape) and state[key].dtype == np.dtype(dtype), key
    # read by safetensors itself, not by the loader under test; reopened every 32 arrays,
    # as one safe_open keeps every page it has read mapped (SENet-154: 460 MB)
    from safetensors import safe_open
    keys = [key for key, _, _ in expected["state_dict"]]
    for start in range(0, len(keys), 32):
        with safe_open(str(path), framework="numpy") as stored:
            for key in keys[start:start + 32]:
                np.testing.assert_array_equal(state.pop(key), stored.get_tensor(key),
                                              err_msg=key)
    release_memory()


@pytest.mark.parametrize("name", TIMM_NAMES)
def test_preprocessing_table_is_timms(name):
    recorded = manifest(name)["preprocessing"]
    ours = PREPROCESSING[name]
    assert recorded["input_size"] == [3, ours.input_size, ours.input_size]
    assert recorded["interpolation"] == ours.interpolation
    assert recorded["crop_pct"] == pytest.approx(ours.crop_pct)
    assert recorded["crop_mode"] == "center"
    assert recorded["mean"] == pytest.approx(ours.mean) and recorded["std"] == pytest.approx(ours.std)


# ---------------------------------------------------------------------------- load errors
def test_original_senet_checkpoint_gets_the_legacy_hint(tmp_path):
    path = tmp_path / "legacy.safetensors"
    sn.io.save_weights(path, random_weights(manifest("legacy_seresnet18")["state_dict"]))
    with pytest.raises(ValueError) as error:
        sn.models.create("seresnet18", weights=path)
    message = str(error.value)
    assert "original SENet checkpoint" in message and "legacy_" in message
    assert "missing keys" in message and "unexpected keys" in message
    assert len(message) < 1500, len(message)          # grouped and bounded, not 154 keys


def test_se_width_rule_gets_the_make_divisible_hint():
    timm_state = sn.models.create("seresnet18").state_dict()      # SE widths make_divisible
    with pytest.raises(ValueError) as error:
        sn.models.create("se_resnet18").load_state_dict(timm_state)
    message = str(error.value)
    assert "make_divisible(C / 16, 8)" in message and "seresnet18" in message
    assert "layer1.0.se.fc1.weight: expected shape (4, 64), got (8, 64, 1, 1)" in message
    paper_state = sn.models.create("se_resnet18").state_dict()
    with pytest.raises(ValueError, match="this model rounds the SE width with make_divisible"):
        sn.models.create("seresnet18").load_state_dict(paper_state)


def test_prefixed_keys_get_the_prefix_hint():
    state = {f"module.{key}": value for key, value in
             sn.models.create("se_tiny_resnet").state_dict().items()}
    with pytest.raises(ValueError) as error:
        sn.models.create("se_tiny_resnet").load_state_dict(state)
    message = str(error.value)
    assert "prefix 'module.'" in message
    assert "... and" in message and "more" in message           # bounded lists


def test_weights_that_do_not_fit_name_the_file(tmp_path):
    path = tmp_path / "tiny.npz"
    sn.io.save_weights(path, sn.models.create("tiny_resnet").state_dict())
    with pytest.raises(ValueError, match="tiny.npz: does not fit se_tiny_resnet"):
        sn.models.create("se_tiny_resnet", weights=path)


# ---------------------------------------------------------------------------- timm keywords
def test_timm_keywords():
    model = sn.models.create("seresnet18", pretrained=False, in_chans=1, num_classes=7)
    assert model(np.zeros((2, 1, 32, 32), np.float32)).shape == (2, 7)
    with pytest.raises(ValueError, match="downloads nothing.*weights="):
        sn.models.create("seresnet18", pretrained=True)
    with pytest.raises(TypeError, match="both in_chans and in_channels"):
        sn.models.create("seresnet18", in_chans=1, in_channels=3)


@pytest.mark.parametrize("name, features", [("seresnet18", 512), ("legacy_seresnet18", 512),
                                             ("mobilenetv3_small_100", 1024),
                                             ("efficientnet_b0", 1280), ("regnety_002", 368)])
def test_num_classes_zero_gives_pooled_features(name, features):
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    model = sn.models.create(name, num_classes=0).eval()
    pooled = model(x)
    assert pooled.shape == (2, features)
    assert not any(key.startswith(("fc.", "last_linear.", "classifier.", "head.fc."))
                   for key in model.state_dict())
    # forward_features is the map before the pool; for the ResNets the pooled features are its mean
    feature_map = model.forward_features(x)
    assert feature_map.ndim == 4 and feature_map.shape[0] == 2
    if name in ("seresnet18", "legacy_seresnet18", "efficientnet_b0", "regnety_002"):
        np.testing.assert_allclose(pooled, feature_map.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)


def test_reset_classifier_and_backward_through_the_new_head():
    model = sn.models.create("regnety_002", seed=0)
    model.reset_classifier(5)
    assert model.get_classifier().weight.shape == (5, 368)
    assert model.state_dict()["head.fc.weight"].shape == (5, 368)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    logits = model(x)
    assert logits.shape == (2, 5)
    assert model.backward(np.ones_like(logits)).shape == x.shape
    model.reset_classifier(0)
    assert model(x).shape == (2, 368)
    with pytest.raises(ValueError, match="num_classes"):
        model.reset_classifier(-1)


def test_drop_rate_is_dropout_before_the_classifier():
    model = sn.models.create("seresnet18", drop_rate=0.5, num_classes=3, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    model.eval()
    first, second = model(x), model(x)
    np.testing.assert_array_equal(first, second)          # eval: identity
    model.train()
    # train: different masks on successive calls, so different logits
    assert not np.allclose(model(x), model(x))
    assert "drop" in dict(model.named_children())


def test_senet154_stands_in_the_paper_table(capsys):
    """The row counts timm's 115,088,984 parameters (from the manifest, an independent figure)
    and shows '-' where the paper prints no number (it gives SENet-154's errors only)."""
    from se_numpy.analysis.table import PAPER_ROWS, format_table, measure_row
    row = {row.label: row for row in PAPER_ROWS}["SENet-154"]
    measured = measure_row(row, input_size=64)           # counts scale with the area; 64 is cheap
    release_memory()
    assert round(measured.params_se * 1e6) == manifest("legacy_senet154")["parameters"]
    assert measured.params_plain is None and measured.gflops_plain is None
    line = [text for text in format_table([measured]).splitlines()
            if text.startswith("SENet-154")][0]
    assert "115.09" in line and line.count("-") >= 5


def test_own_models_have_the_timm_affordances_too():
    model = sn.models.create("se_resnet20", seed=0)
    x = np.zeros((1, 3, 8, 8), np.float32)
    assert model.forward_features(x).shape == (1, 64, 2, 2)
    model.reset_classifier(3)
    assert model(x).shape == (1, 3)
    model.reset_classifier(0)
    assert model(x).shape == (1, 64)


@pytest.mark.parametrize("name, params_millions, gmacs", [
    ("efficientnet_b0", 5.3, 0.39),      # Tan & Le 2019, Table 2: 5.3M, 0.39B FLOPs
    ("regnety_002", 3.2, 0.2),           # Radosavovic et al. 2020: RegNetY-200MF, 3.2M
    ("regnety_004", 4.3, 0.4)])          # RegNetY-400MF, 4.3M
def test_zoo_counts_agree_with_the_papers_at_their_printed_precision(name, params_millions,
                                                                     gmacs):
    from se_numpy.analysis.table import agrees_at_printed_precision, format_zoo, measure_zoo
    [(_, params, ours, size)] = measure_zoo([name])
    assert size == 224
    assert agrees_at_printed_precision(params / 1e6, params_millions)
    assert agrees_at_printed_precision(ours, gmacs)
    assert name in format_zoo([(name, params, ours, size)])
