"""What every absl entry point shares: the ``--config`` flag, one-line errors with exit status 2,
quiet JAX start-up."""
from __future__ import annotations

import logging as std_logging
import os
import sys
from typing import NoReturn

from absl import logging

DEFAULT_CONFIG = "experiments/configs/default.py"


class UsageError(Exception):
    """Bad user input: printed as one line ``error: ...`` and exit status 2."""


def fail(message: str) -> NoReturn:
    """Print ``error: message`` (one line) on stderr and exit with status 2.  Exceptions that
    only surface while the interpreter shuts down (e.g. Orbax read coroutines abandoned by the
    failure) are not printed after it: the line above says what went wrong."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    _silence_stderr()
    sys.exit(2)


def _silence_stderr() -> None:
    """Nothing reaches stderr after the error line: Orbax/TensorStore threads abandoned by the
    failure may raise while the interpreter shuts down (e.g. 'Event loop is closed' from a
    TensorStore callback, printed through ``sys.excepthook`` from a C++ thread), which the line
    above already explains.  stdout is left alone."""
    import threading
    sys.unraisablehook = lambda unraisable: None
    sys.excepthook = lambda *exc_info: None
    threading.excepthook = lambda args: None
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stderr.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stderr without a file descriptor (e.g. captured)
        pass
    sys.stderr = open(os.devnull, "w")


def define_config_flag(default: str | None = None):
    """``--config=FILE[:ARG]`` (default ``default``, else experiments/configs/default.py) plus
    ``--config.KEY=VALUE`` overrides of any setting (ml_collections ``config_flags``); keys a file
    does not have, e.g. model options, may be added from the command line and are checked by
    :func:`train_config`."""
    import os

    from ml_collections import config_flags
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    default = default or os.path.join(repo, DEFAULT_CONFIG)
    return config_flags.DEFINE_config_file(
        "config", default, f"Experiment config file (default {os.path.relpath(default, repo)}); a file may take an "
        "argument after ':'. Override any setting with --config.KEY=VALUE; the settings are in cnnjax/train/config.py.",
        lock_config=False, accept_new_attributes=True)


def config_module(file: str):
    """The Python module of a config or study file ``FILE[:ARG]`` (ARG is not read here), run from
    its path; UsageError when FILE is not a file."""
    import importlib.util
    path = file.split(":", 1)[0]
    spec = importlib.util.spec_from_file_location("_cnnjax_config_file", path)
    if spec is None or not os.path.isfile(path):
        raise UsageError(f"--config: {path} is not a file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_config(holder):
    """The validated :class:`cnnjax.train.config.TrainConfig` of a ``--config`` flag (UsageError naming
    the file and the key otherwise)."""
    from cnnjax.train import config as config_lib
    from ml_collections import config_flags
    import os
    from absl import flags
    where = config_flags.get_config_filename(flags.FLAGS[holder.name]).split(":", 1)[0]
    if not os.path.isfile(where):
        raise UsageError(f"--config: {where} is not a file")
    try:
        value = holder.value
        if value is None:
            raise UsageError("--config: get_config() returned None")
        return config_lib.from_dict(value)  # types, values and the model's options
    except (OSError, config_lib.ConfigError) as e:
        raise UsageError(f"{os.path.relpath(where)}: {e}") from None


def quiet() -> None:
    """Hide JAX's INFO start-up chatter (e.g. 'Unable to initialize backend tpu'), and Orbax's
    ERROR records from its writer threads: the same failure reaches the caller as an exception,
    which the entry point reports in one line (a full disk printed ~330 lines)."""
    logging.set_verbosity(logging.WARNING)
    std_logging.getLogger("jax._src.xla_bridge").setLevel(std_logging.WARNING)
    logging.get_absl_handler().addFilter(
        lambda r: not (r.levelno >= std_logging.ERROR and f"{os.sep}orbax{os.sep}" in r.pathname))


def run(main_fn, positional: bool = False) -> None:
    """``absl.app.run`` with ``quiet()``, the compilation cache of the command's ``--config``
    (``compile_cache_dir``) or the environment (:func:`cnnjax.compile_cache.configure`) and UsageError/ValueError/FileNotFoundError -> ``fail``;
    arguments other than flags are an error unless ``positional`` (then main_fn gets them)."""
    from absl import app

    def wrapped(argv):
        quiet()
        if len(argv) > 1 and not positional:
            fail(f"unexpected arguments: {' '.join(argv[1:])}")
        from absl import flags
        from cnnjax import compile_cache
        # JAX's persistent compilation cache, before the first computation: a --config's own
        # compile_cache_dir decides where (or '' that there is none), else the environment
        config = flags.FLAGS["config"].value if "config" in flags.FLAGS else None
        compile_cache.configure(getattr(config, "compile_cache_dir", None))
        try:
            return main_fn(argv)
        except (UsageError, ValueError, FileNotFoundError) as e:
            fail(str(e))

    def parse_flags(argv):
        from absl import flags
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:  # unknown flag, bad enum value, ...: one line, status 2
            message = str(e)
            if "Error whilst parsing config file" in message:  # get_config raised: its last line says why
                message = f"--config: {message.strip().splitlines()[-1]}"
            fail(f"{message} (see --help)")

    app.run(wrapped, flags_parser=parse_flags)
