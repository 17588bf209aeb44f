"""Big bodies through S3 with presigned URLs (see shared/README.md, "Big bodies").

Objects: ``req/<requestId>`` (caller -> agent) and ``resp/<requestId>`` (agent -> caller) in
``BODY_BUCKET``, a versioned bucket of its own. The bucket's lifecycle rules (Terraform)
expire them and their old versions; nothing here deletes.

The agent is not trusted with more than it needs:
* it uploads through a presigned POST whose policy pins the key and caps the size at
  ``BODY_MAX`` (a presigned PUT can carry no size limit);
* whatever it uploads later cannot reach the caller: forward reads one VERSION of the object,
  checks its size and SHA-256, and a redirect is presigned for exactly that ``VersionId``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from . import aws, config, limits, names, protocol

PRESIGN_EXPIRES_S = 300


class BodyTooLarge(Exception):
    """The stored object is bigger than BODY_MAX."""


class BodyMissing(Exception):
    """The agent said it uploaded a body but there is no object."""


class SegmentMismatch(Exception):
    """A streamed answer's segment is not the size its notice announced (or over the cap)."""


class NotVersioned(Exception):
    """S3 returned no VersionId: the body bucket is not versioned, so no object can be pinned."""


@dataclass(frozen=True)
class Stored:
    """One version of a body object: the bytes forward checked and the id that names them."""

    body: bytes
    version_id: str


# Default addressing: virtual-hosted on AWS, path-style for IP endpoints (the local stack).
_S3_CONFIG = Config(signature_version="s3v4")


def _s3() -> Any:
    return aws.client("s3", config=_S3_CONFIG)


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


def response_upload_form(request_id: str) -> dict[str, Any]:
    """Presigned POST (``{"url", "fields"}``) the agent may use for a response body too big for
    one frame: only ``resp/<id>``, at most ``BODY_MAX`` bytes, for ``PRESIGN_EXPIRES_S``.
    S3 refuses anything else with 400 (EntityTooLarge / AccessDenied)."""
    form = _s3().generate_presigned_post(
        Bucket=_bucket(), Key=response_key(request_id),
        Conditions=[["content-length-range", 0, limits.BODY_MAX]], ExpiresIn=PRESIGN_EXPIRES_S)
    return {"url": form["url"], "fields": dict(form["fields"])}


def _version(response: dict[str, Any]) -> str:
    version = response.get("VersionId")
    if not version or version == "null":
        raise NotVersioned(_bucket())
    return str(version)


def put_response_body(request_id: str, body: bytes) -> str:
    """Store a body forward produced itself; returns the VersionId to redirect to."""
    return _version(_s3().put_object(Bucket=_bucket(), Key=response_key(request_id), Body=body))


def response_download_url(request_id: str, version_id: str, content_type: str | None = None,
                          attachment: bool = False) -> str:
    """Presigned GET of exactly one version of resp/<id>; S3 answers with ``content_type`` when
    given, and with ``Content-Disposition: attachment`` when asked (active content types)."""
    params = {"Bucket": _bucket(), "Key": response_key(request_id), "VersionId": version_id}
    if content_type:
        params["ResponseContentType"] = content_type
    if attachment:
        params["ResponseContentDisposition"] = "attachment"
    return _s3().generate_presigned_url("get_object", Params=params, ExpiresIn=PRESIGN_EXPIRES_S)


def get_response_body(request_id: str) -> Stored:
    """Read the current version of resp/<id>, pinned: its size is checked before reading and the
    bytes read are those of that version even if the agent uploads again meanwhile.
    Raises BodyMissing, BodyTooLarge (over BODY_MAX) or NotVersioned.

    S3 answers the HEAD of a missing key with 404 only because forward's role may list the body
    bucket (terraform/main.tf, MissingBodiesAre404); without that it answers 403, which is not
    read as missing here: a 403 stays an S3 error, so a permission that really is wrong is not
    blamed on the agent."""
    try:
        head = _s3().head_object(Bucket=_bucket(), Key=response_key(request_id))
    except ClientError as exc:
        if aws.error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            raise BodyMissing(request_id) from None
        raise
    version = _version(head)
    if int(head.get("ContentLength", 0)) > limits.BODY_MAX:
        raise BodyTooLarge(request_id)
    out = _s3().get_object(Bucket=_bucket(), Key=response_key(request_id), VersionId=version)
    return Stored(out["Body"].read(), version)


# --------------------------------------------------------------------------- streamed answers' bulk lane
# (issue 23, shared/README.md "The chunk channel"): the agent uploads segments of a streamed answer
# as ``resp/<request id>/<seq>`` through one presigned POST whose policy admits only keys under
# ``resp/<request id>/`` and at most STREAM_SEGMENT_MAX bytes each; forward reads the current
# version of each (size checked before the read, SHA-256 after), then deletes that version.

def segment_form(request_id: str) -> dict[str, Any]:
    """The presigned POST for every segment of one streamed answer (``key`` field set per upload)."""
    prefix = f"{response_key(request_id)}/"
    form = _s3().generate_presigned_post(
        Bucket=_bucket(), Key=prefix + "${filename}",
        Conditions=[["content-length-range", 0, protocol.STREAM_SEGMENT_MAX]], ExpiresIn=PRESIGN_EXPIRES_S)
    return {"url": form["url"], "fields": dict(form["fields"])}


def get_segment(key: str, size: int) -> Stored:
    """One segment, the version read now; BodyMissing when there is none, SegmentMismatch when its
    size is not the announced one (or over STREAM_SEGMENT_MAX)."""
    try:
        head = _s3().head_object(Bucket=_bucket(), Key=key)
    except ClientError as exc:
        if aws.error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            raise BodyMissing(key) from None
        raise
    version = _version(head)
    stored = int(head.get("ContentLength", 0))
    if stored != size or stored > protocol.STREAM_SEGMENT_MAX:
        raise SegmentMismatch(key)
    out = _s3().get_object(Bucket=_bucket(), Key=key, VersionId=version)
    return Stored(out["Body"].read(), version)


def delete_segment(key: str, version_id: str) -> None:
    """Delete the version forward read (permanently: no delete marker is left behind)."""
    _s3().delete_object(Bucket=_bucket(), Key=key, VersionId=version_id)
