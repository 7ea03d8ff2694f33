"""`l2i download`: URL safety (unit, in-process) and img2dataset end to end against a loopback server."""
from __future__ import annotations

import argparse
import hashlib
import io
import ipaddress
import json
import socket
import ssl
import tarfile
from urllib.parse import urlsplit, urlunsplit

import pyarrow.parquet as pq
import pytest

from l2i_pipeline.commands import urlsafety
from l2i_pipeline.commands.download import (
    download,
    format_summary,
    register,
    summarize,
)
from l2i_pipeline.commands.i2d import KeepBytes
from l2i_pipeline.commands.urlsafety import UnsafeURLError, fetch, safe_download_image
from l2i_pipeline.demo.httpserve import LoopbackServer
from l2i_pipeline.demo.inputs import write_files, write_laion_parquet

LAION_1000 = "/work/shared/data/laion_urls_1000.parquet"


# ------------------------------------------------------------------ addresses and URLs

@pytest.mark.parametrize("address, words", [
    ("10.0.0.1", "private network"), ("172.16.5.4", "private network"), ("192.168.1.1", "private network"),
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("169.254.169.254", "link-local"),
    ("fd00:ec2::254", "private network"), ("fe80::1", "link-local"), ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"), ("240.0.0.1", "reserved"), ("100.64.0.1", "non-public"),
    ("::ffff:10.0.0.1", "private network"),
])
def test_non_public_addresses_are_refused_with_a_reason(address, words):
    reason = urlsafety.address_refusal(ipaddress.ip_address(address))
    assert reason is not None and reason.startswith(words)


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert urlsafety.address_refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.jpg", "data:image/png;base64,AAAA",
                                 "gopher://example.com/", "http:///nohost.jpg"])
def test_only_http_urls_with_a_host(url):
    with pytest.raises(UnsafeURLError, match="refused"):
        fetch(url, allow_private_network=True)


def _fake_dns(monkeypatch, table: dict[str, list[str]]):
    """Resolve the names in `table` to the given addresses, others as usual."""
    real = urlsafety.resolve

    def resolve(host, port):
        if host not in table:
            return real(host, port)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port, 0, 0) if ":" in a else (a, port)) for a in table[host]]

    monkeypatch.setattr(urlsafety, "resolve", resolve)


def test_public_looking_name_resolving_to_private_address_is_refused_before_connecting(monkeypatch):
    _fake_dns(monkeypatch, {"images.example.com": ["10.0.0.1"], "cdn.example.com": ["93.184.216.34", "127.0.0.1"]})
    monkeypatch.setattr(socket, "socket", lambda *a, **k: pytest.fail("no socket may be opened"))
    with pytest.raises(UnsafeURLError, match=r"^refused: private network address 10\.0\.0\.1$"):
        fetch("http://images.example.com/cat.jpg")
    with pytest.raises(UnsafeURLError, match="loopback address 127.0.0.1"):  # one bad answer is enough
        fetch("https://cdn.example.com/cat.jpg")
    assert safe_download_image((7, "http://images.example.com/cat.jpg"), 2) == (
        7, None, "refused: private network address 10.0.0.1")


