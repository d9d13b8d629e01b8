"""The sources :func:`cnnjax.data.load` chooses from, and how it chooses.

A source is one module of this package with a ``SOURCE = Source(...)``: the dataset names that
select it on their own (``names``), how to recognise a directory it reads (``find``) and how to
read it (``load``).  Adding a format is one module plus one line in :data:`cnnjax.data.SOURCES`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional


@dataclasses.dataclass(frozen=True)
class Options:
    """What some sources need besides a name and a directory (others ignore it).

    ``image_size`` / ``channels``: the square side and channel count (1 or 3) images are brought
    to; 0 = taken from the data (an image folder: its first training image).  ``cache_dir``:
    where prepared image folders are kept (None: ``$XDG_CACHE_HOME/cnnjax``, ``""``: no cache).
    ``split``: a run's recorded split of a flat image folder ({relative path: "train"/"test"}):
    those files keep their split, others are split by the folder's rule (None: all are).
    """
    image_size: int = 0
    channels: int = 0
    cache_dir: Optional[str] = None
    split: Optional[dict] = None


@dataclasses.dataclass(frozen=True)
class Source:
    """One data format.

    ``find(name, data_dir)`` -> a handle (e.g. the directory that holds the files) when
    ``data_dir`` (None: the source's system location, if any) holds this format, else None; it
    raises :class:`~cnnjax.data.DataError` for a copy that is recognisably this format but
    incomplete.  ``load(name, data_dir, handle, options)`` -> :class:`~cnnjax.data.Dataset`
    (``handle`` is None when the source was selected by one of its ``names``)."""
    kind: str
    load: Callable[[str, Optional[str], Any, Options], Any]
    find: Optional[Callable[[str, Optional[str]], Any]] = None
    names: tuple[str, ...] = ()
