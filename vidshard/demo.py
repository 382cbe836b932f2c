"""The end-to-end demo: a UCF101-shaped zip, served over HTTP, sharded with Beam, trained, evaluated.

Everything runs offline on this machine and goes through the same commands a user types
(``vidshard shard URL``, ``vidshard train``, ``vidshard evaluate``), so the demo also proves that
the parts fit: range requests against a real HTTP server, the DirectRunner in
``multi_processing`` mode, the tf.data reader and the (2+1)D ResNet.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vidshard.testing.rangeserver import RangeServer
from vidshard.testing.synthetic import MOTION_CLASSES, VideoSpec, make_ucf_zip


@dataclass(frozen=True)
class DemoConfig:
    """A configuration small enough for 2 CPU cores in a few minutes, large enough to learn from."""

    #: Four directions 90 degrees apart: right, down, left, up.
    classes: tuple[str, ...] = MOTION_CLASSES[::2]
    groups: int = 9
    clips_per_group: int = 4
    video: VideoSpec = VideoSpec(num_frames=75, width=160, height=120)
    n_frames: int = 10
    frame_step: int = 5
    size: int = 64
    #: Per class: 6 groups to train, 1 to validate, 2 to test (whole groups, no leakage).
    splits: str = "train=24,val=4,test=8"
    epochs: int = 40
    batch_size: int = 8
    learning_rate: float = 5e-4
    seed: int = 0


def run_demo(workdir: str | os.PathLike, config: DemoConfig = DemoConfig(),
             echo: Callable[[str], None] = print) -> dict:
    """Run the whole job in ``workdir`` and return the test metrics (as ``evaluate`` wrote them)."""
    from vidshard.cli import main as vidshard

    work = Path(workdir)
    data_dir, shards, run_dir = work / "source", work / "shards", work / "run"
    data_dir.mkdir(parents=True, exist_ok=True)
    zip_path = data_dir / "ucf_demo.zip"
    started = time.perf_counter()
    names = make_ucf_zip(zip_path, classes=config.classes, groups=config.groups,
                         clips_per_group=config.clips_per_group, spec=config.video, seed=config.seed)
    echo(f"[1/4] wrote {len(names)} UCF101-shaped videos ({len(config.classes)} classes) to {zip_path}")

    def step(args: list[str]) -> None:
        vidshard.main(args=args, prog_name="vidshard", standalone_mode=False)

    with RangeServer(data_dir) as server:
        url = server.url(zip_path.name)
        echo(f"[2/4] sharding {url} over HTTP range requests with Beam's DirectRunner ...")
        step(["shard", url, str(shards), "--splits", config.splits, "--seed", str(config.seed),
              "--n-frames", str(config.n_frames), "--frame-step", str(config.frame_step),
              "--size", str(config.size), "--overwrite"])
        echo(f"      {server.requests_served} range requests, {server.bytes_sent / 2**20:.1f} MiB sent "
             f"of a {zip_path.stat().st_size / 2**20:.1f} MiB zip")
    echo(f"[3/4] training the (2+1)D ResNet for {config.epochs} epochs ...")
    shutil.rmtree(run_dir, ignore_errors=True)  # the demo owns its workdir: a rerun starts afresh
    step(["train", str(shards), str(run_dir), "--epochs", str(config.epochs), "--batch-size", str(config.batch_size),
          "--learning-rate", str(config.learning_rate), "--seed", str(config.seed)])
    echo("[4/4] evaluating on the test split ...")
    step(["evaluate", str(run_dir), "--split", "test"])
    metrics = json.loads((run_dir / "eval" / "test" / "metrics.json").read_text())
    echo(f"Done in {time.perf_counter() - started:.0f} s. Test accuracy {metrics['accuracy']:.3f} "
         f"(chance {1 / len(config.classes):.2f}).")
    echo(f"  shards:           {shards}")
    echo(f"  training curves:  {run_dir / 'history.png'}")
    echo(f"  confusion matrix: {run_dir / 'eval' / 'test' / 'confusion_matrix.png'}")
    echo(f"  metrics:          {run_dir / 'eval' / 'test' / 'metrics.json'}")
    return metrics
