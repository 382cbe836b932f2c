"""Beam's Java job servers for Spark and Flink: which jar runs, where it comes from, and the checks before any work.

Beam's Python ``SparkRunner`` and ``FlinkRunner`` start a Java job server
(``java -jar JAR --spark-master-url ...``) that translates the pipeline for the cluster.  Beam
downloads that jar from Maven Central as one shaded artifact
(``org.apache.beam:beam-runners-spark-3-job-server:<beam version>``,
``beam-runners-flink-<X.Y>-job-server``) into its jar cache, ``~/.apache_beam/cache/jars/``.
The package index this project's machines reach serves none of those shaded job-server jars, at
any version; it does serve the runner modules they are built from (``beam-runners-spark-3``,
``beam-runners-flink-1.19``) with their dependencies, at :data:`JOB_SERVER_BEAM_VERSION`.  So
:func:`assemble` builds the job server the way Beam's build does, from those modules: ``mvn
dependency:copy-dependencies`` into a folder of Beam's jar cache, plus a launcher jar whose
manifest names the driver class and the class path (for Spark, the cluster's own Spark jars,
from pyspark, so the driver speaks the cluster's exact Spark version).

:func:`check_runner_environment` runs before any work (no listing, no staging): Java is there,
the Spark master or Flink JobManager answers, the Flink cluster's version is the runner's, and a
job-server jar is there or can be fetched.  :func:`job_server_args` adds
``--spark_job_server_jar`` / ``--flink_job_server_jar`` naming an assembled jar when the user
named none and Beam's own jar is not in its cache.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

from apache_beam.options.pipeline_options import (
    FlinkRunnerOptions, JobServerOptions, PipelineOptions, PortableOptions, SparkRunnerOptions, StandardOptions,
)
from vidshard.errors import VidshardError

#: The newest Beam release whose runner modules (``beam-runners-spark-3``,
#: ``beam-runners-flink-1.19``) and every dependency of them the package index here serves;
#: Beam's shaded ``*-job-server`` jars are served at no version, 2.63-2.77 lack modules
#: (``beam-runners-java-job-service`` 2.70.0, for one).  A job server of this version runs the
#: pipelines of the installed Python SDK (tests/test_spark.py, tests/test_flink.py).
JOB_SERVER_BEAM_VERSION = "2.62.0"

#: The JVM options Beam's SparkRunner gives its job server (Java 17 module access); Flink's needs none more.
JVM_OPENS = ("--add-opens=java.base/sun.nio.ch=ALL-UNNAMED", "--add-opens=java.base/java.nio=ALL-UNNAMED",
             "--add-opens=java.base/java.util=ALL-UNNAMED", "--add-opens=java.base/java.lang.invoke=ALL-UNNAMED")

#: Where Maven Central serves Beam's jars (``JavaJarServer.MAVEN_CENTRAL_REPOSITORY``, Beam's own download).
MAVEN_CENTRAL = "https://repo.maven.apache.org/maven2"
#: Beam's default jar cache (``JavaJarServer.JAR_CACHE``); ``--jar_cache_dir`` moves it.
JAR_CACHE = os.path.expanduser(os.path.join("~", ".apache_beam", "cache", "jars"))


@dataclass(frozen=True)
class JobServer:
    """One runner's job server: the Maven module that holds its driver, and Beam's names for it."""

    runner: str  #: ``spark`` or ``flink``
    module: str  #: the Maven artifact that holds the driver class
    main_class: str
    beam_target: str  #: Beam's Gradle target of its shaded jar (Beam derives the Maven URL from it)
    jar_option: str  #: the Beam option that names a job-server jar

    @property
    def label(self) -> str:
        return "Spark" if self.runner == "spark" else "Flink"


def spark_job_server() -> JobServer:
    """Spark 3 (Beam's only Spark runner): ``beam-runners-spark-3``."""
    return JobServer("spark", "beam-runners-spark-3", "org.apache.beam.runners.spark.SparkJobServerDriver",
                     ":runners:spark:3:job-server:shadowJar", "--spark_job_server_jar")


def flink_job_server(flink_version: str) -> JobServer:
    """Flink ``X.Y``: ``beam-runners-flink-X.Y`` (the minor version must be the cluster's)."""
    return JobServer("flink", f"beam-runners-flink-{flink_version}", "org.apache.beam.runners.flink.FlinkJobServerDriver",
                     f":runners:flink:{flink_version}:job-server:shadowJar", "--flink_job_server_jar")


def jar_cache_dir(options: PipelineOptions | None = None) -> str:
    """Beam's jar cache (``--jar_cache_dir``, by default ``~/.apache_beam/cache/jars``)."""
    configured = options.view_as(JobServerOptions).jar_cache_dir if options is not None else None
    return configured or JAR_CACHE


def _modules_dir(server: JobServer, cache_dir: str | None, version: str) -> str:
    """The folder of Beam's jar cache that holds the runner module and its dependencies, as Maven fetched them."""
    return os.path.join(cache_dir or JAR_CACHE, f"vidshard-{server.module}-job-server-{version}")


def assembled_jar(server: JobServer, cache_dir: str | None = None, version: str = JOB_SERVER_BEAM_VERSION) -> str:
    """The launcher jar that :func:`assemble` writes, in Beam's jar cache.

    A Spark job server's class path names the Spark jars of one pyspark installation, so its
    name carries a digest of that folder: every virtualenv gets its own launcher, over one copy of
    the modules Maven fetched.
    """
    suffix = ""
    if server.runner == "spark":
        folder = _spark_jars_dir()
        suffix = "-" + hashlib.sha256(folder.encode("utf-8")).hexdigest()[:10] if folder else "-no-pyspark"
    return _modules_dir(server, cache_dir, version) + f"{suffix}.jar"


def executor_class_path(jar: str) -> list[str]:
    """The jars an assembled Spark job server's executors must load before Spark's own (see :func:`class_path`)."""
    try:
        with open(jar + ".json", encoding="utf-8") as sidecar:
            return list(json.load(sidecar)["executor_class_path"])
    except (OSError, ValueError, KeyError):
        return []


def beam_jar_url(server: JobServer) -> str:
    """Where Beam itself would download this runner's shaded job-server jar for the installed SDK."""
    # Imported here: the module logs a warning about BigQuery clients when it is imported.
    from apache_beam.utils.subprocess_server import JavaJarServer

    return JavaJarServer.path_to_beam_jar(server.beam_target)


def _pom(server: JobServer, version: str, exclude_spark: bool) -> str:
    exclusions = ("<exclusions><exclusion><groupId>org.apache.spark</groupId><artifactId>*</artifactId>"
                  "</exclusion></exclusions>") if exclude_spark else ""
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>vidshard.jobserver</groupId><artifactId>{server.module}-job-server</artifactId><version>{version}</version>
  <dependencies>
    <dependency><groupId>org.apache.beam</groupId><artifactId>{server.module}</artifactId><version>{version}</version>
      {exclusions}
    </dependency>
  </dependencies>
</project>
"""


_JAR_NAME = re.compile(r"^(?P<name>.*?)-(?P<version>\d[\w.\-]*)\.jar$")


def _name_version(path: str) -> tuple[str, list[tuple[int, int | str]]]:
    """(artifact name, comparable version) of a jar file named ``NAME-VERSION.jar``."""
    match = _JAR_NAME.match(os.path.basename(path))
    if match is None:
        return os.path.basename(path), []
    return match["name"], [(0, int(part)) if part.isdigit() else (1, part)
                           for part in re.split(r"[.\-]", match["version"])]


def class_path(base_jars: Sequence[str], added_jars: Sequence[str]) -> tuple[list[str], list[str]]:
    """``base_jars`` (the cluster's own, e.g. pyspark's Spark) plus ``added_jars``, one version of each artifact.

    Where both hold an artifact (by file name without version), the newer version stays: Beam's
    Google Cloud client needs Guava 33, where Spark ships Guava 14 (and relocates its own use of it).
    Every base jar stays otherwise (classifiers and shims share names there).  Returns the class
    path and the added jars that replaced a base jar (Spark's executors must load those first).
    """
    paths = list(base_jars)
    names = Counter(_name_version(path)[0] for path in base_jars)
    single = {_name_version(path)[0]: index for index, path in enumerate(base_jars)
              if names[_name_version(path)[0]] == 1}
    for path in added_jars:
        name, version = _name_version(path)
        if name not in single:
            paths.append(path)
        elif version > _name_version(paths[single[name]])[1]:
            paths[single[name]] = path
    return paths, [path for path in paths if path in set(added_jars) and _name_version(path)[0] in single]


def write_launcher_jar(path: str, main_class: str, jars: Sequence[str]) -> None:
    """A jar that holds only a manifest: ``Main-Class`` and ``Class-Path`` (absolute file URLs), for ``java -jar``."""
    lines = ["Manifest-Version: 1.0", f"Main-Class: {main_class}",
             "Class-Path: " + " ".join("file:" + urllib.request.pathname2url(os.path.abspath(jar)) for jar in jars)]

    def wrapped(line: str) -> bytes:  # manifest lines are at most 72 bytes; continuations start with a space
        data = line.encode("utf-8")
        return b"\r\n ".join([data[:72]] + [data[i:i + 71] for i in range(72, len(data), 71)])

    tmp = f"{path}.{os.getpid()}.tmp"
    with zipfile.ZipFile(tmp, "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", b"\r\n".join(wrapped(line) for line in lines) + b"\r\n\r\n")
    os.replace(tmp, path)


def _spark_jars_dir() -> str | None:
    """pyspark's ``jars`` folder (found without importing pyspark), None without pyspark."""
    spec = importlib.util.find_spec("pyspark")
    return os.path.join(os.path.dirname(spec.origin), "jars") if spec and spec.origin else None


def spark_jars() -> list[str]:
    """The Spark jars of the installed pyspark (the Spark of a cluster started from it)."""
    folder = _spark_jars_dir()
    if folder is None:
        raise VidshardError("the Spark job server takes Spark's jars from pyspark, which is not installed: "
                            "pip install 'vidshard[spark]'")
    return sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".jar"))


