r"""Data tools.  ``check``: the strict check of an image folder's prepared copies.

  python -m experiments.data check --data_dir=DIR [--cache_dir=CACHE] [--repair]

The prepared-data cache (cnnjax.data.cache) trusts a file's size and modification time, as
rsync's quick check does: a file rewritten in place with the same size and mtime would be served
from its old decoded pixels.  ``check`` decodes every file of DIR whose size and mtime are those
it was prepared with, in every prepared copy of DIR (each image size and channel count), and
compares the pixels.  It prints one line per file whose pixels differ, then a summary line.
``--repair`` deletes the copies that differ, so the next run prepares DIR again.

Exit status: 0 every prepared file matches; 1 some differ (named on stdout); 2 bad input (not an
image folder, no prepared copy).  Nothing is written without ``--repair``.
"""
from __future__ import annotations

import os
import shutil
import sys

from absl import flags

from experiments import common

_DATA_DIR = flags.DEFINE_string("data_dir", None, "The image folder to check.")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "The prepared-data cache (default: the runs' default, "
                                 "$CNNJAX_CACHE_DIR or ~/.cache/cnnjax/prepared).")
_REPAIR = flags.DEFINE_bool("repair", False, "Delete the prepared copies whose pixels differ (the next run prepares "
                            "the folder again).")


def check(data_dir: str, cache_dir: str | None, repair: bool) -> int:
    """Print the check's lines; returns the number of files whose pixels differ."""
    from cnnjax.data import cache, folder
    listing = folder.scan(data_dir)
    entries = cache.entries_of(data_dir, cache_dir)
    if not entries:
        raise common.UsageError(f"{data_dir}: no prepared copy in {cache_dir or cache.default_cache_dir()} (a run "
                                f"prepares it; --cache_dir names another cache)")
    total = 0
    for entry in entries:
        compared, differ, changed = cache.verify(entry, listing)
        for path in differ:
            print(f"{listing.path(path)}: its pixels differ from the prepared copy {entry} (same size and "
                  f"modification time)")
        note = f"; {changed} files changed size or mtime (prepared again by the next run)" if changed else ""
        if differ and repair:
            shutil.rmtree(entry)
            note += "; deleted the copy: the next run prepares the folder again"
        print(f"{entry}: {compared} files compared, {len(differ)} differ{note}")
        total += len(differ)
    return total


def main(argv):
    if len(argv) != 2 or argv[1] != "check":
        raise common.UsageError("usage: python -m experiments.data check --data_dir=DIR [--cache_dir=CACHE] [--repair]")
    if not _DATA_DIR.value:
        raise common.UsageError("--data_dir is required")
    if check(_DATA_DIR.value, _CACHE_DIR.value, _REPAIR.value):
        sys.stdout.flush()
        sys.exit(1)


if __name__ == "__main__":
    common.run(main, positional=True)
