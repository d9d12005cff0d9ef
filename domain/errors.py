"""Errors a user can cause. Each carries a Chinese message naming the field and the reason."""


class DomainError(Exception):
    """A rejected input: nothing was written."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message
