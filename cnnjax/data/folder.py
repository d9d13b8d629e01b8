"""An image folder: ``--config.dataset=folder --config.data_dir=DIR``, one sub-folder per class.

Layouts (the first that matches):

* ``DIR/train/<class>/*``, ``DIR/test/<class>/*`` and optionally ``DIR/val/<class>/*`` (or
  ``validation/``), as tfds' ImageFolder reads them; the class folders of every split must be
  the same;
* ``DIR/<class>/*`` (torchvision's ImageFolder): :data:`FLAT_TEST_FRACTION` of each class's
  files, chosen by :data:`FLAT_SPLIT_SEED` (a fixed seed, not the run's: every run of a study is
  tested on the same images), become the test split.  A run's later loads pass its recorded
  split (``scan(root, pinned)``, :mod:`cnnjax.data.fingerprint`): recorded files keep their
  split and only files added since are split by the rule.

Class names are the sorted class folder names (label k = the k-th name).  Class folders are
walked recursively, symbolic links followed.  A file counts when its name has an image extension
(:data:`cnnjax.data.imagefile.IMAGE_EXTENSIONS`, any case) and does not start with ``.``; hidden files
and folders and other files are skipped and counted (``Dataset.info``).  Every image is decoded
by :func:`cnnjax.data.imagefile.load_image` to ``image_size x image_size x channels`` (0: the shorter
side and the channel count -- 1 for a greyscale mode, else 3 -- of the first training image).
Within a split, examples are ordered by class, then by path.

Decoded images are kept in a prepared cache (:mod:`cnnjax.data.cache`) keyed by the folder's
listing (paths, sizes, modification times), ``image_size`` and ``channels``; later runs map it
instead of decoding again.  Bad input (unreadable folder or file, symbolic-link loop, empty class
folder, classes that differ between splits, no images, a single class folder, a file that is not a decodable image) is a
one-line :class:`~cnnjax.data.DataError` naming the path; nothing is written then.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import stat

import numpy as np

from cnnjax.data import imagefile
from cnnjax.data.dataset import DataError
from cnnjax.data.registry import Source
from cnnjax.data import cache, fingerprint

FLAT_TEST_FRACTION = 0.2
FLAT_SPLIT_SEED = 0
SPLIT_DIRS = {"train": ("train",), "test": ("test",), "val": ("val", "validation")}
#: bumped whenever the decoding rule or the cache layout changes: older caches are then rebuilt
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Listing:
    """What an image folder holds, without decoding anything.

    ``files[split]``: relative paths (``/``-separated) in dataset order; ``labels[split]``: their
    class indices; ``stats``: relative path -> (size in bytes, modification time in ns);
    ``skipped``: relative paths of hidden or non-image files."""
    root: str
    layout: str  # "splits" or "flat"
    class_names: tuple[str, ...]
    files: dict
    labels: dict
    stats: dict
    skipped: tuple[str, ...]

    def fingerprint(self, image_size: int, channels: int) -> str:
        """sha256 of everything a prepared copy depends on: the decoding rule's version, the
        size and channel count, and every file's split, label, path, size and mtime."""
        h = hashlib.sha256(json.dumps([FORMAT_VERSION, image_size, channels, self.layout,
                                       list(self.class_names)]).encode())
        for split in sorted(self.files):
            for path, label in zip(self.files[split], self.labels[split]):
                h.update(json.dumps([split, path, int(label), *self.stats[path]]).encode())
        return h.hexdigest()

    def path(self, relative: str) -> str:
        return os.path.join(self.root, *relative.split("/"))


def looks_like_folder(data_dir: str) -> bool:
    """Cheap test, without a full walk: ``data_dir`` has a ``train/`` folder, or a class folder
    whose first entries include an image file."""
    try:
        with os.scandir(data_dir) as entries:
            subdirs = [e for e in entries if not e.name.startswith(".") and e.is_dir()]
    except OSError:
        return False
    if any(e.name == "train" for e in subdirs):
        return True
    for d in subdirs[:8]:
        try:
            with os.scandir(d.path) as entries:
                for _, e in zip(range(64), entries):
                    if imagefile.is_image_name(e.name) and e.is_file():
                        return True
        except OSError:
            continue
    return False


