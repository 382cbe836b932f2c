"""The cost of object storage's protocol on one machine: the same job from and to a local S3 server
(moto, 127.0.0.1) against local files, one run each, and the bytes requested against the bytes of
the videos (docs/benchmarks.md).  ``python -m vidshard.bench.objectstore [--videos N]``; needs
``pip install -e ".[s3]"``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from vidshard.testing.objectstores import TEST_ACCESS_KEY, TEST_SECRET_KEY, MotoServer, StoreProxy
from vidshard.testing.synthetic import MOTION_CLASSES, VideoSpec, make_ucf_zip

JOB = ["--splits", "train=0.8,test=0.2", "--shards", "2"]


def _shard(*args: str) -> float:
    """Wall seconds of one ``vidshard shard`` in a fresh interpreter."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "vidshard.cli", "shard", *args, *JOB], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos-per-class", type=int, default=15, help="4 classes, UCF101-shaped 320x240 XVID")
    args = parser.parse_args()
    import boto3

    with tempfile.TemporaryDirectory(prefix="vidshard-bench-") as folder:
        tmp = Path(folder)
        archive = tmp / "ucf.zip"
        make_ucf_zip(archive, classes=MOTION_CLASSES[:4], groups=5, clips_per_group=-(-args.videos_per_class // 5),
                     spec=VideoSpec(total_frames=150, width=320, height=240))
        with zipfile.ZipFile(archive) as opened:
            members = [info for info in opened.infolist() if info.filename.endswith(".avi")]
        video_bytes = sum(info.compress_size for info in members)
        local = _shard(str(archive), str(tmp / "out"))
        with MotoServer() as server, StoreProxy(server.endpoint) as proxy:
            client = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=TEST_ACCESS_KEY,
                                  aws_secret_access_key=TEST_SECRET_KEY, region_name="us-east-1")
            client.create_bucket(Bucket="bench")
            client.upload_file(str(archive), "bench", "ucf.zip")
            def options(endpoint: str) -> list[str]:
                return [f"--s3_endpoint_url={endpoint}", f"--s3_access_key_id={TEST_ACCESS_KEY}",
                        f"--s3_secret_access_key={TEST_SECRET_KEY}", "--s3_region_name=us-east-1"]

            remote = _shard("s3://bench/ucf.zip", "s3://bench/out", *options(server.endpoint))
            # Once more through the counting proxy (a Python relay, slower): what was requested.
            proxied = _shard("s3://bench/ucf.zip", "s3://bench/out-counted", *options(proxy.endpoint))
            gets = [record for record in proxy.log if record.method == "GET" and record.path.endswith("/ucf.zip")]
            identical = all(
                client.get_object(Bucket="bench", Key=f"out/{path.name}")["Body"].read() == path.read_bytes()
                for path in (tmp / "out").iterdir() if path.name != "dataset_info.json")
            requests = len(proxy.log)
        requested = sum(record.body_bytes for record in gets)
        print(json.dumps({
            "videos": len(members), "video_bytes": video_bytes,
            "local_to_local_s": round(local, 1), "s3_to_s3_s": round(remote, 1),
            "s3_to_s3_through_the_counting_proxy_s": round(proxied, 1),
            "zip_gets": len(gets), "zip_bytes_requested": requested,
            "requested_over_video_bytes": round(requested / video_bytes, 4),
            "s3_requests_of_the_counted_run": requests, "shards_and_errors_byte_identical": identical,
        }, indent=1))


if __name__ == "__main__":
    main()
