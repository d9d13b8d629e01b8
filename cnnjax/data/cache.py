"""Prepared image folders: decoded once, memory-mapped by every later run.

Decoding every image of a folder on every run (or, worse, every epoch) is what makes folder
training slow; so, like tfds' "prepare" step, :func:`prepared` decodes a folder once by
:func:`cnnjax.data.imagefile.load_image` (in worker processes for large folders) and writes, per
split, ``<split>_images.npy`` (uint8 ``(N, S, S, C)``) and ``<split>_labels.npy`` (int32) plus
``meta.json`` to a cache entry:

  ``<cache_dir>/<folder name>-<hash of its real path>-<S>x<S>x<C>/``

``cache_dir`` defaults to ``$CNNJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/cnnjax/prepared``
(``~/.cache/cnnjax/prepared``).  Later runs open the ``.npy`` files memory-mapped
(``np.load(mmap_mode="r")``): nothing is decoded, and only the pages used are read.

An entry is used only when its fingerprint (:meth:`~cnnjax.data.folder.Listing.fingerprint`:
every file's path, size and modification time, the size, the channel count and the decoding
rule's version) equals the folder's now; otherwise the folder is prepared again and a line says
what changed -- a changed folder is never used silently.  The rule trusts size and modification
time (rsync's quick check): a file rewritten in place with both unchanged keeps its old pixels;
:func:`verify` (``python -m experiments.data check``) decodes such files again and compares.
A cache directory that cannot be written or fills up (EROFS, EACCES, ENOSPC, quota; the arrays'
blocks are fallocated before the memory-mapped writes, so a full disk is an OSError, not SIGBUS)
makes :func:`prepared` decode into memory with one notice line.  Decoding workers die with their
parent, and the temporary entries of killed prepares are removed by the next prepare's lock.  An entry is written to a temporary
directory and renamed into place, under the cache directory's lock (runs of a sweep prepare it once): a failed
prepare (a bad image) leaves no entry behind.  A prepared entry can also be loaded directly,
without the folder: ``--config.dataset=prepared --config.data_dir=ENTRY``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time

import numpy as np

from cnnjax.data import imagefile
from cnnjax.data.fingerprint import folder_provenance
from cnnjax.data.dataset import DataError, Dataset, release_pages
from cnnjax.data.registry import Source

META = "meta.json"
FORMAT = "cnnjax-prepared-image-folder"
#: folders with fewer files are decoded in this process (starting workers costs more)
PARALLEL_MIN_FILES = 2048
CHUNK = 512  # files per task of a worker process


def notice(message: str) -> None:
    """A progress or change line for the person running the job (stderr)."""
    print(message, file=sys.stderr, flush=True)


def default_cache_dir() -> str:
    if os.environ.get("CNNJAX_CACHE_DIR"):
        return os.environ["CNNJAX_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cnnjax", "prepared")


def entry_dir(cache_dir: str, root: str, image_size: int, channels: int) -> str:
    real = os.path.realpath(root)
    tag = hashlib.sha256(real.encode()).hexdigest()[:12]
    return os.path.join(cache_dir, f"{os.path.basename(real) or 'root'}-{tag}-{image_size}x{image_size}x{channels}")


def _read_meta(entry: str) -> dict | None:
    try:
        with open(os.path.join(entry, META)) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def prepared(listing, image_size: int, channels: int, cache_dir: str | None, name: str = "folder") -> Dataset:
    """The image folder of ``listing`` as a Dataset of memory-mapped arrays from its cache entry,
    prepared first when there is none or the folder changed since (see the module docstring).
    ``cache_dir=""``: no cache, the images are decoded into memory."""
    fingerprint = listing.fingerprint(image_size, channels)
    if cache_dir == "":
        arrays = {split: (decode(listing, split, image_size, channels), listing.labels[split])
                  for split in listing.files}
        return _dataset(name, listing.root, listing.class_names, listing.skipped, arrays, f"folder:{listing.root}", {},
                        folder_provenance(listing.root, listing.layout, listing.class_names,
                                                      listing.files, listing.stats))
    entry = entry_dir(cache_dir or default_cache_dir(), listing.root, image_size, channels)
    try:
        os.makedirs(os.path.dirname(entry), exist_ok=True)
        lock = os.open(os.path.dirname(entry), os.O_RDONLY)  # flock on the directory: no lock file left behind
    except OSError as e:
        notice(f"cannot write the prepared-data cache {os.path.dirname(entry)} ({e.strerror or e}); "
               f"decoding {listing.root} into memory (set --config.data_cache_dir to a writable folder)")
        return prepared(listing, image_size, channels, "", name)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the runs of a sweep prepare a folder once
        _remove_stale(os.path.dirname(entry))
        meta = _read_meta(entry)
        if meta is None or meta.get("fingerprint") != fingerprint:
            if meta is not None:
                notice(f"{listing.root} changed since it was prepared into {entry} ({_changes(meta, listing)}): "
                       f"preparing it again")
            try:
                _prepare(listing, image_size, channels, entry, fingerprint)
            except OSError as e:
                if e.errno not in _WRITE_ERRORS:
                    raise DataError(f"{os.path.dirname(entry)}: cannot write the prepared-data cache "
                                    f"({e.strerror or e}); set --config.data_cache_dir to another folder, or '' "
                                    f"to decode into memory") from None
                notice(f"cannot write the prepared-data cache {os.path.dirname(entry)} ({e.strerror or e}); "
                       f"decoding {listing.root} into memory (free space or set --config.data_cache_dir to a "
                       f"writable folder)")
                return prepared(listing, image_size, channels, "", name)
            meta = _read_meta(entry)
    finally:
        os.close(lock)
    return load_entry(entry, meta, name)


def _changes(meta: dict, listing) -> str:
    """'3 files added, 1 removed, 2 changed' between a cache entry's listing and ``listing``."""
    old = {p: tuple(s) for p, s in meta.get("stats", {}).items()}
    new = listing.stats
    added = len(new.keys() - old.keys())
    removed = len(old.keys() - new.keys())
    changed = sum(1 for p in new.keys() & old.keys() if tuple(new[p]) != old[p])
    parts = [f"{n} file{'s' * (n != 1)} {what}" for n, what in ((added, "added"), (removed, "removed"),
                                                                  (changed, "changed")) if n]
    return ", ".join(parts) or "its classes, split, image size or the decoding rule's version changed"


