"""User-facing errors: the CLI prints their message as one line and exits 2 (no traceback)."""


class UserError(ValueError):
    """Bad input (config, CLI argument, data tree). The message names the field and the allowed values."""


def first_line(e: BaseException, limit: int | None = None) -> str:
    """The first non-empty line of an exception's message (its type name when it has none), for a one-line
    error that quotes the cause."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:limit]