def _fetch_modules(server: JobServer, folder: str, version: str, log: Callable[[str], None]) -> None:
    """``mvn dependency:copy-dependencies`` of the runner module into ``folder`` (whole, or not at all)."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise VidshardError(f"assembling Beam's {server.label} job server needs Maven (`mvn`), which is not on PATH "
                            "(Debian: apt-get install maven)")
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    staging = f"{folder}.{os.getpid()}.part"
    with tempfile.TemporaryDirectory(prefix="vidshard-jobserver-") as work:
        with open(os.path.join(work, "pom.xml"), "w", encoding="utf-8") as pom:
            pom.write(_pom(server, version, exclude_spark=server.runner == "spark"))
        log(f"fetching org.apache.beam:{server.module}:{version} and its dependencies from {MAVEN_CENTRAL} with Maven")
        proc = subprocess.run([mvn, "-B", "-q", "dependency:copy-dependencies", "-DincludeScope=runtime",
                               f"-DoutputDirectory={staging}"], cwd=work, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        output = proc.stdout + proc.stderr
        missing = re.search(r"Could not (?:find|transfer) artifact (\S+)", output)
        where = re.search(r"\((https?://[^)\s]+)\)", output)
        what = missing.group(1) if missing else f"org.apache.beam:{server.module}:{version} or a dependency of it"
        reason = next((line for line in output.splitlines() if "ERROR" in line), output.strip()[-300:])
        reason = re.sub(r"\x1b\[[0-9;]*m", "", reason).replace("[ERROR]", "").strip()
        raise VidshardError(f"{what} cannot be fetched from {where.group(1) if where else MAVEN_CENTRAL} "
                            f"(mvn: {reason[:300]})")
    if os.path.isdir(folder):  # another process got there first
        shutil.rmtree(staging, ignore_errors=True)
    else:
        os.replace(staging, folder)


def assemble(server: JobServer, cache_dir: str | None = None, version: str = JOB_SERVER_BEAM_VERSION,
             log: Callable[[str], None] = lambda line: None) -> str:
    """Fetch ``server``'s runner module and dependencies with Maven into Beam's jar cache; return the launcher jar.

    Needs ``mvn`` (once; the modules are then reused) and, to run, ``java``.  For Spark the
    driver's Spark is pyspark's (see :func:`spark_jars`), and the jars that must win over Spark's
    own on the executors are recorded beside the launcher (:func:`executor_class_path`); for
    Flink the module's own Flink dependencies.  An assembled jar is reused.  A jar Maven cannot
    fetch is one :class:`VidshardError` naming the artifact and the repository.
    """
    target = assembled_jar(server, cache_dir, version)
    if os.path.exists(target):
        return target
    base = spark_jars() if server.runner == "spark" else []
    folder = _modules_dir(server, cache_dir, version)
    if not os.path.isdir(folder):
        _fetch_modules(server, folder, version, log)
    added = sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".jar"))
    jars, first = class_path(base, added)
    with open(f"{target}.json.{os.getpid()}.tmp", "w", encoding="utf-8") as sidecar:
        json.dump({"executor_class_path": first, "base": os.path.dirname(base[0]) if base else None}, sidecar)
    os.replace(f"{target}.json.{os.getpid()}.tmp", f"{target}.json")
    write_launcher_jar(target, server.main_class, jars)
    log(f"assembled {target}")
    return target


def _runner_kind(options: PipelineOptions) -> str | None:
    """``spark`` or ``flink`` for Beam's SparkRunner / FlinkRunner however spelt, else None."""
    runner = (options.view_as(StandardOptions).runner or "").rsplit(".", 1)[-1].lower().removesuffix("runner")
    return runner if runner in ("spark", "flink") else None