def spawn_is_safe() -> bool:
    """Whether worker processes can be spawned: Python's ``spawn`` re-runs the main script in
    each worker, so a script without an ``if __name__ == "__main__":`` guard would train (or wait
    for this prepare's lock) in every worker.  True for an interactive session and for a main
    script that has the guard (``experiments.train``, pytest)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None:
        return True
    try:
        with open(path) as f:
            return "__main__" in f.read()
    except (OSError, UnicodeDecodeError):
        return False


def die_with_parent(parent: int) -> None:
    """A worker process's initializer: the kernel kills the worker when its parent dies
    (``PR_SET_PDEATHSIG``, Linux), so a SIGKILLed prepare leaves no decoding orphans; a parent
    already gone by now ends the worker at once."""
    import ctypes
    import signal
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # not Linux: workers still end when their task queue breaks
        pass
    if os.getppid() != parent:
        os._exit(1)


def _decode_chunk(args) -> np.ndarray:
    paths, image_size, channels = args
    return np.stack([imagefile.load_image(p, image_size, channels) for p in paths])


def decode(listing, split: str, image_size: int, channels: int, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 ``(N, S, S, C)``: every image of ``split`` decoded by :func:`cnnjax.data.imagefile.load_image`,
    in order, into ``out`` (allocated if None); worker processes for large folders.  DataError
    naming the first bad file."""
    paths = [listing.path(p) for p in listing.files[split]]
    if out is None:
        out = np.empty((len(paths), image_size, image_size, channels), np.uint8)
    chunks = [(paths[i:i + CHUNK], image_size, channels) for i in range(0, len(paths), CHUNK)]
    workers = min(os.cpu_count() or 1, len(chunks))
    done = 0  # chunks written

    def write(blocks):
        nonlocal done
        for block in blocks:
            out[done * CHUNK:done * CHUNK + len(block)] = block
            release_pages(out)  # written pages stay in the page cache, not in this process's RSS
            done += 1

    try:
        if len(paths) >= PARALLEL_MIN_FILES and workers >= 2 and spawn_is_safe():
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            from concurrent.futures.process import BrokenProcessPool
            try:  # spawn, not fork: the parent may already run JAX's threads
                with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
                    write(pool.map(_decode_chunk, chunks))
            except BrokenProcessPool:  # e.g. a script without the __main__ guard: decode here instead
                notice("worker processes could not start (a script needs `if __name__ == \"__main__\":`); "
                       "decoding in this process")
        write(map(_decode_chunk, chunks[done:]))
    except imagefile.ImageError as e:
        raise DataError(str(e)) from None
    return out