def test_dns_failure_is_a_recorded_error(monkeypatch):
    def no_dns(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(urlsafety, "resolve", no_dns)
    row = pq.read_table(LAION_1000).slice(0, 1).to_pylist()[0]
    key, stream, error = safe_download_image((0, row["URL"]), 2)
    assert (key, stream) == (0, None) and "Name or service not known" in error


# ------------------------------------------------------------------ loopback fetches and redirects

@pytest.fixture
def server(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8 original bytes")
    with LoopbackServer(tmp_path) as srv:
        yield srv


def test_loopback_refused_without_flag_and_fetched_with_it(server):
    with pytest.raises(UnsafeURLError, match="refused: loopback address 127.0.0.1"):
        fetch(server.url("a.jpg"))
    assert server.requests == []  # refused before any byte was sent
    body, _ = fetch(server.url("a.jpg"), allow_private_network=True)
    assert body == b"\xff\xd8 original bytes"
    server.add_redirect("hop", server.url("a.jpg"))
    assert fetch(server.url("hop"), allow_private_network=True)[0] == body  # redirects are followed


def _treat_loopback_as_public(monkeypatch):
    """Stand-in for a public server: 127.0.0.1 passes the check, every other address is judged as usual."""
    real = urlsafety.address_refusal
    monkeypatch.setattr(urlsafety, "address_refusal",
                        lambda ip: None if str(ip) == "127.0.0.1" else real(ip))


@pytest.mark.parametrize("target, reason", [
    ("http://169.254.169.254/latest/meta-data/", "refused: link-local address 169.254.169.254"),
    ("http://metadata.example/latest/", "refused: private network address fd00:ec2::254"),
    ("http://10.1.2.3:8080/x.jpg", "refused: private network address 10.1.2.3"),
    ("ftp://files.example/x.jpg", "refused: scheme 'ftp' is not http(s)"),
])
def test_redirect_to_private_address_is_refused_even_when_first_hop_is_allowed(monkeypatch, server, target, reason):
    _treat_loopback_as_public(monkeypatch)
    _fake_dns(monkeypatch, {"metadata.example": ["fd00:ec2::254"]})
    assert fetch(server.url("a.jpg"))[0] == b"\xff\xd8 original bytes"  # the first hop is allowed
    server.add_redirect("hop", target)
    assert safe_download_image((1, server.url("hop")), 2) == (1, None, reason)


def test_tls_context_is_built_once_per_process_not_per_request(monkeypatch, server):
    """Building a TLS context parses the CA bundle; per request it made `l2i download` CPU-bound (issue 25.19)."""
    built = []
    real = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **k: built.append(1) or real(*a, **k))
    for name in ("tls_context", "shared_opener"):  # a fresh process
        cached = getattr(urlsafety, name, None)
        if cached is not None:
            cached.cache_clear()
    for i in range(20):
        assert safe_download_image((i, server.url("a.jpg")), 2, allow_private_network=True)[2] is None
    assert built == []  # plain http needs no TLS context at all
    tls_url = server.url("a.jpg").replace("http://", "https://")  # TLS to a plain-HTTP port: handshake fails
    for i in range(20):
        assert safe_download_image((i, tls_url), 2, allow_private_network=True)[2] is not None
    assert len(built) == 1
    for i in range(5):
        safe_download_image((i, tls_url), 2, ignore_ssl_certificate=True, allow_private_network=True)
    assert len(built) == 2  # one more for the non-verifying setting, once


def test_oversized_body_is_refused(monkeypatch, server):
    monkeypatch.setattr(urlsafety, "MAX_BODY_BYTES", 4)
    with pytest.raises(UnsafeURLError, match="body larger than 4 bytes"):
        fetch(server.url("a.jpg"), allow_private_network=True)


# ------------------------------------------------------------------ KeepBytes: no decode, no re-encode

def test_keep_bytes_returns_original_bytes_or_a_reason(bad_files, photo_files):
    reasons = {"zero_byte.jpg": "empty body (0 bytes)", "html_as_image.jpg": "not an image: unrecognised format",
               "decompression_bomb.png": "decompression bomb: "}
    check = KeepBytes()
    for f in bad_files + photo_files:
        data, width, height, ow, oh, error = check(io.BytesIO(f.data))
        if f.filename in reasons:
            assert data is None and error.startswith(reasons[f.filename]), f.filename
        else:  # truncated, CMYK, 16-bit, EXIF... pass through untouched for the synthesize stage to judge
            assert (data, error) == (f.data, None), f.filename
            assert width > 0 and (width, height) == (ow, oh)
    assert KeepBytes(max_pixels=100)(io.BytesIO(photo_files[0].data))[5].startswith("image too large")


# ------------------------------------------------------------------ img2dataset end to end

def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="l2i")
    register(parser.add_subparsers())
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def allowed_run(tmp_path_factory, bad_files, photo_files):
    """One download of photos, bad inputs and failure routes from the loopback server, private network allowed."""
    root = tmp_path_factory.mktemp("dl")
    files = photo_files + bad_files
    write_files(root / "srv", files)
    with LoopbackServer(root / "srv") as srv:
        extra = {
            srv.add_body("html_route.jpg", b"<html><body>login required</body></html>", "image/jpeg"):
                ("failed_to_resize", "not an image: unrecognised format"),
            srv.add_body("empty_route.jpg", b""): ("failed_to_resize", "empty body (0 bytes)"),
            srv.add_redirect("to_photo", srv.url(photo_files[0].filename)): ("success", None),
            srv.add_redirect("to_ftp", "ftp://files.example/x.jpg"):
                ("failed_to_download", "refused: scheme 'ftp' is not http(s)"),
            srv.url("missing.jpg"): ("failed_to_download", "HTTP Error 404: File not found"),
            "file:///etc/passwd": ("failed_to_download", "refused: scheme 'file' is not http(s)"),
        }
        urls = [srv.url(f.filename) for f in files] + list(extra)
        captions = [f"caption of {urlsplit(u).path or u}" for u in urls]
        inputs = [write_laion_parquet(root / "in" / "a.parquet", urls[:20], captions[:20]),
                  write_laion_parquet(root / "in" / "b.parquet", urls[20:], captions[20:])]
        out = root / "raw"
        summary = download([str(p) for p in inputs], str(out), allow_private_network=True, processes=1,
                           threads=4, raw_shard_size=8, timeout=5)
        # a crash inside shard 00001 leaves it without its _stats.json: the rerun redoes that shard only
        mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
        (out / "00001_stats.json").unlink()
        requests_after_first_run = len(srv.requests)
        rerun = download([str(p) for p in inputs], str(out), allow_private_network=True, processes=1,
                         threads=4, raw_shard_size=8, timeout=5)
        redone = sorted(p.name for p in out.glob("*.tar") if p.stat().st_mtime_ns != mtimes[p.name])
        yield {"out": out, "urls": urls, "files": files, "extra": extra, "summary": summary, "rerun": rerun,
               "redone": redone, "new_requests": srv.requests[requests_after_first_run:]}