def _server(options: PipelineOptions, kind: str) -> JobServer:
    return spark_job_server() if kind == "spark" else flink_job_server(options.view_as(FlinkRunnerOptions).flink_version)


def _given_jar(options: PipelineOptions, kind: str) -> str | None:
    view = options.view_as(SparkRunnerOptions) if kind == "spark" else options.view_as(FlinkRunnerOptions)
    return view.spark_job_server_jar if kind == "spark" else view.flink_job_server_jar


def _starts_job_server(options: PipelineOptions, kind: str) -> bool:
    """Whether Beam will start a Java job server (no ``--job_endpoint``, no uber-jar submission)."""
    if options.view_as(PortableOptions).job_endpoint:
        return False
    if kind == "spark":
        return not options.view_as(SparkRunnerOptions).spark_submit_uber_jar
    return not options.view_as(FlinkRunnerOptions).flink_submit_uber_jar


def job_server_args(beam_args: Sequence[str]) -> list[str]:
    """``beam_args``, plus the jar option naming an assembled job server where Beam would otherwise download one.

    Nothing changes unless the runner is Spark or Flink, Beam starts a job server, the user named
    no jar, Beam's own jar is not in its cache and an assembled one is.
    """
    options = PipelineOptions(list(beam_args))
    kind = _runner_kind(options)
    if kind is None or not _starts_job_server(options, kind) or _given_jar(options, kind):
        return list(beam_args)
    server = _server(options, kind)
    cache = jar_cache_dir(options)
    if os.path.exists(os.path.join(cache, os.path.basename(beam_jar_url(server)))):
        return list(beam_args)
    assembled = assembled_jar(server, cache)
    if not os.path.exists(assembled):
        return list(beam_args)
    added = [f"{server.jar_option}={assembled}"]
    first = executor_class_path(assembled)
    given = options.view_as(JobServerOptions).job_server_jvm_properties or []
    if first and not any("spark.executor.extraClassPath" in prop for prop in given):
        # The driver's Spark configuration reads spark.* system properties: executors put these
        # jars before Spark's own (Guava 33 before Spark's Guava 14).
        added.append(f"--job_server_jvm_properties=-Dspark.executor.extraClassPath={os.pathsep.join(first)}")
    return [*beam_args, *added]


