"""The fingerprint of a run's data: what it trained on, recorded in its work directory and
compared before the run resumes or is evaluated, used for predictions or explained.

A record (``data_fingerprint.json`` in the work directory, written once when the run starts) is

* for an image folder (:attr:`Dataset.provenance <cnnjax.data.Dataset.provenance>`): its real
  path, layout, class names, and every image file's split (train/test), size and modification
  time -- the resolved split, so a flat folder's files keep theirs when files are added;
* for any other source (IDX, CIFAR, synthetic, TFDS): its ``source`` line and the sha256 of its
  train/test(/val) images and labels as loaded (before num_train, the validation hold-out and
  class restriction, which the config fixes);

plus ``digest``, the sha256 of the rest.  The validation split is held out of the training
split by the run's seed (:meth:`cnnjax.data.Dataset.hold_out`); it is not listed.

:func:`compare` says what changed in words ("3 files added (e.g. cat/x.png), 1 class added:
fox"); :func:`check` raises :class:`DataChanged` (a one-line :class:`~cnnjax.data.DataError`)
for data that differs from the record, saying how to go on.  This module reads and writes
only the record file; the work directory's other files are :mod:`cnnjax.train.workdir`'s.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from cnnjax.data.dataset import DataError, Dataset

FILE = "data_fingerprint.json"
#: a metrics.jsonl line that records an accepted change (Workdir.metrics() skips it)
EVENT = "data_changed"


class DataChanged(DataError):
    """The data differs from the run's record; the message says what changed and how to go on."""

    def __init__(self, message: str, changes: str, classes_changed: bool):
        super().__init__(message)
        self.changes, self.classes_changed = changes, classes_changed


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def array_digest(ds: Dataset, chunk_bytes: int = 16 << 20) -> str:
    """sha256 of ``ds``'s splits' shapes, images and labels (memory-mapped arrays streamed)."""
    h = hashlib.sha256()
    for split in ("train", "test", "val"):
        images, labels = getattr(ds, f"{split}_images"), getattr(ds, f"{split}_labels")
        if images is None:
            continue
        h.update(json.dumps([split, list(images.shape), list(ds.class_names)]).encode())
        step = max(1, chunk_bytes // max(1, int(np.prod(images.shape[1:]))))
        for start in range(0, len(images), step):
            h.update(np.ascontiguousarray(images[start:start + step]).tobytes())
        h.update(np.ascontiguousarray(labels, np.int32).tobytes())
    return h.hexdigest()


def describe(ds: Dataset) -> dict:
    """The record of ``ds`` as loaded from its source (see the module docstring)."""
    if ds.provenance is not None:
        record = dict(ds.provenance)
    else:
        record = {"kind": "arrays", "source": ds.source, "class_names": list(ds.class_names),
                  "counts": {s: len(getattr(ds, f"{s}_labels")) for s in ("train", "test", "val")
                             if getattr(ds, f"{s}_labels") is not None},
                  "arrays_sha256": array_digest(ds)}
    return with_digest(record)


def with_digest(record: dict) -> dict:
    """``record`` with its ``digest``: the sha256 of everything but the folder's path (a folder
    moved with its files, e.g. ``cp -a``, is the same data)."""
    return {**record, "digest": _sha({k: v for k, v in record.items() if k not in ("digest", "root")})}


def summary(record: dict) -> dict:
    """The few fields of a record that data.json carries."""
    out = {"kind": record["kind"], "digest": record["digest"], "file": FILE}
    if record["kind"] == "folder":
        out["files"] = {split: len(paths) for split, paths in record["files"].items()}
    return out


def read(workdir: str) -> dict | None:
    """The run's record, or None (a run made before records existed, or not started)."""
    try:
        with open(os.path.join(workdir, FILE)) as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise DataError(f"{os.path.join(workdir, FILE)} is unreadable ({' '.join(str(e).split())}); "
                        f"move it away to record the data as it is now") from None
    return record if isinstance(record, dict) and "digest" in record else None


def write(workdir: str, record: dict) -> None:
    """Write ``record`` atomically (temporary file + rename)."""
    path = os.path.join(workdir, FILE)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(record, f, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def pinned_split(record: dict | None) -> dict | None:
    """{relative path: split} of a recorded flat image folder (what Options.split takes), else None."""
    if not record or record.get("kind") != "folder" or record.get("layout") != "flat":
        return None
    return {path: split for split, paths in record["files"].items() for path in paths}


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "es" if what.endswith("s") else "s")


def compare(old: dict, new: dict) -> tuple[str, bool]:
    """(what changed from ``old`` to ``new`` in words, "" when nothing did; whether the classes did)."""
    if old["digest"] == new["digest"]:
        return "", False
    parts = []
    old_classes, new_classes = old.get("class_names", []), new.get("class_names", [])
    added_c = [c for c in new_classes if c not in old_classes]
    removed_c = [c for c in old_classes if c not in new_classes]
    classes_changed = old_classes != new_classes
    if added_c:
        parts.append(f"{_count(len(added_c), 'class')} added: {', '.join(added_c[:5])}" + (", ..." * (len(added_c) > 5)))
    if removed_c:
        parts.append(f"{_count(len(removed_c), 'class')} removed: {', '.join(removed_c[:5])}"
                     + (", ..." * (len(removed_c) > 5)))
    if classes_changed and not (added_c or removed_c):
        parts.append("the class order changed")
    if old["kind"] == "folder" and new["kind"] == "folder":
        a, b = old["stats"], new["stats"]
        for paths, what in ((sorted(b.keys() - a.keys()), "added"), (sorted(a.keys() - b.keys()), "removed"),
                            (sorted(p for p in a.keys() & b.keys() if list(a[p]) != list(b[p])), "modified")):
            if paths:
                parts.append(f"{_count(len(paths), 'file')} {what} (e.g. {paths[0]})")
        split_of = lambda r: {p: s for s, ps in r["files"].items() for p in ps}
        sa, sb = split_of(old), split_of(new)
        moved = sorted(p for p in sa.keys() & sb.keys() if sa[p] != sb[p])
        if moved:
            parts.append(f"{_count(len(moved), 'file')} moved to another split (e.g. {moved[0]}: {sa[moved[0]]} -> "
                         f"{sb[moved[0]]})")
    elif old["kind"] != new["kind"] or old.get("source") != new.get("source"):
        parts.append(f"another source ({old.get('source') or old.get('root')} -> {new.get('source') or new.get('root')})")
    else:
        counts = ", ".join(f"{s} {old.get('counts', {}).get(s)} -> {n}" for s, n in new.get("counts", {}).items()
                           if old.get("counts", {}).get(s) != n)
        parts.append(f"its images or labels differ (sha256 {old.get('arrays_sha256', '?')[:12]} -> "
                     f"{new.get('arrays_sha256', '?')[:12]}{'; ' + counts if counts else ''})")
    return "; ".join(parts) or "its layout changed", classes_changed


def where(record: dict) -> str:
    return record.get("root") or record.get("source") or "the data"


def check(workdir: str, ds: Dataset, *, doing: str, remedy: str) -> None:
    """DataChanged when ``ds`` differs from ``workdir``'s record (nothing to check: no record).

    ``doing`` names the command ("cannot evaluate"), ``remedy`` how to go on."""
    old = read(workdir)
    if old is None:
        return
    new = describe(ds)
    changes, classes = compare(old, new)
    if changes:
        raise DataChanged(f"{doing}: the data of {workdir} changed since the run started ({where(new)}: {changes}); "
                          f"{remedy}", changes, classes)


def folder_provenance(root: str, layout: str, class_names, files: dict, stats: dict) -> dict:
    """:attr:`Dataset.provenance <cnnjax.data.Dataset.provenance>` of an image folder: its real
    path, layout, class names, every file's split and (size, mtime in ns) -- what
    :mod:`cnnjax.data.fingerprint` compares."""
    return {"kind": "folder", "root": os.path.realpath(root), "layout": layout, "class_names": list(class_names),
            "files": {split: list(paths) for split, paths in files.items()},
            "stats": {path: [int(v) for v in stat_] for path, stat_ in stats.items()}}
