"""Sources: remote zip (real HTTP Range on a local server), local zip and folder agree; every
error path is one clear line; hostile archives cannot reach the file system or memory."""
from __future__ import annotations

import os
import pickle
import shutil
import socket
import ssl
import struct
import subprocess
import warnings
import zipfile
from pathlib import Path

import pytest

from vidshard.errors import MemberReadError, SourceError
from vidshard.testing.rangeserver import Faults, RangeServer
from vidshard.sources import (
    DEFAULT_MAX_MEMBER_BYTES,
    FolderSource,
    LocalZipSource,
    Member,
    RemoteZipSource,
    SourceOptions,
    VIDEO_EXTENSIONS,
    open_source,
)

FAST = SourceOptions(timeout=2.0, retries=1, backoff=0.01)


def one_line_error(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text and text
    return text


@pytest.fixture(scope="module")
def extracted(ucf_zip, tmp_path_factory) -> Path:
    """The sample zip extracted to a folder (what the tutorial's download step leaves)."""
    path, _ = ucf_zip
    root = tmp_path_factory.mktemp("extracted")
    with zipfile.ZipFile(path) as zf:
        zf.extractall(root)
    return root


def test_three_kinds_list_the_same_members_with_the_same_bytes(ucf_zip, ucf_http, extracted):
    path, names = ucf_zip
    url, _ = ucf_http
    with zipfile.ZipFile(path) as zf:
        truth = {name: zf.read(name) for name in names}
    with open_source(url) as remote, open_source(str(path)) as local, open_source(str(extracted)) as folder:
        assert isinstance(remote, RemoteZipSource)
        assert isinstance(local, LocalZipSource)
        assert isinstance(folder, FolderSource)
        expected = [Member(name, len(truth[name])) for name in names]
        assert remote.list_members() == expected            # archive order
        assert local.list_members() == expected
        assert folder.list_members() == sorted(expected, key=lambda m: m.name)
        for name in names:
            assert remote.read(name) == local.read(name) == folder.read(name) == truth[name]


def test_open_source_accepts_path_objects(ucf_zip, extracted):
    path, names = ucf_zip
    with open_source(path) as local, open_source(extracted) as folder:
        assert {m.name for m in local.list_members()} == {m.name for m in folder.list_members()} == set(names)


def test_remote_source_reads_by_range_only(ucf_zip, ucf_http):
    path, names = ucf_zip
    url, server = ucf_http
    zip_size = path.stat().st_size
    with open_source(url) as source:
        source.list_members()
        listing_bytes = server.bytes_sent
        data = source.read(names[-1])
    gets = [entry for entry in server.log if entry.method == "GET"]
    assert gets and all(entry.range and entry.status == 206 for entry in gets)
    # Listing costs the 64 KiB tail (central directory included here), one member costs its own bytes.
    assert listing_bytes <= 64 * 1024 < zip_size
    assert server.bytes_sent - listing_bytes < len(data) + 1024
    assert server.bytes_sent < zip_size / 3


def test_non_video_members_and_directories_are_ignored(tmp_path, tiny_spec, ucf_http):
    from vidshard.testing.synthetic import make_ucf_zip

    extra = {
        "UCF101/readme.txt": b"not a video",
        "UCF101/empty_dir/": b"",
        "UCF101/v_Upper_g01_c01.MP4": b"upper-case extension is a video",
        "__MACOSX/UCF101/._v_MoveRight_g01_c01.avi": b"resource fork",
        "UCF101/v_MoveRight_g01_c01.avi.txt": b"text",
    }
    zpath = tmp_path / "mixed.zip"
    names = make_ucf_zip(zpath, classes=["MoveRight"], groups=1, clips_per_group=2, spec=tiny_spec,
                         extra_members=extra)
    expected = names + ["UCF101/v_Upper_g01_c01.MP4"]
    with open_source(zpath) as source:
        assert [m.name for m in source.list_members()] == expected
    folder = tmp_path / "folder"
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(folder)
    (folder / "train" / "MoveRight").mkdir(parents=True)      # empty <split>/<class> dirs
    with open_source(folder) as source:
        assert [m.name for m in source.list_members()] == sorted(expected)
    with RangeServer(tmp_path) as server, open_source(server.url("mixed.zip")) as source:
        assert [m.name for m in source.list_members()] == expected


def test_folder_in_tutorial_layout(tmp_path, ucf_zip):
    """<split>/<class>/<file> as the tutorial's download_ucf_101_subset leaves it."""
    path, names = ucf_zip
    with zipfile.ZipFile(path) as zf:
        for i, name in enumerate(names):
            split = "train" if i % 2 else "test"
            cls = name.split("_")[1]
            target = tmp_path / split / cls / Path(name).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(name))
            expected_bytes = zf.read(name)
    with open_source(tmp_path) as source:
        members = source.list_members()
        assert len(members) == len(names)
        assert [m.name for m in members] == sorted(m.name for m in members)
        assert all(m.name.split("/")[0] in ("train", "test") for m in members)
        last = f"{'train' if (len(names) - 1) % 2 else 'test'}/{names[-1].split('_')[1]}/{Path(names[-1]).name}"
        assert source.read(last) == expected_bytes


