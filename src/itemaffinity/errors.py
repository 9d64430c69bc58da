"""Errors that the CLI turns into one clear line and an exit code."""

from __future__ import annotations


class InputError(Exception):
    """Bad input from the user (file, column, value, option): exit code 2, no traceback.

    Args:
        message: what is wrong, in one line.
        file: the file it concerns, if any.
        column: the column it concerns, if any.
        row: the 1-based data row it concerns, if any.
    """

    def __init__(self, message: str, *, file: str | None = None, column: str | None = None,
                 row: int | None = None) -> None:
        self.file, self.column, self.row = file, column, row
        where = []
        if file:
            where.append(f"file {file}")
        if column:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)