def _answers(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _check_spark_master(url: str) -> None:
    """A ``spark://host:port[,host:port]`` master must answer on one of its addresses; ``local[...]`` needs none."""
    if not url.startswith("spark://"):
        return
    addresses = url[len("spark://"):].split(",")
    for address in addresses:
        host, _, port = address.rpartition(":")
        if host and port.isdigit() and _answers(host, int(port)):
            return
    raise VidshardError(f"--spark_master_url {url}: no Spark master answers at {', '.join(addresses)} "
                        "(start one: python -m vidshard.testing.clusters start spark DIR)")


def flink_cluster_version(master: str, timeout: float = 5.0) -> str:
    """The Flink version a JobManager's REST endpoint reports (``GET /config``)."""
    base = master if "://" in master else f"http://{master}"
    try:
        with urllib.request.urlopen(base.rstrip("/") + "/config", timeout=timeout) as answer:
            return str(json.load(answer)["flink-version"])
    except (OSError, ValueError, KeyError) as exc:
        raise VidshardError(f"--flink_master {master}: no Flink JobManager answers there ({exc}); start one "
                            "(python -m vidshard.testing.clusters start flink DIR) or fix the address") from None


def _check_flink_master(options: PipelineOptions) -> None:
    flink = options.view_as(FlinkRunnerOptions)
    if flink.flink_master in ("[auto]", "[local]"):
        return
    version = flink_cluster_version(flink.flink_master)
    if ".".join(version.split(".")[:2]) != flink.flink_version:
        raise VidshardError(f"--flink_version {flink.flink_version}: the Flink cluster at {flink.flink_master} is "
                            f"Flink {version}; pass --flink_version {'.'.join(version.split('.')[:2])} "
                            "(the runner's minor version must be the cluster's)")


def _check_jar(options: PipelineOptions, server: JobServer) -> None:
    """A named jar must exist (a path) or answer (a URL); without one, Beam's or an assembled jar must be at hand."""
    given = _given_jar(options, server.runner)
    if given:
        if urllib.parse.urlparse(given).scheme in ("http", "https"):
            _check_url(given, f"{server.jar_option} {given}")
        elif not os.path.isfile(given):
            raise VidshardError(f"{server.jar_option} {given}: no such file")
        return
    cache = jar_cache_dir(options)
    url = beam_jar_url(server)
    if os.path.exists(os.path.join(cache, os.path.basename(url))) or os.path.exists(assembled_jar(server, cache)):
        return
    command = f"python -m vidshard.testing.clusters jar {server.runner}"
    if server.runner == "flink":
        command += f" --flink-version {options.view_as(FlinkRunnerOptions).flink_version}"
    _check_url(url, f"Beam's {server.label} job server {os.path.basename(url)}",
               f"; assemble one from Beam's runner modules with `{command}` or pass {server.jar_option}")


def _check_url(url: str, what: str, hint: str = "") -> None:
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "vidshard"})
    try:
        urllib.request.urlopen(request, timeout=15).close()
    except urllib.error.HTTPError as exc:
        raise VidshardError(f"{what} cannot be fetched from {url}: HTTP {exc.code}{hint}") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise VidshardError(f"{what} cannot be fetched from {url}: {reason}{hint}") from None


def check_runner_environment(beam_args: Sequence[str]) -> None:
    """Before any work, for SparkRunner and FlinkRunner: Java, the cluster, its version, the job-server jar.

    Each problem is one :class:`VidshardError`; other runners pass untouched.
    """
    options = PipelineOptions(list(beam_args))
    kind = _runner_kind(options)
    if kind is None:
        return
    if kind == "spark":
        _check_spark_master(options.view_as(SparkRunnerOptions).spark_master_url)
    else:
        _check_flink_master(options)
    if not _starts_job_server(options, kind):
        return
    server = _server(options, kind)
    java = options.view_as(JobServerOptions).job_server_java_launcher
    if shutil.which(java) is None:
        raise VidshardError(f"--runner {kind.capitalize()}Runner starts Beam's {server.label} job server, a Java "
                            f"program, and `{java}` is not on PATH (install Java 17, e.g. apt-get install "
                            "openjdk-17-jre-headless)")
    _check_jar(options, server)
