"""The storage layer: URLs, whole-object writes, conditional create, listing, errors and retries."""
import json

import pytest

from l2i_pipeline.core import storage
from l2i_pipeline.core.commit import write_output_shard
from l2i_pipeline.core.errors import NotFound, StorageError
from l2i_pipeline.core.sample import Sample
from l2i_pipeline.core.shards import iter_output_samples, list_output_shards, read_output_index
from l2i_pipeline.core.storage import Store, open_store


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path) -> Store:
    if request.param == "local":
        return open_store(tmp_path / "out")
    import uuid

    return open_store(f"memory://l2i-{uuid.uuid4().hex}")


def test_put_get_list_and_exclusive_create(store):
    store.put("a.bin", b"123")
    store.put("b_stats.json", b"{}")
    assert store.get("a.bin") == b"123"
    assert store.list() == {"a.bin": 3, "b_stats.json": 2}
    assert store.list("_stats.json") == {"b_stats.json": 2}
    assert store.create_exclusive("lock", b"me") is True
    assert store.create_exclusive("lock", b"you") is False
    assert store.get("lock") == b"me"
    with pytest.raises(NotFound, match="nope"):
        store.get("nope")


def test_local_paths_and_file_urls_are_one_store(tmp_path):
    a, b = open_store(tmp_path), open_store(f"file://{tmp_path}")
    assert a.url == b.url == str(tmp_path)
    a.put("x", b"1")
    assert b.get("x") == b"1"


def test_unknown_protocol_and_missing_extra_are_one_clear_error(monkeypatch):
    import sys

    from fsspec.registry import _registry

    with pytest.raises(StorageError, match="unknown storage protocol 'nosuch'"):
        open_store("nosuch://bucket/x")
    for proto, module, extra in (("gs", "gcsfs", "gcs"), ("az", "adlfs", "azure")):  # as if not installed
        monkeypatch.setitem(sys.modules, module, None)
        monkeypatch.delitem(_registry, proto, raising=False)
        with pytest.raises(StorageError, match=rf"l2i-pipeline\[{extra}\]"):
            open_store(f"{proto}://bucket/x")
    with pytest.raises(StorageError, match="not valid JSON"):
        open_store("memory://x", "{nope")


def test_a_store_pickles_without_its_filesystem(tmp_path):
    import pickle

    s = open_store(tmp_path, {"auto_mkdir": True})
    s.fs  # noqa: B018
    t = pickle.loads(pickle.dumps(s))
    assert t.url == s.url and t.storage_options == {"auto_mkdir": True} and t._fs is None


def test_transient_errors_are_retried_then_raised(monkeypatch):
    monkeypatch.setattr(storage, "BACKOFF_S", 0.001)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("connection reset by peer")
        return "ok"

    assert storage.retry(flaky, "test", backoff=0.001) == "ok" and len(calls) == 3
    with pytest.raises(TimeoutError):
        storage.retry(lambda: (_ for _ in ()).throw(TimeoutError("read timed out")), "test", attempts=2,
                      backoff=0.001)
    calls.clear()
    with pytest.raises(PermissionError):  # not transient: no retry
        storage.retry(lambda: calls.append(1) or (_ for _ in ()).throw(PermissionError("denied")), "t")
    assert len(calls) == 1


def test_unwritable_location_fails_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot write to"):
        open_store(blocker / "out").check_writable()


def _sample(key: str, ok: bool = True) -> Sample:
    s = Sample(key, "u", caption=f"cap {key}", meta={"url": f"http://x/{key}"})
    if ok:
        s.members = {m: f"{key}-{m}".encode() for m in ("jpg", "fg.png", "mask.png", "inpaint_mask.png", "bg.png",
                                                          "txt", "json")}
    else:
        s.reject("decode:broken")
    return s


def test_shard_commit_is_deterministic_and_verified(store):
    a = write_output_shard(store, "s1", [_sample("k2"), _sample("k1"), _sample("k3", ok=False)])
    tar1 = store.get("s1.tar")
    b = write_output_shard(store, "s1", [_sample("k3", ok=False), _sample("k1"), _sample("k2")])
    assert store.get("s1.tar") == tar1 and a["files"] == b["files"]  # no wall-clock bytes, order-independent
    marker = json.loads(store.get("s1_stats.json"))
    assert marker["files"]["s1.tar"]["size"] == len(tar1) and marker["status"] == {"ok": 2, "rejected": 1}
    assert [k for k, _ in iter_output_samples(store, "s1")] == ["k1", "k2"]
    assert read_output_index(store).column("key").to_pylist() == ["k1", "k2", "k3"]
    # a foreign write after the marker is detected, never silently read
    store.put("s1.tar", tar1[:-1024] + bytes(1024) + b"x")
    with pytest.raises(Exception, match="does not match its marker"):
        list(iter_output_samples(store, "s1"))


def test_half_written_shards_are_invisible(store):
    store.put("s2.tar", b"partial")
    store.put("s2.parquet", b"partial")
    assert list_output_shards(store) == []


def test_absent_credentials_are_one_clear_error(s3_server, monkeypatch):
    import s3fs

    bucket = s3_server.new_bucket()
    s3fs.S3FileSystem.clear_instance_cache()  # fsspec reuses filesystems made while credentials were set
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    try:
        with pytest.raises(StorageError, match="cannot write to s3://.*Unable to locate credentials"):
            open_store(f"s3://{bucket}/out").check_writable()
    finally:
        s3fs.S3FileSystem.clear_instance_cache()  # the credential-less one must not serve later tests
