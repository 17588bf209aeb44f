"""Big bodies through S3 with presigned URLs (see shared/README.md, "Big bodies").

Objects: ``req/<requestId>`` (caller -> agent) and ``resp/<requestId>`` (agent -> caller) in
``BODY_BUCKET``. The bucket's lifecycle rule (Terraform) expires them; nothing here deletes.
"""

from __future__ import annotations

from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from . import aws, config, limits, names

PRESIGN_EXPIRES_S = 300


class BodyTooLarge(Exception):
    """The stored object is bigger than BODY_MAX."""


class BodyMissing(Exception):
    """The agent said it uploaded a body but there is no object."""


# Default addressing: virtual-hosted on AWS, path-style for IP endpoints (the local stack).
_S3_CONFIG = Config(signature_version="s3v4")


def _s3() -> Any:
    return aws.client("s3", config=_S3_CONFIG)


def reset_clients() -> None:
    aws.reset()


def request_key(request_id: str) -> str:
    return names.REQUEST_BODY_PREFIX + request_id


def response_key(request_id: str) -> str:
    return names.RESPONSE_BODY_PREFIX + request_id


def _bucket() -> str:
    bucket = config.body_bucket()
    if not bucket:
        raise config.ConfigError("BODY_BUCKET is not set")
    return bucket


def enabled() -> bool:
    return bool(config.body_bucket())


def put_request_body(request_id: str, body: bytes) -> str:
    """Upload the caller's body; returns a presigned GET URL for the agent."""
    bucket = _bucket()
    _s3().put_object(Bucket=bucket, Key=request_key(request_id), Body=body)
    return _s3().generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": request_key(request_id)},
                                        ExpiresIn=PRESIGN_EXPIRES_S)


def response_upload_url(request_id: str) -> str:
    """Presigned PUT the agent may use for a response body too big for one frame."""
    return _s3().generate_presigned_url("put_object", Params={"Bucket": _bucket(), "Key": response_key(request_id)},
                                        ExpiresIn=PRESIGN_EXPIRES_S)


def put_response_body(request_id: str, body: bytes) -> None:
    _s3().put_object(Bucket=_bucket(), Key=response_key(request_id), Body=body)


def response_download_url(request_id: str, content_type: str | None = None) -> str:
    """Presigned GET of resp/<id>; S3 answers with ``content_type`` when given."""
    params = {"Bucket": _bucket(), "Key": response_key(request_id)}
    if content_type:
        params["ResponseContentType"] = content_type
    return _s3().generate_presigned_url("get_object", Params=params, ExpiresIn=PRESIGN_EXPIRES_S)


def get_response_body(request_id: str) -> bytes:
    """Read resp/<id>. Raises BodyMissing, or BodyTooLarge when over BODY_MAX (checked before reading)."""
    try:
        head = _s3().head_object(Bucket=_bucket(), Key=response_key(request_id))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            raise BodyMissing(request_id) from None
        raise
    if int(head.get("ContentLength", 0)) > limits.BODY_MAX:
        raise BodyTooLarge(request_id)
    out = _s3().get_object(Bucket=_bucket(), Key=response_key(request_id))
    return out["Body"].read()
