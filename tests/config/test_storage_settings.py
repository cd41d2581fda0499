"""The blob storage block of config/settings.py: S3 from the environment, or files."""

from __future__ import annotations

from tests.config.test_settings import KEY, read


def test_s3_takes_every_option_a_deployer_sets_from_the_environment(tmp_path):
    storages = read(
        ["STORAGES"],
        tmp_path,
        SECRET_KEY=KEY,
        AWS_STORAGE_BUCKET_NAME="crm-blobs",
        AWS_S3_ENDPOINT_URL="https://s3.example.net",
        AWS_S3_REGION_NAME="eu-north-1",
        AWS_S3_ADDRESSING_STYLE="path",
        AWS_S3_SIGNATURE_VERSION="s3v4",
        AWS_LOCATION="crm",
        AWS_S3_OBJECT_PARAMETERS='{"ServerSideEncryption": "aws:kms"}',
        AWS_S3_VERIFY="/etc/ssl/certs/ca.pem",
        AWS_S3_MAX_MEMORY_SIZE="2048",
        AWS_ACCESS_KEY_ID="AKIAEXAMPLE",
        AWS_SECRET_ACCESS_KEY="never-in-settings",
    )["STORAGES"]

    assert storages["default"] == {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": "crm-blobs",
            "endpoint_url": "https://s3.example.net",
            "region_name": "eu-north-1",
            "addressing_style": "path",
            "signature_version": "s3v4",
            "location": "crm",
            "object_parameters": {"ServerSideEncryption": "aws:kms"},
            "verify": "/etc/ssl/certs/ca.pem",
            "max_memory_size": 2048,
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": True,
        },
    }
    # Credentials stay with boto3 (its environment variables, profile or role).
    assert "never-in-settings" not in str(storages)


def test_s3_defaults_and_verification_turned_off(tmp_path):
    options = read(
        ["STORAGES"], tmp_path, SECRET_KEY=KEY, AWS_STORAGE_BUCKET_NAME="b", AWS_S3_VERIFY="false"
    )["STORAGES"]["default"]["OPTIONS"]

    assert options["verify"] is False
    assert (options["endpoint_url"], options["region_name"], options["addressing_style"]) == (
        None,
        None,
        None,
    )
    assert (options["location"], options["object_parameters"]) == ("", {})
    assert options["max_memory_size"] == 1024 * 1024


def test_without_a_bucket_blobs_are_files_under_media_root(tmp_path):
    storages = read(
        ["STORAGES"],
        tmp_path,
        SECRET_KEY=KEY,
        AWS_STORAGE_BUCKET_NAME="",
        MEDIA_ROOT=str(tmp_path / "m"),
    )["STORAGES"]

    assert storages["default"] == {
        "BACKEND": "activities.storage.BlobFileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "m")},
    }
