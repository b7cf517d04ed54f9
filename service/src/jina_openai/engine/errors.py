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
    """Admitting the request would exceed the queue bound; retry after `retry_after_s`.
    `reason` names the bound (logged, read by `jina-stack doctor`): queued_requests,
    queued_tokens, request_memory, queue_wait or shutting_down."""

    def __init__(self, message: str, *, retry_after_s: int, reason: str = "capacity") -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.reason = reason


class RequestTooLargeError(EngineError):
    """The request alone needs more than one request may hold (tokens or memory): it can never
    be admitted. `code`: too_many_tokens or request_too_large."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class ClientDisconnectedError(EngineError):
    """The client went away before its vectors were ready; `dropped_inputs` were never
    embedded."""

    def __init__(self, dropped_inputs: int = 0) -> None:
        super().__init__("the client disconnected")
        self.dropped_inputs = dropped_inputs


class DeadlineExceededError(EngineError):
    """The request was not done within `request_timeout_s` of its admission; its remaining
    inputs were dropped."""

    def __init__(self, message: str, *, retry_after_s: int, dropped_inputs: int = 0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.dropped_inputs = dropped_inputs


class EngineGaveUpError(RuntimeError):
    """Why the inference thread is given up on (a hung batch, batch after batch failing): the
    engine stops serving and its owner replaces the process."""


class EngineNotReadyError(EngineError):
    """The model is still loading, failed to load, or the engine is shutting down."""

    def __init__(self, message: str, *, retry_after_s: int | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InferenceFailedError(EngineError):
    """The model raised or produced a non-finite vector for a batch holding this request."""
