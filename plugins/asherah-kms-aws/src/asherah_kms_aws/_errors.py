"""Failures per region, named by the AWS error code, never carrying key material."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import botocore.exceptions

from asherah import KmsError

#: What a boto3 call can raise: an AWS error answer, or a local/network failure.
BOTO_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)

_MAX_MESSAGE = 200


@dataclass(frozen=True, slots=True)
class RegionFailure:
    """Why one region failed: ``code`` is the AWS error code (``AccessDeniedException``,
    ``NotFoundException``, ``ThrottlingException``, ...) or the botocore exception name for
    failures that never reached AWS (``EndpointConnectionError``, ``ReadTimeoutError``, ...)."""

    region: str
    operation: str
    code: str
    message: str = ""

    def __str__(self) -> str:
        detail = f": {self.message}" if self.message else ""
        return f"{self.region}: {self.operation} {self.code}{detail}"


class AwsKmsError(KmsError):
    """An AWS KMS or Secrets Manager call failed; ``failures`` lists each region's reason."""

    def __init__(self, message: str, failures: Sequence[RegionFailure] = ()) -> None:
        super().__init__(message)
        self.failures: tuple[RegionFailure, ...] = tuple(failures)


def describe(region: str, operation: str, exc: BaseException) -> RegionFailure:
    """The region, operation, AWS error code and a short message of a boto3 failure.

    AWS error messages name keys and ARNs, never request payloads, so they are safe to show.
    """
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(
            error.get("Code")
            or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "ClientError")
        )
        message = str(error.get("Message") or "")
    else:
        code, message = type(exc).__name__, str(exc)
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return RegionFailure(region, operation, code, message)


def join(failures: Sequence[RegionFailure]) -> str:
    return "; ".join(str(f) for f in failures)
