"""The (2+1)D ResNet: the tutorial's architecture and parameter count, uint8 input, save/load, portability."""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys

import einops
import keras
import numpy as np
import pytest
from keras import layers

from vidshard.models import resnet21d
from vidshard.models.resnet21d import build_model


# -- the tutorial's model, as its text writes it (tf.keras is Keras 3 in TF 2.16+) ---------------

class TutorialConv2Plus1D(keras.layers.Layer):
    def __init__(self, filters, kernel_size, padding):
        super().__init__()
        self.seq = keras.Sequential([
            layers.Conv3D(filters=filters, kernel_size=(1, kernel_size[1], kernel_size[2]), padding=padding),
            layers.Conv3D(filters=filters, kernel_size=(kernel_size[0], 1, 1), padding=padding),
        ])

    def call(self, x):
        return self.seq(x)


class TutorialResidualMain(keras.layers.Layer):
    def __init__(self, filters, kernel_size):
        super().__init__()
        self.seq = keras.Sequential([
            TutorialConv2Plus1D(filters=filters, kernel_size=kernel_size, padding="same"),
            layers.LayerNormalization(),
            layers.ReLU(),
            TutorialConv2Plus1D(filters=filters, kernel_size=kernel_size, padding="same"),
            layers.LayerNormalization(),
        ])

    def call(self, x):
        return self.seq(x)


class TutorialProject(keras.layers.Layer):
    def __init__(self, units):
        super().__init__()
        self.seq = keras.Sequential([layers.Dense(units), layers.LayerNormalization()])

    def call(self, x):
        return self.seq(x)


def tutorial_add_residual_block(input, filters, kernel_size):
    out = TutorialResidualMain(filters, kernel_size)(input)
    res = input
    if out.shape[-1] != input.shape[-1]:
        res = TutorialProject(out.shape[-1])(res)
    return layers.add([res, out])


class TutorialResizeVideo(keras.layers.Layer):
    def __init__(self, height, width):
        super().__init__()
        self.height = height
        self.width = width
        self.resizing_layer = layers.Resizing(self.height, self.width)

    def call(self, video):
        old_shape = einops.parse_shape(video, "b t h w c")
        images = einops.rearrange(video, "b t h w c -> (b t) h w c")
        images = self.resizing_layer(images)
        return einops.rearrange(images, "(b t) h w c -> b t h w c", t=old_shape["t"])


def tutorial_model(frames: int, height: int, width: int, classes: int) -> keras.Model:
    input = layers.Input(shape=(frames, height, width, 3))
    x = TutorialConv2Plus1D(filters=16, kernel_size=(3, 7, 7), padding="same")(input)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = TutorialResizeVideo(height // 2, width // 2)(x)
    x = tutorial_add_residual_block(x, 16, (3, 3, 3))
    x = TutorialResizeVideo(height // 4, width // 4)(x)
    x = tutorial_add_residual_block(x, 32, (3, 3, 3))
    x = TutorialResizeVideo(height // 8, width // 8)(x)
    x = tutorial_add_residual_block(x, 64, (3, 3, 3))
    x = TutorialResizeVideo(height // 16, width // 16)(x)
    x = tutorial_add_residual_block(x, 128, (3, 3, 3))
    x = layers.GlobalAveragePooling3D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(classes)(x)
    return keras.Model(input, x)


def _clips(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


# -- tests ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("frames,height,width,classes", [(10, 64, 64, 10), (10, 224, 224, 10), (4, 32, 48, 3)])
def test_same_weights_as_the_tutorials_model(frames, height, width, classes):
    ours, theirs = build_model(frames, height, width, classes), tutorial_model(frames, height, width, classes)
    assert ours.count_params() == theirs.count_params()
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]


def test_computes_the_tutorials_function_on_unscaled_pixels():
    """With the tutorial model's weights, ours on uint8 pixels == the tutorial's on pixels / 255."""
    theirs, ours = tutorial_model(4, 32, 32, 3), build_model(4, 32, 32, 3)
    ours.set_weights(theirs.get_weights())
    clips = _clips((2, 4, 32, 32, 3))
    expected = theirs.predict_on_batch(clips.astype("float32") / 255)
    np.testing.assert_allclose(ours.predict_on_batch(clips), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(ours.predict_on_batch(clips), ours.predict_on_batch(clips.astype("float32")))


def test_model_keras_loads_back_with_identical_predictions(tmp_path):
    model = build_model(4, 32, 32, 3)
    clips = _clips((3, 4, 32, 32, 3), seed=1)
    before = model.predict_on_batch(clips)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert loaded.count_params() == model.count_params()
    np.testing.assert_array_equal(loaded.predict_on_batch(clips), before)
    custom = {"Conv2Plus1D", "ResidualMain", "Project", "ResizeVideo"}
    assert {type(layer).__name__ for layer in loaded.layers} >= custom


def test_mixed_precision_computes_in_bfloat16_with_float32_logits(tmp_path):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model(4, 32, 32, 3)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    clips = _clips((2, 4, 32, 32, 3), seed=2)
    before = model.predict_on_batch(clips)
    assert before.dtype == np.float32
    inner_conv = model.get_layer(index=2).seq.layers[0]  # a Conv3D inside the stem's Conv2Plus1D
    assert inner_conv.compute_dtype == "bfloat16" and inner_conv.kernel.dtype == "float32"
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")  # under the float32 default policy
    assert loaded.get_layer(index=2).seq.layers[0].compute_dtype == "bfloat16"
    np.testing.assert_array_equal(loaded.predict_on_batch(clips), before)


def test_frames_too_small_for_four_halvings_are_refused():
    with pytest.raises(ValueError, match="must be >= 16"):
        build_model(4, 8, 32, 3)


def test_model_module_uses_no_tensorflow():
    """Backend portability: the model imports only Keras, einops and the standard library."""
    tree = ast.parse(open(resnet21d.__file__, encoding="utf-8").read())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "typing", "einops", "keras"}


_BUILD = """
import json, sys
from vidshard.models.resnet21d import build_model
model = build_model(10, 64, 64, 10)
print(json.dumps({"params": model.count_params(), "backend": __import__("keras").backend.backend(),
                  "tensorflow_imported": "tensorflow" in sys.modules}))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_same_parameter_count_on_every_installed_backend(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (an optional extra): pip install -e '.[{backend}]'")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", _BUILD], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend
    assert result["params"] == tutorial_model(10, 64, 64, 10).count_params()
    if backend != "tensorflow":
        assert not result["tensorflow_imported"]
