"""Fixtures for the Lambda unit tests: moto (in-process), tables, bucket, a fake management API."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from httptunnel import management

from .helpers import (BUCKET, CONN_TABLE, PENDING_TABLE, REGION, WS_ENDPOINT, FakeContext, FakeManagement,
                      cold_start, create_tables)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    """moto in-process with both tables and the body bucket; the layer's env set like Terraform does."""
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI", "JWT_SECRET", "JWKS", "JWKS_URL",
                "JWT_SECRET_SSM_PARAMETER", "JWT_SECRET_ARN", "JWT_ISSUER", "JWT_AUDIENCE", "REQUIRE_AUTH",
                "SUBDOMAIN_URL_TEMPLATE", "TUNNEL_DOMAIN", "FORWARD_WAIT_SECONDS", "JWT_SUBDOMAINS_CLAIM",
                "REQUEST_ID_KEY", "REQUEST_ID_KEY_SSM_PREFIX", "REQUEST_ID_KEY_VERSION", "SECRETS_KMS_KEY_ID"):
        monkeypatch.delenv(var, raising=False)
    env = {"AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "CONNECTIONS_TABLE": CONN_TABLE, "PENDING_TABLE": PENDING_TABLE,
           "BODY_BUCKET": BUCKET, "WS_MANAGEMENT_ENDPOINT": WS_ENDPOINT,
           "PUBLIC_HTTP_URL": "https://abc123http.execute-api.us-east-1.amazonaws.com",
           "EVENT_BUS_NAME": "test-bus", "REQUIRE_AUTH": "false"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cold_start()
    with mock_aws():
        create_tables(boto3.client("dynamodb"))
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})  # as Terraform does
        yield
    cold_start()


@pytest.fixture
def mgmt(monkeypatch: pytest.MonkeyPatch) -> FakeManagement:
    fake = FakeManagement()
    monkeypatch.setattr(management, "_client", fake.client)
    return fake


@pytest.fixture
def ctx() -> FakeContext:
    return FakeContext()


