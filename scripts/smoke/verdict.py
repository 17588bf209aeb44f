"""What one smoke check comes to: passed, failed, or not checkable on this deployment.

A check is a function ``(ctx) -> detail``. It raises :class:`CheckFailed` (or anything else) to
fail, and :class:`NotCheckable` when the deployment it runs against cannot show what it checks
(the local stack's moto enforces neither S3 POST policies nor ``aws:SecureTransport``). A
not-checkable check is neither passed nor failed: the table shows it as such, with the reason,
and the summary counts it apart; it does not make `make smoke` fail.
"""

from __future__ import annotations

from dataclasses import dataclass

PASSED = "ok"
FAILED = "FAIL"
NOT_CHECKABLE = "not checkable locally"
STATUSES = (PASSED, FAILED, NOT_CHECKABLE)


class CheckFailed(Exception):
    """A check's expectation did not hold; the message is the table's detail."""


class NotCheckable(Exception):
    """This deployment cannot show what the check checks; the message says why."""


@dataclass(frozen=True)
class Result:
    name: str
    status: str  # one of STATUSES
    detail: str
    seconds: float

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def ok(self) -> bool:
        return self.status == PASSED

    @property
    def failed(self) -> bool:
        return self.status == FAILED


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)
