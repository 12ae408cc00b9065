"""One way to start a command. ``python -m msa``'s subcommands (predict, evaluate, extract,
finetune, lab) add themselves with `subcommand`, their module's docstring as the help page; every
command naming a Whisper takes `asr_model_argument`; and `one_line_errors` turns the errors a user
can cause (a bad file, a bad setting) into one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from .features.spec import ASR_MODELS

# What a user's input can raise: the messages name the file or setting and the fault.
USER_ERRORS: tuple[type[Exception], ...] = (ValueError, OSError, RuntimeError)


def subcommand(sub: Any, name: str, help: str, doc: str | None) -> argparse.ArgumentParser:
    """A subcommand on ``sub`` (an ``add_subparsers`` result) whose ``--help`` prints ``doc`` as written."""
    return sub.add_parser(name, help=help, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def asr_model_argument(p: argparse.ArgumentParser, default: str | None = None, help: str | None = None) -> None:
    """``--asr-model``: which Whisper reads the words (None: the extractor's default, base)."""
    p.add_argument("--asr-model", choices=ASR_MODELS, default=default, help=help or "Whisper model (default base)")


def one_line_errors(run: Callable[[], int], errors: tuple[type[Exception], ...] = USER_ERRORS) -> int:
    """``run()``, with a user's error as one line ("error: ...") on stderr and exit code 2."""
    try:
        return run()
    except errors as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return 2