def _rows(out) -> dict[str, dict]:
    rows = [r for p in sorted(out.glob("[0-9]*.parquet")) for r in pq.read_table(p).to_pylist()]
    by_url = {r["url"]: r for r in rows}
    assert len(by_url) == len(rows), "a URL appears twice"
    return by_url


def test_every_row_is_recorded_once_with_status_and_reason(allowed_run):
    out, urls, extra = allowed_run["out"], allowed_run["urls"], allowed_run["extra"]
    rows = _rows(out)
    assert set(rows) == set(urls)
    shards = sorted(p.stem for p in out.glob("[0-9]*.tar"))
    assert shards == ["00000", "00001", "00002", "00003"]  # a.parquet: 20 rows -> 3 shards, b.parquet: 1
    assert all((out / f"{s}_stats.json").exists() and (out / f"{s}.parquet").exists() for s in shards)
    for url, (status, reason) in extra.items():
        assert (rows[url]["status"], rows[url]["error_message"]) == (status, reason), url
    expected = {"zero_byte.jpg": "empty body", "html_as_image.jpg": "not an image",
                "decompression_bomb.png": "decompression bomb"}
    for f in allowed_run["files"]:
        row = rows[next(u for u in urls if u.endswith("/" + f.filename))]
        if f.filename in expected:
            assert row["status"] == "failed_to_resize" and row["error_message"].startswith(expected[f.filename])
        else:
            assert row["status"] == "success" and row["sha256"] == hashlib.sha256(f.data).hexdigest(), f.filename
        assert row["AESTHETIC_SCORE"] >= 6.5 and row["hash"] is not None and row["caption"].startswith("caption")


