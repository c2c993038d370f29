"""User-facing errors: the CLI prints their message as one line and exits 2 (no traceback)."""


class UserError(ValueError):
    """Bad input (config, CLI argument, data tree). The message names the field and the allowed values."""