# ---------------------------------------------------------------------------------------------
# errors that stop the source: one clear line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_host(tmp_path):
    with pytest.raises(SourceError) as err:
        open_source(f"http://127.0.0.1:{free_port()}/x.zip", FAST)
    assert "cannot connect" in one_line_error(err) and "refused" in str(err.value).lower()


def test_http_404(ucf_http):
    url, _ = ucf_http
    with pytest.raises(SourceError) as err:
        open_source(url.replace("sample.zip", "missing.zip"), FAST)
    assert "HTTP 404" in one_line_error(err)


def test_remote_not_a_zip_and_empty_file(tmp_path):
    (tmp_path / "page.zip").write_text("<html>not a zip</html>" * 100)
    (tmp_path / "empty.zip").write_bytes(b"")
    with RangeServer(tmp_path) as server:
        with pytest.raises(SourceError) as err:
            open_source(server.url("page.zip"), FAST)
        assert "is not a zip archive" in one_line_error(err)
        with pytest.raises(SourceError) as err:
            open_source(server.url("empty.zip"), FAST)
        assert "416" in one_line_error(err)


def test_local_not_a_zip(tmp_path):
    (tmp_path / "video.avi").write_bytes(b"RIFF....AVI ")
    with pytest.raises(SourceError) as err:
        open_source(tmp_path / "video.avi")
    assert "is not a zip archive" in one_line_error(err)


def test_zip_without_videos(tmp_path):
    zpath = tmp_path / "docs.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("UCF101/", b"")
        zf.writestr("UCF101/readme.txt", b"hello")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("x")
    with RangeServer(tmp_path) as server:
        for uri in (server.url("docs.zip"), str(zpath), str(tmp_path / "folder")):
            with open_source(uri, FAST) as source, pytest.raises(SourceError) as err:
                source.list_members()
            assert "no video members" in one_line_error(err) and ".avi" in str(err.value)


def test_missing_path(tmp_path):
    with pytest.raises(SourceError) as err:
        open_source(tmp_path / "nope.zip")
    assert one_line_error(err) == f"source not found: {tmp_path / 'nope.zip'}"


@pytest.mark.parametrize("uri", ["ftp://host/x.zip", "file:///tmp/x.zip", "hdfs://b/x.zip"])  # s3://, gs://: test_objectstore.py
def test_unsupported_scheme(uri):
    with pytest.raises(SourceError) as err:
        open_source(uri)
    assert "unsupported source" in one_line_error(err) and "http://, https://" in str(err.value)


def test_server_ignoring_range_is_refused(ucf_http):
    url, server = ucf_http
    server.set_faults(Faults(ignore_range=True))
    with pytest.raises(SourceError) as err:
        open_source(url, FAST)
    assert "server ignores HTTP Range requests" in one_line_error(err)
    assert [entry.status for entry in server.log] == [200]   # refused at once, not retried


def test_server_ignoring_range_on_a_member_read(ucf_zip, ucf_http):
    _, names = ucf_zip
    url, server = ucf_http
    with open_source(url, FAST) as source:
        server.set_faults(Faults(ignore_range=True))
        with pytest.raises(MemberReadError) as err:
            source.read(names[0])
    assert "ignores HTTP Range" in one_line_error(err)


def test_member_not_in_source(ucf_zip, ucf_http, extracted):
    path, _ = ucf_zip
    url, _ = ucf_http
    for uri in (url, str(path), str(extracted)):
        with open_source(uri, FAST) as source, pytest.raises(MemberReadError) as err:
            source.read("UCF101/v_Nope_g01_c01.avi")
        assert "v_Nope_g01_c01.avi" in one_line_error(err)


def test_options_are_validated_and_picklable():
    options = SourceOptions(timeout=1.5, retries=2, backoff=0.1, max_member_bytes=10, verify_tls=False)
    assert pickle.loads(pickle.dumps(options)) == options
    assert SourceOptions().verify_tls is True
    assert SourceOptions().max_member_bytes == DEFAULT_MAX_MEMBER_BYTES > 100 * 2**20
    assert ".avi" in VIDEO_EXTENSIONS and ".mp4" in VIDEO_EXTENSIONS
    for bad in (dict(timeout=0), dict(retries=-1), dict(backoff=-1), dict(max_member_bytes=0)):
        with pytest.raises(SourceError):
            SourceOptions(**bad)


