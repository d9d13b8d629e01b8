"""What every absl entry point shares: one-line errors with exit status 2, quiet JAX start-up."""
from __future__ import annotations

import logging as std_logging
import sys
from typing import NoReturn

from absl import logging


class UsageError(Exception):
    """Bad user input: printed as one line ``error: ...`` and exit status 2."""


def fail(message: str) -> NoReturn:
    """Print ``error: message`` (one line) on stderr and exit with status 2."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(2)


def quiet() -> None:
    """Hide JAX's INFO start-up chatter (e.g. 'Unable to initialize backend tpu')."""
    logging.set_verbosity(logging.WARNING)
    std_logging.getLogger("jax._src.xla_bridge").setLevel(std_logging.WARNING)


def run(main_fn) -> None:
    """``absl.app.run`` with ``quiet()`` and UsageError/ValueError/FileNotFoundError -> ``fail``."""
    from absl import app

    def wrapped(argv):
        quiet()
        if len(argv) > 1:
            fail(f"unexpected arguments: {' '.join(argv[1:])}")
        try:
            return main_fn(argv)
        except (UsageError, ValueError, FileNotFoundError) as e:
            fail(str(e))

    def parse_flags(argv):
        from absl import flags
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:  # unknown flag, bad enum value, ...: one line, status 2
            fail(f"{e} (see --help)")

    app.run(wrapped, flags_parser=parse_flags)
