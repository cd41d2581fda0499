"""A real S3 server for tests: moto's server mode, started as its own process on a free
loopback port, and the settings that point the ``default`` storage at a bucket on it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

import boto3

from tests.services import unavailable
from tests.smtp import free_port

CREDENTIALS = {"access_key": "testing", "secret_key": "testing"}
REGION = "us-east-1"


@dataclass
class S3Server:
    """``python -m moto.server`` on 127.0.0.1; ``stop()`` ends it."""

    port: int
    process: subprocess.Popen

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, timeout: float = 30.0) -> S3Server:
        if importlib.util.find_spec("moto") is None:
            unavailable("needs moto's server (the dev extra: moto[server])")
        port = free_port()
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        server = cls(port=port, process=process)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                unavailable(f"moto's server exited at start with code {process.returncode}")
            try:
                with urllib.request.urlopen(f"{server.endpoint_url}/moto-api/", timeout=1):
                    return server
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        server.stop()
        unavailable(f"moto's server did not answer within {timeout:.0f} s")
        raise AssertionError("unreachable")  # unavailable() skips or fails

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["access_key"],
            aws_secret_access_key=CREDENTIALS["secret_key"],
        )

    def new_bucket(self) -> str:
        name = f"blobs-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def storage_settings(self, bucket: str) -> dict:
        """``STORAGES["default"]`` for S3Storage on this server, as config/settings.py
        builds it from the environment."""
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": self.endpoint_url,
                "region_name": REGION,
                "addressing_style": "path",
                "default_acl": None,
                "file_overwrite": True,
                "max_memory_size": 1024 * 1024,
                **CREDENTIALS,
            },
        }