def _allocated_memmap(path: str, shape: tuple) -> np.memmap:
    """A writable memory-mapped uint8 ``.npy`` whose blocks are allocated on disk first
    (``posix_fallocate``): a full file system is then an OSError (ENOSPC) here, not a SIGBUS
    ("Bus error") when a write through the mapping finds no free block."""
    images = np.lib.format.open_memmap(path, "w+", np.uint8, shape)
    try:
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
        finally:
            os.close(fd)
    except BaseException:
        del images
        raise
    return images


#: errors of writing the cache that make a run decode into memory instead (one notice line)
_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG)


def _remove_stale(cache_dir: str) -> None:
    """Remove the ``*.tmp-<pid>`` / ``*.old-<pid>`` entries of prepares that were killed (called
    under the cache directory's lock, which every prepare holds: any such entry is stale)."""
    try:
        names = os.listdir(cache_dir)
    except OSError:
        return
    for name in names:
        if ".tmp-" in name or ".old-" in name:
            shutil.rmtree(os.path.join(cache_dir, name), ignore_errors=True)


def _prepare(listing, image_size: int, channels: int, entry: str, fingerprint: str) -> None:
    tmp = f"{entry}.tmp-{os.getpid()}"
    t0 = time.perf_counter()
    total = sum(len(f) for f in listing.files.values())
    notice(f"preparing {listing.root}: decoding {total} images to {image_size}x{image_size}x{channels} into {entry}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        for split in listing.files:
            n = len(listing.files[split])
            images = _allocated_memmap(os.path.join(tmp, f"{split}_images.npy"), (n, image_size, image_size, channels))
            decode(listing, split, image_size, channels, images)
            images.flush()
            del images
            np.save(os.path.join(tmp, f"{split}_labels.npy"), np.asarray(listing.labels[split], np.int32))
        seconds = time.perf_counter() - t0
        meta = {"format": FORMAT, "fingerprint": fingerprint, "root": os.path.realpath(listing.root),
                "layout": listing.layout, "image_size": image_size, "channels": channels,
                "class_names": list(listing.class_names), "files": listing.files,
                "stats": {p: list(s) for p, s in listing.stats.items()}, "skipped": list(listing.skipped),
                "prepare_seconds": seconds, "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with open(os.path.join(tmp, META), "w") as f:
            json.dump(meta, f)
        if os.path.exists(entry):  # an out-of-date entry: replaced only now that the new one is complete
            old = f"{entry}.old-{os.getpid()}"
            os.replace(entry, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, entry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    notice(f"prepared {listing.root} in {seconds:.1f}s ({total / max(seconds, 1e-9):,.0f} images/s)")


def _dataset(name: str, root: str, class_names, skipped, arrays: dict, source: str, extra: dict,
             provenance: dict) -> Dataset:
    if skipped:
        notice(f"{root}: skipped {len(skipped)} hidden or non-image file{'s' * (len(skipped) != 1)} "
               f"(e.g. {', '.join(skipped[:3])})")
    val = arrays.get("val")
    info = {"folder": root, "skipped_files": len(skipped), **extra}
    return Dataset(name, *arrays["train"], *arrays["test"], class_names=tuple(class_names), source=source,
                   val_images=val[0] if val else None, val_labels=val[1] if val else None, info=info,
                   provenance=provenance)


def load_entry(entry: str, meta: dict | None = None, name: str = "prepared") -> Dataset:
    """A prepared cache entry as a Dataset of memory-mapped image arrays."""
    meta = meta or _read_meta(entry)
    if meta is None:
        raise DataError(f"{os.path.join(entry, META)}: not a prepared image folder (missing or unreadable)")
    arrays = {}
    for split in meta["files"]:
        try:
            arrays[split] = (np.load(os.path.join(entry, f"{split}_images.npy"), mmap_mode="r"),
                             np.load(os.path.join(entry, f"{split}_labels.npy")))
        except (OSError, ValueError) as e:
            raise DataError(f"{entry}: prepared {split} split unreadable ({e}); delete the folder to prepare "
                            f"it again") from None
    return _dataset(name, meta["root"], meta["class_names"], meta["skipped"], arrays,
                    f"folder:{meta['root']} (prepared {entry})", {"prepared": entry},
                    folder_provenance(meta["root"], meta.get("layout", "splits"), meta["class_names"], meta["files"],
                                      meta.get("stats", {})))


def entries_of(root: str, cache_dir: str | None = None) -> list[str]:
    """The cache entries (every size and channel count) prepared from the folder ``root``."""
    cache_dir = cache_dir or default_cache_dir()
    prefix = os.path.basename(entry_dir(cache_dir, root, 0, 0)).rsplit("-", 1)[0] + "-"
    try:
        names = sorted(os.listdir(cache_dir))
    except OSError:
        return []
    return [os.path.join(cache_dir, n) for n in names
            if n.startswith(prefix) and ".tmp-" not in n and ".old-" not in n and _read_meta(os.path.join(cache_dir, n))]


def verify(entry: str, listing) -> tuple[int, list[str], int]:
    """The strict check of a cache entry against the folder now: every file whose size and
    modification time are those it was prepared with (the cache's rule trusts them) is decoded
    again and compared with its prepared pixels.  Returns (files compared, the relative paths
    whose pixels differ, files whose size or mtime changed -- the next run prepares those again
    anyway)."""
    meta = _read_meta(entry)
    if meta is None:
        raise DataError(f"{os.path.join(entry, META)}: not a prepared image folder (missing or unreadable)")
    stats = {p: tuple(v) for p, v in meta.get("stats", {}).items()}
    compared, differ, moved = 0, [], 0
    for split, paths in meta["files"].items():
        images = np.load(os.path.join(entry, f"{split}_images.npy"), mmap_mode="r")
        for i, path in enumerate(paths):
            if tuple(listing.stats.get(path, ())) != stats.get(path):
                moved += 1
                continue
            try:
                now = imagefile.load_image(listing.path(path), meta["image_size"], meta["channels"])
            except imagefile.ImageError:
                differ.append(path)
                continue
            compared += 1
            if not np.array_equal(now, images[i]):
                differ.append(path)
        release_pages(images)
    return compared, differ, moved


def _find(name, data_dir):
    return data_dir if data_dir is not None and _read_meta(data_dir) is not None else None


def _load(name, data_dir, found, options) -> Dataset:
    if data_dir is None:
        raise DataError("config.dataset=prepared needs the prepared folder: --config.data_dir=ENTRY")
    return load_entry(data_dir, name=name)


SOURCE = Source("prepared", names=("prepared",), find=_find, load=_load)