def test_tar_members_hold_original_bytes_caption_and_laion_json(allowed_run):
    out, files = allowed_run["out"], {f.filename: f.data for f in allowed_run["files"]}
    seen = 0
    for tar_path in sorted(out.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        for name in (n for n in members if n.endswith(".json")):
            key = name[:-5]
            meta = json.loads(members[name])
            assert {"similarity", "hash", "punsafe", "pwatermark", "AESTHETIC_SCORE", "WIDTH", "HEIGHT"} <= set(meta)
            assert members[f"{key}.txt"].decode() == meta["caption"]
            filename = meta["url"].rsplit("/", 1)[-1]
            if filename in files:
                assert members[f"{key}.jpg"] == files[filename], filename  # never re-encoded
                seen += 1
    assert seen == len(files) - 3


def test_summary_counts_match_and_rerun_redoes_only_the_unfinished_shard(allowed_run):
    summary, total = allowed_run["summary"], len(allowed_run["urls"])
    assert summary["count"] == total and summary["shards"] == 4 and not summary["incomplete_shards"]
    assert summary["success"] + summary["failed_to_download"] + summary["failed_to_resize"] == total
    assert summary["reasons"]["refused: scheme 'file' is not http(s)"] == 1
    assert summary == summarize(allowed_run["out"])
    assert allowed_run["rerun"] == summary
    assert allowed_run["redone"] == ["00001.tar"]
    shard1 = sorted(urlsplit(u).path for u in allowed_run["urls"][8:16])  # rows 8..15 of a.parquet
    assert sorted(allowed_run["new_requests"]) == shard1
    table = format_summary(summary)
    assert "failed_to_download" in table and "refused: scheme 'ftp' is not http(s)" in table


def test_cli_with_safety_on_refuses_private_hosts_and_records_dns_failures(tmp_path, capsys, photo_files):
    """Real LAION rows (hosts made unresolvable with .invalid, so no test can reach the internet) plus
    loopback and private-address URLs; every row must come back as a recorded failure, quickly."""
    laion = pq.read_table(LAION_1000).slice(0, 30).to_pylist()
    urls = [urlunsplit(p._replace(netloc=p.hostname + ".invalid")) for p in (urlsplit(r["URL"]) for r in laion)]
    captions = [r["TEXT"] for r in laion]
    write_files(tmp_path / "srv", photo_files[:1])
    with LoopbackServer(tmp_path / "srv") as srv:
        private = {srv.url(photo_files[0].filename): "refused: loopback address 127.0.0.1",
                   f"http://[::1]:{srv.port}/x.jpg": "refused: loopback address ::1",
                   "http://10.0.0.1/x.jpg": "refused: private network address 10.0.0.1",
                   "http://169.254.169.254/latest/meta-data/": "refused: link-local address 169.254.169.254"}
        src = write_laion_parquet(tmp_path / "laion.parquet", urls + list(private), captions + ["x"] * len(private))
        args = _parse(["download", "--input", str(src), "--output", str(tmp_path / "raw"), "--processes", "1",
                       "--threads", "8", "--timeout", "3"])
        assert args.func(args) == 1  # nothing downloaded
        assert srv.requests == []
    rows = _rows(tmp_path / "raw")
    assert len(rows) == len(urls) + len(private)
    for url, reason in private.items():
        assert (rows[url]["status"], rows[url]["error_message"]) == ("failed_to_download", reason)
    for url, caption in zip(urls, captions):
        assert rows[url]["status"] == "failed_to_download" and rows[url]["error_message"], url
        assert rows[url]["caption"] == caption  # real captions survive the round trip
    table = capsys.readouterr().out
    assert "refused: link-local address 169.254.169.254" in table and "failed_to_download" in table


def test_help_and_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        _parse(["download", "--help"])
    assert "--allow-private-network" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        _parse(["download", "--input", "x.parquet", "--output", "o", "--distributor", "spark"])


def test_missing_input_and_changed_inputs(tmp_path):
    with pytest.raises(FileNotFoundError):
        download([str(tmp_path / "nope.parquet")], str(tmp_path / "raw"))
    a = write_laion_parquet(tmp_path / "a.parquet", ["http://10.0.0.1/a.jpg"], ["a"])
    b = write_laion_parquet(tmp_path / "b.parquet", ["http://10.0.0.1/b.jpg"], ["b"])
    (tmp_path / "raw" / "_inputs").mkdir(parents=True)
    (tmp_path / "raw" / "_inputs" / "inputs.json").write_text(json.dumps([str(a)]))
    with pytest.raises(ValueError, match="other inputs"):
        download([str(b)], str(tmp_path / "raw"))


def test_a_second_download_into_the_same_output_is_refused(tmp_path, capsys):
    # the lock lives in _inputs/ (img2dataset takes any top-level *.json for a finished shard's stats)
    from l2i_pipeline.cli import main
    from l2i_pipeline.core.lock import LOCK, output_lock
    from l2i_pipeline.core.storage import open_store

    a = write_laion_parquet(tmp_path / "a.parquet", ["http://10.0.0.1/a.jpg"], ["a"])
    raw = tmp_path / "raw"
    with output_lock(open_store(raw / "_inputs"), "download"):
        assert main(["download", "--input", str(a), "--output", str(raw), "--timeout", "1"]) == 2
        assert "is writing to" in capsys.readouterr().err
        assert not list(raw.glob("*.tar"))
    assert main(["download", "--input", str(a), "--output", str(raw), "--timeout", "1"]) in (0, 1)
    assert not (raw / "_inputs" / LOCK).exists() and not (raw / LOCK).exists()
    assert (raw / "00000_stats.json").is_file()  # img2dataset finished its shard with the lock held beside it


@pytest.mark.slow
def test_ray_distributor(tmp_path, photo_files):
    """Same shards with Ray tasks: the safety is installed in the Ray workers too."""
    write_files(tmp_path / "srv", photo_files[:2])
    with LoopbackServer(tmp_path / "srv") as srv:
        urls = [srv.url(f.filename) for f in photo_files[:2]] + ["file:///etc/passwd"]
        src = write_laion_parquet(tmp_path / "in.parquet", urls, ["a", "b", "c"])
        allowed = download([str(src)], str(tmp_path / "raw"), distributor="ray", processes=1, threads=2,
                           raw_shard_size=2, timeout=3, allow_private_network=True)
        refused = download([str(src)], str(tmp_path / "raw2"), distributor="ray", processes=1, timeout=3)
    assert (allowed["count"], allowed["success"], allowed["shards"]) == (3, 2, 2)
    assert refused["reasons"] == {"refused: loopback address 127.0.0.1": 2,
                                  "refused: scheme 'file' is not http(s)": 1}
