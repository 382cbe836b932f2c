"""``vidshard bench``: measure vidshard against the tutorial's input path on the same videos."""
from __future__ import annotations

import tempfile

import click

from vidshard.cli.shard_cmd import parse_size
from vidshard.testing.synthetic import MOTION_CLASSES, VideoSpec

#: ``--video-size`` and ``--size``: N or HxW, parsed as shard's --size is.
_SIZE = {"callback": lambda _ctx, _param, value: parse_size(value)}


@click.command("bench")
@click.option("--videos", default=200, show_default=True, type=click.IntRange(min=1),
              help="Videos to generate and shard (the large run).")
@click.option("--small-videos", default=50, show_default=True, type=click.IntRange(min=1),
              help="Videos of the small run (peak-memory comparison).")
@click.option("--classes", default=4, show_default=True, type=click.IntRange(1, len(MOTION_CLASSES)),
              help="Motion classes of the generated videos.")
@click.option("--video-size", default="240x320", show_default=True, **_SIZE,
              help="Generated video HxW (UCF101: 240x320).")
@click.option("--video-frames", default=175, show_default=True, type=click.IntRange(min=1),
              help="Frames per generated video (UCF101: ~7 s at 25 fps).")
@click.option("--size", "size_text", default="224", show_default=True, **_SIZE, help="Clip frame size, N or HxW.")
@click.option("--n-frames", default=10, show_default=True, type=click.IntRange(min=1), help="Frames per clip.")
@click.option("--frame-step", default=15, show_default=True, type=click.IntRange(min=1),
              help="Source frames between two kept frames.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1),
              help="Batch of the input-rate and training rows (b, e).")
@click.option("--train-videos", default=32, show_default=True, type=click.IntRange(min=1),
              help="Clips per timed training epoch (e).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Beam workers for shard (default: all cores).")
@click.option("--job-sizes", default="1,60,500", show_default=True, metavar="N,N,...",
              callback=lambda _c, _p, value: _job_sizes(value),
              help="Job sizes of the cost curve: each sharded end to end (as a user runs it) and through the "
                   "tutorial's loop. Empty: skip.")
@click.option("--workdir", type=click.Path(file_okay=False), default=None, help="Keep generated files here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write the results as JSON.")
def bench_command(videos, small_videos, classes, video_size, video_frames, size_text, n_frames, frame_step,
                  batch_size, train_videos, workers, job_sizes, workdir, json_path) -> None:
    """Benchmark vidshard against the tutorial's path (a Markdown table; ratios are taken in this run)."""
    from vidshard.bench.measure import BenchConfig, run_benchmark, save_json, to_markdown

    (video_h, video_w), (height, width) = video_size, size_text
    with tempfile.TemporaryDirectory(prefix="vidshard-bench-") as tmp:
        config = BenchConfig(
            workdir=workdir or tmp, videos=videos, small_videos=min(small_videos, videos), classes=classes,
            video=VideoSpec(total_frames=video_frames, width=video_w, height=video_h),
            n_frames=n_frames, frame_step=frame_step, height=height, width=width, batch_size=batch_size,
            train_videos=train_videos, job_sizes=job_sizes, **({"workers": workers} if workers else {}),
        )
        result = run_benchmark(config, log=lambda msg: click.echo(msg, err=True))
    click.echo(to_markdown(result))
    if json_path:
        save_json(result, json_path)


def _job_sizes(text: str) -> tuple[int, ...]:
    """``"1,60,500"`` -> (1, 60, 500); every size a positive whole number."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected whole numbers separated by commas")
    if any(size < 1 for size in sizes):
        raise click.BadParameter(f"{text!r}: every job size must be at least 1")
    return sizes
