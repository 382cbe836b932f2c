"""Train-time augmentation (``--augment flip,crop``) in both readers and in ``vidshard train``.

Every check compares an augmented reader with the same reader unaugmented (same seed, so the
same order and clips): a flipped clip must be the mirror image of the plain one, a cropped clip
must be one of the allowed scale-jitter crops of the plain one, resized back.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from vidshard import augment
from vidshard.cli import main
from vidshard.errors import VidshardError
from vidshard.readers.numpy_reader import ShardReader
from vidshard.testing.shards import make_shards

H, W = 24, 32


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("shards")
    make_shards(data_dir, splits={"train": 4, "val": 1}, n_frames=3, height=H, width=W)  # 12 train, 3 val clips
    return str(data_dir)


def numpy_clips(data_dir, augment_names=(), seed=5, epoch=0, split="train"):
    reader = ShardReader(data_dir, split, batch_size=None, seed=seed, epoch=epoch, num_workers=0,
                         augment=augment_names)
    return [frames for frames, _ in reader]


def tf_clips(data_dir, augment_names=(), seed=5, epochs=1):
    from vidshard.readers.tf_data import make_dataset

    ds = make_dataset(data_dir, "train", 4, shuffle=True, seed=seed, augment=augment_names)
    return [[clip for batch, _ in ds.as_numpy_iterator() for clip in batch] for _ in range(epochs)]


def allowed_boxes(height, width):
    """Every box ``crop_box`` can return for a frame of this size."""
    sizes = {augment.crop_box(u, 0.0, 0.0, height, width)[2:] for u in np.linspace(0, 1, 400, endpoint=False)}
    return [(top, left, h, w) for h, w in sorted(sizes) for top in range(height - h + 1) for left in range(width - w + 1)]


def closest_crop(plain, cropped):
    """The allowed box whose crop of ``plain`` (OpenCV, bilinear) is nearest ``cropped``, and that distance."""
    best = None
    for box in allowed_boxes(*plain.shape[1:3]):
        expected = plain.copy()
        augment.apply(expected, augment.Draw(box, False))
        distance = int(np.abs(expected.astype(int) - cropped).max())
        if best is None or distance < best[1]:
            best = (box, distance)
    return best


# -- the spec ------------------------------------------------------------------------------------

def test_names_parse_once_into_a_canonical_tuple_and_unknown_ones_are_refused():
    assert augment.parse_augment("flip,crop") == augment.parse_augment(["crop", "flip"]) == ("crop", "flip")
    assert augment.parse_augment("") == augment.parse_augment(None) == augment.parse_augment("none") == ()
    with pytest.raises(VidshardError, match="unknown augmentation 'blur': valid ones are crop, flip"):
        augment.parse_augment("flip,blur")
    from vidshard.models.train import TrainConfig

    assert TrainConfig(augment=["flip", "crop"]).augment == ("crop", "flip")  # as read back from config.json
    with pytest.raises(VidshardError, match="valid ones are crop, flip"):
        TrainConfig(augment=("mixup",))


def test_crop_boxes_stay_inside_the_frame_and_cover_half_to_all_of_it():
    rng = np.random.default_rng(0)
    for u in [*rng.random((500, 3)), (0.0, 0.0, 0.0), (0.999999, 0.999999, 0.999999)]:
        top, left, h, w = augment.crop_box(*u, H, W)
        assert 0 <= top <= H - h and 0 <= left <= W - w
        assert 0.5 - 0.1 < h * w / (H * W) <= 1.0  # area fraction in [0.5, 1], up to rounding
        assert abs(h / H - w / W) < 0.05  # the frame's aspect ratio
    assert augment.crop_box(0.999999, 0.5, 0.5, H, W) == (0, 0, H, W)


def test_apply_crops_the_box_resizes_it_back_and_mirrors():
    ramp = np.tile(np.arange(W, dtype=np.uint8) * 8, (2, H, 1))[..., None].repeat(3, axis=3)  # pixel = 8 * column
    cropped = ramp.copy()
    augment.apply(cropped, augment.Draw((0, 8, H // 2, W // 2), False))  # columns 8..23, zoomed x2
    assert cropped.shape == ramp.shape and cropped.dtype == np.uint8
    assert abs(int(cropped[0, 0, 0, 0]) - 64) <= 4 and abs(int(cropped[0, 0, -1, 0]) - 184) <= 4
    assert np.all(np.diff(cropped[0, 0, :, 0].astype(int)) >= 0)  # still a ramp, not shifted or mirrored
    flipped = ramp.copy()
    augment.apply(flipped, augment.Draw(None, True))
    np.testing.assert_array_equal(flipped, ramp[:, :, ::-1])


# -- the NumPy reader ------------------------------------------------------------------------------

def test_numpy_flip_mirrors_whole_clips_of_about_half_the_examples(shards):
    plain, flipped = numpy_clips(shards), numpy_clips(shards, "flip")
    fired = []
    for p, f in zip(plain, flipped, strict=True):
        assert not np.array_equal(p, np.flip(p, axis=2))  # so "mirrored" and "not" can be told apart
        if np.array_equal(f, np.flip(p, axis=2)):  # all frames of the clip mirrored alike
            fired.append(True)
        else:
            np.testing.assert_array_equal(f, p)
            fired.append(False)
    assert 0 < sum(fired) < len(fired)


def test_numpy_crop_is_one_allowed_crop_of_the_clip_same_box_for_every_frame(shards):
    plain, cropped = numpy_clips(shards), numpy_clips(shards, "crop")
    boxes = []
    for p, c in zip(plain[:4], cropped[:4], strict=True):
        assert c.shape == p.shape == (3, H, W, 3) and c.dtype == np.uint8
        box, distance = closest_crop(p, c)
        assert distance == 0, (box, distance)  # the same OpenCV resize: exactly one box's crop
        boxes.append(box)
    assert any(box != (0, 0, H, W) for box in boxes)  # the pixels did change


def test_numpy_augmentation_follows_seed_and_epoch_and_keeps_order_and_clips(shards):
    first = numpy_clips(shards, "flip,crop", epoch=1)
    assert all(np.array_equal(a, b) for a, b in zip(first, numpy_clips(shards, "flip,crop", epoch=1)))
    assert not all(np.array_equal(a, b) for a, b in zip(first, numpy_clips(shards, "flip,crop", epoch=2)))
    # The order and clips are the unaugmented reader's: labels in the same order.
    labels = [int(y) for _, y in ShardReader(shards, "train", None, seed=5, epoch=1, num_workers=0)]
    augmented = [int(y) for _, y in ShardReader(shards, "train", None, seed=5, epoch=1, num_workers=0,
                                                augment="flip,crop")]
    assert labels == augmented


def test_numpy_reader_refuses_augmenting_the_evaluation_mode_and_unknown_names(shards):
    with pytest.raises(ValueError, match="never augmented"):
        ShardReader(shards, "val", clips="all", augment="flip")
    with pytest.raises(VidshardError, match="valid ones are crop, flip"):
        ShardReader(shards, "train", augment="zoom")


# -- the tf.data reader ----------------------------------------------------------------------------

def test_tf_data_flip_mirrors_and_crop_is_an_allowed_crop(shards):
    (plain,), (flipped,), (cropped,) = tf_clips(shards), tf_clips(shards, "flip"), tf_clips(shards, "crop")
    fired = []
    for p, f in zip(plain, flipped, strict=True):
        fired.append(np.array_equal(f, np.flip(p, axis=2)))
        if not fired[-1]:
            np.testing.assert_array_equal(f, p)
    assert 0 < sum(fired) < len(fired)
    for p, c in zip(plain[:4], cropped[:4], strict=True):
        assert c.shape == p.shape and c.dtype == np.uint8
        _, distance = closest_crop(p, c)
        assert distance <= 1  # TensorFlow's bilinear resize against OpenCV's: within one level
    assert not all(np.array_equal(p, c) for p, c in zip(plain, cropped))


def test_tf_data_augmentation_is_seeded_and_new_every_epoch(shards):
    one, two = tf_clips(shards, "flip,crop", seed=9, epochs=2)
    again, _ = tf_clips(shards, "flip,crop", seed=9, epochs=2)
    assert all(np.array_equal(a, b) for a, b in zip(one, again))
    assert not all(np.array_equal(a, b) for a, b in zip(one, two))


def test_training_inputs_augment_the_train_split_only(shards, tmp_path):
    from vidshard.models.inputs import tf_data, tf_free_data
    from vidshard.readers.tf_data import make_dataset

    _, val, _ = tf_data(shards, "train", "val", 3, shuffle_buffer=10, seed=1, cache="memory",
                        cache_dir=str(tmp_path), augment=("crop", "flip"))
    plain_val = make_dataset(shards, "val", 3, shuffle=False, clips="all")
    for (x, _), (y, _) in zip(val.as_numpy_iterator(), plain_val.as_numpy_iterator(), strict=True):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="never augmented"):
        make_dataset(shards, "val", clips="all", augment="crop")
    train_seq, val_seq = tf_free_data(shards, "train", "val", 3, shuffle_buffer=10, seed=1, initial_epoch=0,
                                      augment=("crop", "flip"))
    assert train_seq.reader.augment == ("crop", "flip") and val_seq.reader.augment == ()


# -- vidshard train --augment ----------------------------------------------------------------------

def test_train_augment_is_recorded_kept_on_resume_and_checked(shards, tmp_path):
    run = str(tmp_path / "run")
    args = ["train", shards, run, "--epochs", "1", "--batch-size", "4", "--seed", "2"]
    result = CliRunner().invoke(main, [*args, "--augment", "flip,crop"])
    assert result.exit_code == 0, result.output
    with open(f"{run}/config.json") as fh:
        assert json.load(fh)["train"]["augment"] == ["crop", "flip"]
    resumed = CliRunner().invoke(main, [*args[:3], "--epochs", "2", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    with open(f"{run}/config.json") as fh:
        config = json.load(fh)
    assert config["train"]["augment"] == ["crop", "flip"] and config["resumed_at_epoch"] == 1
    with open(f"{run}/history.json") as fh:
        assert all(math.isfinite(v) for v in json.load(fh)["loss"])

    changed = CliRunner().invoke(main, [*args[:3], "--epochs", "3", "--resume", "--augment", "flip"])
    assert changed.exit_code == 2 and "--augment cannot change when resuming" in changed.output
    unknown = CliRunner().invoke(main, ["train", shards, str(tmp_path / "other"), "--augment", "flip,blur"])
    assert unknown.exit_code == 2
    assert "Invalid value for '--augment': unknown augmentation 'blur': valid ones are crop, flip" in unknown.output
