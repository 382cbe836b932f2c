"""Shared fixtures: small UCF101-shaped videos and zips written with OpenCV."""
from __future__ import annotations

import pytest

from vidshard.testing.synthetic import MOTION_CLASSES, VideoSpec, make_ucf_zip

#: Tiny frames keep the default test run fast; shapes and codecs are still UCF101's.
TINY = VideoSpec(total_frames=40, width=64, height=48, fourcc="XVID")


@pytest.fixture(scope="session")
def tiny_spec() -> VideoSpec:
    return TINY


@pytest.fixture(scope="session")
def ucf_zip(tmp_path_factory) -> tuple:
    """A zip of 3 classes x 3 groups x 2 clips of tiny XVID videos; returns (path, member names)."""
    path = tmp_path_factory.mktemp("ucf") / "sample.zip"
    names = make_ucf_zip(path, classes=MOTION_CLASSES[:3], groups=3, clips_per_group=2, spec=TINY)
    return path, names


@pytest.fixture
def ucf_http(ucf_zip):
    """Serve the ``ucf_zip`` fixture's directory over HTTP with Range support; yield (url, server).

    Function-scoped so every test starts with an empty request log and no injected faults
    (``server.set_faults(...)`` injects them; ``server.log`` / ``server.bytes_sent`` count).
    """
    from vidshard.testing.rangeserver import RangeServer

    path, _ = ucf_zip
    with RangeServer(path.parent) as server:
        yield server.url(path.name), server
