"""The tutorial's (2+1)D ResNet, written with Keras 3 portable layers only.

Same architecture and parameter count as the tutorial's model for the same frame shape and
class count: a (2+1)D stem, four residual blocks of (2+1)D convolutions with layer
normalization, spatial downsampling between blocks, global average pooling and a dense head.
Three changes, none of which adds a parameter:

* the model takes uint8 (or float) pixels in ``[0, 255]`` and scales them to ``[0, 1]`` itself
  (``Rescaling``), so the input pipeline can cache and ship uint8 clips, 4x smaller than float32;
* the custom layers are registered and have ``get_config``, so ``model.keras`` loads back;
* nothing inside the model uses TensorFlow: layers, ``keras.ops`` and einops run the same on
  the TensorFlow, JAX and PyTorch backends (``KERAS_BACKEND``).

Under a mixed-precision policy the head computes in float32 so that logits and loss stay stable.
"""
from __future__ import annotations

from typing import Any, Sequence

import einops
import keras
from keras import layers

_PACKAGE = "vidshard"

#: Filters of the four residual blocks (the tutorial's values).
BLOCK_FILTERS: tuple[int, ...] = (16, 32, 64, 128)

#: Each of the four downsamplings halves the frame, so smaller frames would vanish.
MIN_FRAME_SIZE = 2 ** len(BLOCK_FILTERS)

# A model compiled on PyTorch is saved with Keras's private PyTorch Adam as its optimizer (module
# ``keras.src.backend.torch.optimizers.torch_adam``, registered name "Adam"), and loading it would
# import that module, hence PyTorch, into whatever process loads it: in a TensorFlow process
# PyPI's CUDA build of PyTorch then crashes the interpreter.  That class is the public Adam's
# PyTorch implementation (same config), so the name maps to ``keras.optimizers.Adam``, which every
# backend builds as its own; this module is imported to load the model anyway (its layers).
keras.saving.get_custom_objects().setdefault("Adam", keras.optimizers.Adam)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Conv2Plus1D(layers.Layer):
    """A spatial ``(1, kh, kw)`` convolution followed by a temporal ``(kt, 1, 1)`` one.

    Factorising a 3D convolution this way needs ``(kh*kw + kt) * C^2`` weights instead of
    ``kt*kh*kw * C^2``.
    """

    def __init__(self, filters: int, kernel_size: Sequence[int], padding: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.padding = padding
        kt, kh, kw = self.kernel_size
        self.seq = keras.Sequential([
            layers.Conv3D(filters, kernel_size=(1, kh, kw), padding=padding, dtype=self.dtype_policy),
            layers.Conv3D(filters, kernel_size=(kt, 1, 1), padding=padding, dtype=self.dtype_policy),
        ])

    def build(self, input_shape):
        # Building the inner layers here (not lazily in call) lets a loaded model.keras find its weights.
        self.seq.build(input_shape)

    def call(self, x):
        return self.seq(x)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "padding": self.padding}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ResidualMain(layers.Layer):
    """Main branch of a residual block: (2+1)D conv, layer norm, ReLU, (2+1)D conv, layer norm."""

    def __init__(self, filters: int, kernel_size: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        policy = self.dtype_policy
        self.seq = keras.Sequential([
            Conv2Plus1D(filters, self.kernel_size, padding="same", dtype=policy),
            layers.LayerNormalization(dtype=policy),
            layers.ReLU(dtype=policy),
            Conv2Plus1D(filters, self.kernel_size, padding="same", dtype=policy),
            layers.LayerNormalization(dtype=policy),
        ])

    def build(self, input_shape):
        self.seq.build(input_shape)

    def call(self, x):
        return self.seq(x)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Project(layers.Layer):
    """Projects the residual branch to ``units`` channels (dense + layer norm) when widths differ."""

    def __init__(self, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.seq = keras.Sequential([
            layers.Dense(self.units, dtype=self.dtype_policy),
            layers.LayerNormalization(dtype=self.dtype_policy),
        ])

    def build(self, input_shape):
        self.seq.build(input_shape)

    def call(self, x):
        return self.seq(x)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ResizeVideo(layers.Layer):
    """Resizes every frame of ``[B, T, H, W, C]`` videos to ``height x width`` (bilinear).

    einops folds time into the batch so that the portable 2D ``Resizing`` layer does the work.
    """

    def __init__(self, height: int, width: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.height = int(height)
        self.width = int(width)
        self.resizing_layer = layers.Resizing(self.height, self.width, dtype=self.dtype_policy)

    def build(self, input_shape):
        self.resizing_layer.build((None, *input_shape[2:]))

    def call(self, video):
        old_shape = einops.parse_shape(video, "b t h w c")
        images = einops.rearrange(video, "b t h w c -> (b t) h w c")
        images = self.resizing_layer(images)
        return einops.rearrange(images, "(b t) h w c -> b t h w c", t=old_shape["t"])

    def compute_output_shape(self, input_shape):
        batch, frames, _, _, channels = input_shape
        return (batch, frames, self.height, self.width, channels)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "height": self.height, "width": self.width}


def add_residual_block(x, filters: int, kernel_size: Sequence[int]):
    """Add a residual block; project the skip branch when the channel count changes."""
    out = ResidualMain(filters, kernel_size)(x)
    res = x
    if out.shape[-1] != x.shape[-1]:
        res = Project(out.shape[-1])(res)
    return layers.add([res, out])


def build_model(n_frames: int, height: int, width: int, num_classes: int) -> keras.Model:
    """Build the (2+1)D ResNet for ``[B, n_frames, height, width, 3]`` clips in ``[0, 255]``.

    Returns a functional model that outputs ``num_classes`` logits (not softmax), as the
    tutorial's model does; train it with ``SparseCategoricalCrossentropy(from_logits=True)``.
    """
    if height < MIN_FRAME_SIZE or width < MIN_FRAME_SIZE:
        raise ValueError(f"frames of {height}x{width} are too small: the model halves them "
                         f"{len(BLOCK_FILTERS)} times, so both sides must be >= {MIN_FRAME_SIZE}")
    if n_frames < 1 or num_classes < 2:
        raise ValueError(f"need at least 1 frame and 2 classes, got {n_frames} frames, {num_classes} classes")
    inputs = keras.Input(shape=(n_frames, height, width, 3), name="clips")
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = Conv2Plus1D(filters=16, kernel_size=(3, 7, 7), padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = ResizeVideo(height // 2, width // 2)(x)
    for i, filters in enumerate(BLOCK_FILTERS):
        x = add_residual_block(x, filters, (3, 3, 3))
        if i + 1 < len(BLOCK_FILTERS):
            scale = 2 ** (i + 2)
            x = ResizeVideo(height // scale, width // scale)(x)
    x = layers.GlobalAveragePooling3D()(x)
    x = layers.Flatten()(x)
    # float32 logits even under a mixed-precision policy (no parameter changes).
    outputs = layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name="resnet21d")