# ---------------------------------------------------------------------------------------------
# TLS


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl command not available to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
        check=True, capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(d / "cert.pem", d / "key.pem")
    return context


def test_https_certificates_are_verified_by_default(ucf_zip, self_signed):
    path, names = ucf_zip
    with RangeServer(path.parent, ssl_context=self_signed) as server:
        url = server.url(path.name)
        assert url.startswith("https://")
        with pytest.raises(SourceError) as err:
            open_source(url, FAST)
        assert "certificate" in one_line_error(err).lower()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")    # urllib3's InsecureRequestWarning: expected here
            with open_source(url, SourceOptions(timeout=2.0, retries=1, backoff=0.01, verify_tls=False)) as source:
                assert [m.name for m in source.list_members()] == names


# ---------------------------------------------------------------------------------------------
# hostile archives


def patch_zip(path: Path, name: str, *, flag_or: int = 0, size: int | None = None) -> None:
    """Rewrite the local and central headers of member ``name``: OR flag bits, or lie about its size."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    data = bytearray(path.read_bytes())
    local = info.header_offset
    assert data[local:local + 4] == b"PK\x03\x04"
    raw_name = name.encode("utf-8" if info.flag_bits & 0x800 else "ascii")
    central = data.index(b"PK\x01\x02")  # first central entry
    while data[central + 46:central + 46 + len(raw_name)] != raw_name:
        central = data.index(b"PK\x01\x02", central + 4)
    for flag_at, size_at in ((local + 6, local + 22), (central + 8, central + 24)):
        flags = struct.unpack_from("<H", data, flag_at)[0] | flag_or
        struct.pack_into("<H", data, flag_at, flags)
        if size is not None:
            struct.pack_into("<I", data, size_at, size)
    path.write_bytes(bytes(data))


def snapshot(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


HOSTILE = {
    "../evil_up.avi": b"up" * 100,
    "UCF101/../../evil_deep.avi": b"deep" * 100,
    "/tmp/vidshard_evil_abs.avi": b"abs" * 100,
    "C:\\vidshard_evil_drive.avi": b"drive" * 100,
    "C:/vidshard_evil_drive2.avi": b"drive2" * 100,
}


def test_hostile_member_names_are_only_ids(tmp_path, monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    zpath = tmp_path / "hostile.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name, data in HOSTILE.items():
            zf.writestr(name, data)
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    with RangeServer(tmp_path) as server:
        for uri in (str(zpath), server.url("hostile.zip")):
            with open_source(uri, FAST) as source:
                assert [m.name for m in source.list_members()] == list(HOSTILE)
                for name, data in HOSTILE.items():
                    assert source.read(name) == data
    assert snapshot(tmp_path) == before
    for outside in ("/tmp/vidshard_evil_abs.avi", "/vidshard_evil_drive.avi", "/vidshard_evil_drive2.avi",
                    str(tmp_path / "a" / "evil_up.avi"), str(tmp_path / "evil_deep.avi")):
        assert not os.path.exists(outside)


def test_folder_refuses_paths_outside_it(tmp_path):
    root = tmp_path / "videos"
    (root / "train" / "A").mkdir(parents=True)
    (root / "train" / "A" / "v_A_g01_c01.avi").write_bytes(b"inside")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "v_Secret_g01_c01.avi").write_bytes(b"outside")
    os.symlink(secret / "v_Secret_g01_c01.avi", root / "train" / "A" / "v_A_g01_c02.avi")   # file link out
    os.symlink(secret, root / "train" / "linked_out")                                       # dir link out
    os.symlink(root, root / "train" / "A" / "up")                                           # a cycle
    with open_source(root) as source:
        names = [m.name for m in source.list_members()]
        assert "train/A/v_A_g01_c02.avi" in names                  # listed, so its failure is recorded
        assert not any("linked_out" in n or "Secret" in n for n in names)
        assert names == ["train/A/v_A_g01_c01.avi", "train/A/v_A_g01_c02.avi"]   # the cycle is not walked
        assert source.read("train/A/v_A_g01_c01.avi") == b"inside"
        with pytest.raises(MemberReadError, match="outside the source folder"):
            source.read("train/A/v_A_g01_c02.avi")
        with pytest.raises(MemberReadError, match="outside the source folder"):
            source.read("train/linked_out/v_Secret_g01_c01.avi")
        for bad in ("../secret/v_Secret_g01_c01.avi", str(secret / "v_Secret_g01_c01.avi"), "train/A/../../../x.avi"):
            with pytest.raises(MemberReadError, match="not a video member name"):
                source.read(bad)


def test_folder_refuses_a_fifo_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "v_Fifo_g01_c01.avi")
    (tmp_path / "v_Ok_g01_c01.avi").write_bytes(b"ok")
    with open_source(tmp_path) as source:
        assert source.list_members() == [Member("v_Fifo_g01_c01.avi", 0), Member("v_Ok_g01_c01.avi", 2)]
        with pytest.raises(MemberReadError, match="not a regular file"):
            source.read("v_Fifo_g01_c01.avi")


def test_size_cap_on_declared_and_actual_size(ucf_zip, ucf_http, extracted):
    path, names = ucf_zip
    url, _ = ucf_http
    small = SourceOptions(timeout=2.0, retries=1, backoff=0.01, max_member_bytes=1000)
    for uri in (url, str(path), str(extracted)):
        with open_source(uri, small) as source:
            member = source.list_members()[0]
            assert member.size > 1000
            with pytest.raises(MemberReadError) as err:
                source.read(member.name)
            assert "exceeds the member size cap of 1000 bytes" in one_line_error(err)


def test_zip_bomb_with_lying_header_cannot_fill_memory(tmp_path):
    """A deflated member of 20 MB zeros whose headers claim 5000 bytes: never more than 5000 read."""
    zpath = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("UCF101/v_Bomb_g01_c01.avi", bytes(20 * 2**20))
        zf.writestr("UCF101/v_Fine_g01_c01.avi", b"fine")
    cap = SourceOptions(max_member_bytes=2**20)
    with open_source(zpath, cap) as source:
        with pytest.raises(MemberReadError, match="declared"):
            source.read("UCF101/v_Bomb_g01_c01.avi")
    patch_zip(zpath, "UCF101/v_Bomb_g01_c01.avi", size=5000)
    with RangeServer(tmp_path) as server:
        for uri in (str(zpath), server.url("bomb.zip")):
            with open_source(uri, SourceOptions(timeout=2.0, retries=1, backoff=0.01, max_member_bytes=2**20)) as source:
                assert source.list_members()[0] == Member("UCF101/v_Bomb_g01_c01.avi", 5000)
                with pytest.raises(MemberReadError) as err:
                    source.read("UCF101/v_Bomb_g01_c01.avi")
                assert "CRC" in one_line_error(err)
                assert source.read("UCF101/v_Fine_g01_c01.avi") == b"fine"


def test_encrypted_member_is_refused(tmp_path):
    zpath = tmp_path / "locked.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("UCF101/v_Locked_g01_c01.avi", b"secret video")
        zf.writestr("UCF101/v_Open_g01_c01.avi", b"open video")
    patch_zip(zpath, "UCF101/v_Locked_g01_c01.avi", flag_or=0x1)
    with RangeServer(tmp_path) as server:
        for uri in (str(zpath), server.url("locked.zip")):
            with open_source(uri, FAST) as source:
                assert len(source.list_members()) == 2
                with pytest.raises(MemberReadError) as err:
                    source.read("UCF101/v_Locked_g01_c01.avi")
                assert "encrypted" in one_line_error(err)
                assert source.read("UCF101/v_Open_g01_c01.avi") == b"open video"


def test_non_utf8_names(tmp_path):
    placeholder = "UCF101/v_CafX_g01_c01.avi"
    legacy, flagged = tmp_path / "legacy.zip", tmp_path / "flagged.zip"
    for path in (legacy, flagged):
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(placeholder, b"video")
        path.write_bytes(path.read_bytes().replace(b"CafX", b"Caf\xe9"))   # a Latin-1 byte, not UTF-8
    patch_zip_flag_raw(flagged, 0x800)
    with RangeServer(tmp_path) as server:
        for uri in (str(legacy), server.url("legacy.zip")):
            with open_source(uri, FAST) as source:
                (member,) = source.list_members()
                assert member.name == "UCF101/v_Caf\u0398_g01_c01.avi"      # cp437 reading of 0xE9
                assert source.read(member.name) == b"video"
        for uri in (str(flagged), server.url("flagged.zip")):
            with pytest.raises(SourceError) as err:
                open_source(uri, FAST)
            assert "not valid UTF-8" in one_line_error(err)


def patch_zip_flag_raw(path: Path, flag: int) -> None:
    """OR ``flag`` into the single member's local and central headers (name may not decode)."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature) + offset
        struct.pack_into("<H", data, at, struct.unpack_from("<H", data, at)[0] | flag)
    path.write_bytes(bytes(data))


def test_duplicate_names_are_listed_once_and_refused(tmp_path):
    zpath = tmp_path / "dup.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # zipfile warns about the duplicate: that is the point
        with zipfile.ZipFile(zpath, "w") as zf:
            zf.writestr("UCF101/v_Dup_g01_c01.avi", b"first")
            zf.writestr("UCF101/v_Dup_g01_c01.avi", b"second")
    with open_source(zpath) as source:
        assert source.list_members() == [Member("UCF101/v_Dup_g01_c01.avi", 5)]
        with pytest.raises(MemberReadError, match="2 members of that name"):
            source.read("UCF101/v_Dup_g01_c01.avi")
