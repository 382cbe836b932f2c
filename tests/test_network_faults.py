"""Network faults on real HTTP (a fault-injecting local Range server): transient faults are
retried and recovered with identical bytes; faults past the retry budget end in a clear
SourceError / MemberReadError after a bounded number of requests, never a hang."""
from __future__ import annotations

import zipfile

import pytest

from vidshard.errors import MemberReadError, SourceError
from vidshard.testing.rangeserver import Faults
from vidshard.sources import SourceOptions, open_source

#: Small timeout and backoff keep these tests fast; the retry budget is the real one.
RETRYING = SourceOptions(timeout=2.0, retries=4, backoff=0.01)
#: Budget of 2 retries: 3 attempts of each kind.
TIGHT = SourceOptions(timeout=0.3, retries=2, backoff=0.01)

pytestmark = pytest.mark.timeout(60)   # a hang is a failure, not a stuck suite


@pytest.fixture(scope="module")
def truth(ucf_zip) -> dict[str, bytes]:
    path, names = ucf_zip
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in names}


@pytest.mark.parametrize("faults", [
    Faults(fail_first=3, fail_status=503),
    Faults(fail_first=2, fail_status=500),
    Faults(drop_first=2),
    Faults(truncate_first=2),
    Faults(fail_first=1, drop_first=1, truncate_first=1),
], ids=["503-burst", "500-burst", "dropped", "truncated", "mixed"])
def test_transient_faults_are_recovered_with_identical_bytes(ucf_http, truth, faults):
    url, server = ucf_http
    server.set_faults(faults)                       # faults hit the listing first ...
    with open_source(url, RETRYING) as source:
        assert [m.name for m in source.list_members()] == list(truth)
        injected = [_injected(server.log, faults)]
        for name, data in truth.items():
            server.set_faults(faults)               # ... then every single member read
            before = len(server.log)
            assert source.read(name) == data
            injected.append(_injected(server.log[before:], faults))
    # Every read that went to the network met (and survived) the whole burst; members that lie in
    # the tail already fetched for the central directory need no request at all.
    expected = (faults.fail_first, faults.drop_first + faults.truncate_first)
    assert all(got == expected for got in injected if got != (0, 0))
    assert injected[0] == expected and injected.count(expected) > len(truth) // 2


def _injected(log, faults) -> tuple[int, int]:
    """(failed responses, short bodies) in a slice of the server log."""
    failed = sum(e.status == faults.fail_status for e in log)
    short = sum(e.status == 206 and _range_len(e.range) > e.body_bytes for e in log)
    return failed, short


def _range_len(header: str) -> int:
    first, last = header[len("bytes="):].split("-")
    return int(last) - int(first) + 1 if first else int(last)


@pytest.mark.parametrize("faults, reason", [
    (Faults(fail_first=10**6, fail_status=503), "too many 503 error responses"),
    (Faults(drop_first=10**6), "Connection broken"),
    (Faults(truncate_first=10**6), "short body"),
])
def test_listing_fails_clearly_when_the_budget_runs_out(ucf_http, faults, reason):
    url, server = ucf_http
    server.set_faults(faults)
    with pytest.raises(SourceError) as err:
        open_source(url, TIGHT)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"cannot open {url}: ") and reason in text
    assert server.requests_served == TIGHT.retries + 1         # bounded: one budget, not retries**2


@pytest.mark.parametrize("faults, reason", [
    (Faults(fail_first=10**6, fail_status=502), "too many 502 error responses"),
    (Faults(drop_first=10**6), "Connection broken"),
    (Faults(truncate_first=10**6), "gave up after 3 attempts"),
    (Faults(delay=5.0), "no response within 0.3 s"),
])
def test_member_read_fails_clearly_and_the_source_recovers(ucf_http, truth, faults, reason):
    url, server = ucf_http
    name, data = next(iter(truth.items()))
    with open_source(url, TIGHT) as source:
        server.set_faults(faults)
        before = server.requests_served
        with pytest.raises(MemberReadError) as err:
            source.read(name)
        text = str(err.value)
        assert "\n" not in text and text.startswith(f"{name}: ") and reason in text
        assert server.requests_served - before <= TIGHT.retries + 1
        server.set_faults(None)                    # the fault passes: the same source reads again
        assert source.read(name) == data


def test_slow_listing_times_out_instead_of_hanging(ucf_http):
    url, server = ucf_http
    server.set_faults(Faults(delay=5.0))
    with pytest.raises(SourceError, match="no response within 0.3 s"):
        open_source(url, TIGHT)


def test_range_server_answers_ranges_like_a_real_server(tmp_path):
    """The test server itself: the Range forms remotezip uses, 416, HEAD, no escape from its root."""
    import http.client

    import requests

    from vidshard.testing.rangeserver import RangeServer

    data = bytes(range(256)) * 4
    (tmp_path / "f.bin").write_bytes(data)
    (tmp_path.parent / "outside.bin").write_bytes(b"secret")
    size = len(data)
    with RangeServer(tmp_path) as server:
        url = server.url("f.bin")

        def get(range_header: str | None) -> requests.Response:
            return requests.get(url, headers={"Range": range_header} if range_header else {}, timeout=5)

        for header, start, end in (("bytes=0-9", 0, 9), ("bytes=1000-", 1000, size - 1),
                                   ("bytes=-5", size - 5, size - 1), (f"bytes=-{size + 100}", 0, size - 1),
                                   ("bytes=10-99999", 10, size - 1)):
            response = get(header)
            assert response.status_code == 206, header
            assert response.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
            assert response.content == data[start:end + 1]
        response = get(f"bytes={size}-")
        assert response.status_code == 416 and response.headers["Content-Range"] == f"bytes */{size}"
        assert get(None).status_code == 200 and get(None).content == data
        head = requests.head(url, timeout=5)
        assert head.status_code == 200 and head.headers["Content-Length"] == str(size) and head.content == b""
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/../outside.bin")
        assert conn.getresponse().status == 404
        conn.close()
        server.set_faults(Faults(ignore_range=True))
        response = get("bytes=0-9")
        assert response.status_code == 200 and response.content == data