def _scandir(path: str) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as entries:
            return sorted(entries, key=lambda e: e.name)
    except PermissionError:
        raise DataError(f"{path}: cannot read the directory (permission denied)") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DataError(f"{path}: symbolic link loop") from None
        raise DataError(f"{path}: cannot read the directory ({e.strerror or e})") from None


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows symbolic links
    except OSError:
        return False


def _walk_class(directory: str, relative: str, ancestors: frozenset, found: list, skipped: list, stats: dict):
    """Image files under ``directory`` (recursively, links followed), appended to ``found`` as
    relative paths in sorted order; hidden and non-image entries appended to ``skipped``."""
    real = os.path.realpath(directory)
    if real in ancestors:
        raise DataError(f"{directory}: symbolic link loop (it leads back to {real})")
    ancestors = ancestors | {real}
    for entry in _scandir(directory):
        rel = f"{relative}/{entry.name}"
        if entry.name.startswith("."):
            skipped.append(rel)
        elif _is_dir(entry):
            _walk_class(entry.path, rel, ancestors, found, skipped, stats)
        elif imagefile.is_image_name(entry.name):
            try:
                st = os.stat(entry.path)  # follows links
            except FileNotFoundError:
                raise DataError(f"{entry.path}: broken symbolic link") from None
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise DataError(f"{entry.path}: symbolic link loop") from None
                raise DataError(f"{entry.path}: cannot read ({e.strerror or e})") from None
            if not stat.S_ISREG(st.st_mode):
                raise DataError(f"{entry.path}: not a regular file")
            found.append(rel)
            stats[rel] = (st.st_size, st.st_mtime_ns)
        else:
            skipped.append(rel)


def _class_dirs(directory: str, relative: str, skipped: list) -> dict[str, str]:
    """{class name: path} of the visible sub-folders of ``directory``; its files are skipped."""
    classes = {}
    for entry in _scandir(directory):
        rel = f"{relative}/{entry.name}" if relative else entry.name
        if entry.name.startswith(".") or not _is_dir(entry):
            skipped.append(rel)
        else:
            classes[entry.name] = entry.path
    return classes


