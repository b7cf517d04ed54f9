"""Why the engine refuses or fails a request (the API layer maps these onto HTTP errors)."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of the engine's errors."""


class InvalidInputError(EngineError):
    """An input the model cannot take (too long when truncation is off, bad token ids...)."""

    def __init__(self, message: str, *, param: str, code: str) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class QueueFullError(EngineError):
    """Admitting the request would exceed the queue bound; retry after `retry_after_s`."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestTooLargeError(EngineError):
    """The request alone holds more tokens than the whole queue may: it can never be admitted."""


class EngineNotReadyError(EngineError):
    """The model is still loading, failed to load, or the engine is shutting down."""

    def __init__(self, message: str, *, retry_after_s: int | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InferenceFailedError(EngineError):
    """The model raised or produced a non-finite vector for a batch holding this request."""
