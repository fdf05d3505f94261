"""Errors the state machine reports, with etcd's exact wording and gRPC codes.

Clients of etcd match on these strings (some map them to exception classes), so the
`message` is etcd's text verbatim and `grpc_code` is the status etcd's gateway puts in
the error body; the HTTP layer only has to map the code to a status.

The same classes serve two roles: reads raise them, and `apply` returns them inside an
`ApplyResult` instead of raising, because one failed command must not abort the other
commands committed in the same batch. They are plain values (code + message), so a
result that carries one can be stored in the dedup table and replayed identically.
"""

from __future__ import annotations

from enum import IntEnum


class GrpcCode(IntEnum):
    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    FAILED_PRECONDITION = 9
    RESOURCE_EXHAUSTED = 8
    OUT_OF_RANGE = 11


class ErrorCode(IntEnum):
    """Stable numeric identity of an error, used in the persisted encoding."""

    BAD_REQUEST = 1
    COMPACTED = 2
    FUTURE_REVISION = 3
    LEASE_NOT_FOUND = 4
    LEASE_EXISTS = 5
    NO_SPACE = 6
    DUPLICATE_KEY = 7
    KEY_NOT_FOUND = 8
    LEASE_TTL_TOO_LARGE = 9


class MvccError(Exception):
    """Base class: a request the state machine refused, with nothing written."""

    code: ErrorCode = ErrorCode.BAD_REQUEST
    grpc_code: GrpcCode = GrpcCode.INVALID_ARGUMENT
    default_message: str = "etcdserver: bad request"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MvccError)
            and other.code == self.code
            and other.message == self.message
        )

    def __hash__(self) -> int:
        return hash((self.code, self.message))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class BadRequestError(MvccError):
    """Malformed request (empty key, oversized key, undecodable command...)."""


class RevisionCompactedError(MvccError):
    code = ErrorCode.COMPACTED
    grpc_code = GrpcCode.OUT_OF_RANGE
    default_message = "etcdserver: mvcc: required revision has been compacted"


class FutureRevisionError(MvccError):
    code = ErrorCode.FUTURE_REVISION
    grpc_code = GrpcCode.OUT_OF_RANGE
    default_message = "etcdserver: mvcc: required revision is a future revision"


class LeaseNotFoundError(MvccError):
    code = ErrorCode.LEASE_NOT_FOUND
    grpc_code = GrpcCode.NOT_FOUND
    default_message = "etcdserver: requested lease not found"


class LeaseExistsError(MvccError):
    code = ErrorCode.LEASE_EXISTS
    grpc_code = GrpcCode.FAILED_PRECONDITION
    default_message = "etcdserver: lease already exists"


class NoSpaceError(MvccError):
    code = ErrorCode.NO_SPACE
    grpc_code = GrpcCode.RESOURCE_EXHAUSTED
    default_message = "etcdserver: mvcc: database space exceeded"


class DuplicateKeyError(MvccError):
    code = ErrorCode.DUPLICATE_KEY
    grpc_code = GrpcCode.INVALID_ARGUMENT
    default_message = "etcdserver: duplicate key given in txn request"


class KeyNotFoundError(MvccError):
    """A put with ignore_value/ignore_lease on a key that does not exist."""

    code = ErrorCode.KEY_NOT_FOUND
    grpc_code = GrpcCode.INVALID_ARGUMENT
    default_message = "etcdserver: key not found"


class LeaseTTLTooLargeError(MvccError):
    code = ErrorCode.LEASE_TTL_TOO_LARGE
    grpc_code = GrpcCode.OUT_OF_RANGE
    default_message = "etcdserver: too large lease TTL"


# etcd's request-validation messages that share BadRequestError's code.
MSG_EMPTY_KEY = "etcdserver: key is not provided"
MSG_VALUE_PROVIDED = "etcdserver: value is provided"
MSG_LEASE_PROVIDED = "etcdserver: lease is provided"
MSG_KEY_TOO_LARGE = "raftkv: key is too large"

_BY_CODE: dict[ErrorCode, type[MvccError]] = {
    cls.code: cls
    for cls in (
        BadRequestError,
        RevisionCompactedError,
        FutureRevisionError,
        LeaseNotFoundError,
        LeaseExistsError,
        NoSpaceError,
        DuplicateKeyError,
        KeyNotFoundError,
        LeaseTTLTooLargeError,
    )
}


def error_from_code(code: int, message: str) -> MvccError:
    """Rebuild an error from its persisted (code, message) form."""
    return _BY_CODE[ErrorCode(code)](message)


class StorageFullError(Exception):
    """The LMDB map itself is full even for a write that frees space.

    Not an MvccError: no request caused it and no answer fixes it. The node must stop
    applying (fail-stop) rather than skip entries; an operator has to grow the map.
    """