def scan(root: str, pinned: dict | None = None) -> Listing:
    """The :class:`Listing` of the image folder ``root``; DataError naming the path for a
    folder that cannot be read or is not an image folder (see the module docstring).
    ``pinned`` ({relative path: "train"/"test"}, a run's recorded split): in a flat folder those
    files keep their split; the others are split by the folder's rule among themselves."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DataError(f"{root}: not a directory (--config.data_dir must be an image folder)")
    top = {e.name: e for e in _scandir(root)}
    skipped: list[str] = []
    stats: dict = {}
    split_dirs = {split: next((top[n].path for n in names if n in top and _is_dir(top[n])), None)
                  for split, names in SPLIT_DIRS.items()}
    if split_dirs["train"] or split_dirs["test"]:
        layout = "splits"
        missing = [s for s in ("train", "test") if not split_dirs[s]]
        if missing:
            have = "train" if split_dirs["train"] else "test"
            raise DataError(f"{os.path.join(root, missing[0])}: missing: an image folder with {have}/ needs "
                            f"train/<class>/ and test/<class>/ (val/ is optional), or only <class>/ folders")
        for name, entry in top.items():
            if not any(entry.path == d for d in split_dirs.values()):
                skipped.append(name)
        per_split = {s: _class_dirs(d, os.path.relpath(d, root), skipped)
                     for s, d in split_dirs.items() if d}
        train_classes = set(per_split["train"])
        for split, classes in per_split.items():
            if split != "train" and set(classes) != train_classes:
                only_train = sorted(train_classes - set(classes))
                only_here = sorted(set(classes) - train_classes)
                raise DataError(f"{split_dirs[split]}: its class folders differ from {split_dirs['train']}'s"
                                + (f"; only in train: {', '.join(only_train)}" if only_train else "")
                                + (f"; only in {split}: {', '.join(only_here)}" if only_here else ""))
    else:
        layout = "flat"
        per_split = {"all": _class_dirs(root, "", skipped)}
    class_names = tuple(sorted(next(iter(per_split.values()))))
    if not class_names:
        raise DataError(f"{root}: no images: an image folder holds <class>/ folders of images, or train/<class>/ "
                        f"and test/<class>/ (found no class folders)")
    if len(class_names) < 2:
        where = next(iter(per_split.values()))[class_names[0]]
        raise DataError(f"{os.path.dirname(where)}: only one class folder ({class_names[0]}): a classifier needs at "
                        f"least 2 classes, one <class>/ folder each")
    files, labels = {}, {}
    for split, classes in per_split.items():
        paths, ys = [], []
        for label, name in enumerate(class_names):
            found: list[str] = []
            _walk_class(classes[name], os.path.relpath(classes[name], root).replace(os.sep, "/"), frozenset(),
                        found, skipped, stats)
            if not found:
                raise DataError(f"{classes[name]}: no images in this class folder (an empty class; remove the "
                                f"folder or add {'/'.join(imagefile.IMAGE_EXTENSIONS)} files)")
            paths += found
            ys += [label] * len(found)
        files[split], labels[split] = paths, np.asarray(ys, np.int32)
    if layout == "flat":
        files, labels = _flat_split(files.pop("all"), labels.pop("all"), len(class_names), pinned)
    return Listing(root, layout, class_names, files, labels, stats, tuple(sorted(skipped)))


def _flat_split(paths: list[str], labels: np.ndarray, num_classes: int,
                pinned: dict | None = None) -> tuple[dict, dict]:
    """Per class, round(FLAT_TEST_FRACTION * n) files (at least 1 of a class with >= 2) chosen by
    FLAT_SPLIT_SEED go to the test split; each split keeps the class-then-path order.  Files in
    ``pinned`` keep the split it gives them; the rule splits only the others."""
    pinned = pinned or {}
    test = np.asarray([pinned.get(p) == "test" for p in paths], bool)
    free = np.asarray([p not in pinned for p in paths], bool)
    for k in range(num_classes):
        members = np.flatnonzero((labels == k) & free)
        count = max(int(round(FLAT_TEST_FRACTION * len(members))), 1 if len(members) >= 2 else 0)
        chosen = np.random.default_rng([FLAT_SPLIT_SEED, k]).permutation(len(members))[:count]
        test[members[chosen]] = True
    files = {"train": [p for p, t in zip(paths, test) if not t], "test": [p for p, t in zip(paths, test) if t]}
    return files, {"train": labels[~test], "test": labels[test]}


GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def resolve_shape(listing: Listing, image_size: int, channels: int) -> tuple[int, int]:
    """(image_size, channels) with 0s replaced from the first training image's header: its
    shorter side, and 1 for a greyscale mode, else 3."""
    if image_size < 0 or channels not in (0, 1, 3):
        raise DataError(f"config.image_size must be >= 0 and config.channels 0, 1 or 3; got {image_size}, {channels}")
    if image_size and channels:
        return image_size, channels
    from PIL import Image
    path = listing.path(listing.files["train"][0])
    try:
        with Image.open(path) as im:
            w, h = im.size
            mode = im.mode
    except Exception as e:  # noqa: BLE001 - Pillow's errors (incl. DecompressionBombError): load_image's line
        raise DataError(imagefile_error(path, e)) from None
    return image_size or min(w, h), channels or (1 if mode in GREY_MODES else 3)


def imagefile_error(path: str, e: Exception) -> str:
    """One line for an image that cannot even be opened (what load_image would say)."""
    try:
        imagefile.load_image(path, None, 1)
    except imagefile.ImageError as error:
        return str(error)
    return f"{path}: cannot read ({e})"


def listing_provenance(listing: Listing) -> dict:
    """:func:`cnnjax.data.fingerprint.folder_provenance` of a scanned folder."""
    return fingerprint.folder_provenance(listing.root, listing.layout, listing.class_names, listing.files,
                                         listing.stats)


def _load(name, data_dir, found, options):
    if data_dir is None:
        raise DataError("config.dataset=folder needs the image folder: --config.data_dir=DIR")
    listing = scan(data_dir, options.split)
    size, channels = resolve_shape(listing, options.image_size, options.channels)
    ds = cache.prepared(listing, size, channels, options.cache_dir, name=name)
    if not options.image_size:  # for messages about the size (e.g. too small for a model)
        ds.info["image_size_from"] = listing.path(listing.files["train"][0])
    return ds


def _find(name, data_dir):
    return True if data_dir is not None and looks_like_folder(data_dir) else None


SOURCE = Source("folder", names=("folder", "image_folder"), find=_find, load=_load)
