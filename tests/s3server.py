"""An S3-compatible server (moto's server mode) on 127.0.0.1 in its own process, so Ray workers reach it.

Imported by tests as `s3server`. In-process doubles (moto's mock_aws, memory://) never reach Ray workers.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

from serverproc import ServerProcess, free_port, wait_answering


class S3Server(ServerProcess):
    """`auth=True`: moto checks credentials (none are known to it, so every request is 403 Forbidden)."""

    def __init__(self, auth: bool = False) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        exe = os.path.join(os.path.dirname(sys.executable), "moto_server")
        env = {**os.environ, **({"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if auth else {})}
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_answering(self.proc, self.endpoint + "/", "moto_server")

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

    def new_bucket(self) -> str:
        import s3fs

        name = f"l2i-test-{uuid.uuid4().hex[:12]}"
        s3fs.S3FileSystem(endpoint_url=self.endpoint, key="testing", secret="testing").mkdir(name)
        return name
