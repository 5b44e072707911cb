"""The one error the CLI shows: what went wrong and what to do next, with an exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    API_ERROR = 1  # the API answered with an error
    USAGE = 2  # click's own code for bad options
    SETUP = 3  # credentials, region, stack or URL: nothing reached the API


class CliError(Exception):
    def __init__(self, message: str, exit_code: ExitCode = ExitCode.API_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
