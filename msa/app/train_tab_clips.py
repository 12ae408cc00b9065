"""The Train tab's clips, without gradio: one page's added files (`ClipShelf`), a zip of clips with
its labels CSV unpacked safely (`unzip_clips`), the table of labels read back into `LabelledClip`s
(`clips_from_table`), and the features of each file kept in memory by content (`FeatureMemo`), so
that training the same clips again does not extract them again.

Every problem is a `ClipError` whose message names the file or the table row and says what is
accepted; nothing here names a server folder.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import shutil
import stat
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from ..features import FeatureError, FeatureExtractor, probe, sha256_file
from ..features.extractor import Extraction
from ..features.media import MediaLimits
from ..features.videos import MEDIA_SUFFIXES
from ..finetune import ClipError, ClipLimits, LabelledClip, read_labels
from ..finetune.clips import check_count, join_problems, parse_label
from .service import scrub_paths

TABLE_HEADERS = ["file", "label", "words", "speaker"]
# Files a zip may hold beside its clips that are not worth a word (a Mac's zip adds them).
_ZIP_JUNK = ("__MACOSX/", ".DS_Store", "Thumbs.db")


def _clip_name(name: str) -> str:
    """A file name as the table shows it: its last part, with only safe characters."""
    base = PurePosixPath(name.replace("\\", "/")).name
    stem, suffix = Path(base).stem, Path(base).suffix.lower()
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._")[:60] or "clip"
    return stem + suffix


class ClipShelf:
    """One page's clips: each added file copied into the page's own folder (the upload folder is
    swept after 30 minutes; labelling can take longer), one copy per content."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files: dict[str, Path] = {}  # the table's name -> the copy
        self.streams: dict[str, tuple[bool, bool]] = {}  # the table's name -> (sound, picture)
        self._by_digest: dict[str, str] = {}

    def add(self, path: Path, name: str, limits: ClipLimits) -> tuple[str, bool]:
        """Copy the media file ``path`` in as ``name`` (made unique); returns the table's name
        for it and whether it is new (a file with the same content is added once).

        Raises
        ------
        ClipError
            Not a media type read here, not media at all (or damaged), too long, or with neither
            a sound track nor a picture.
        """
        name = _clip_name(name)
        if Path(name).suffix not in MEDIA_SUFFIXES:
            raise ClipError(f"{name}: not a clip; clips are video or audio files ({', '.join(MEDIA_SUFFIXES)})")
        try:
            info = probe(path, limits.media_limits())
        except FeatureError as e:
            raise ClipError(_where(f"{name}: {e}", path, name)) from None
        if info.duration is not None and info.duration > limits.max_seconds:
            raise ClipError(f"{name} lasts {info.duration:.1f} s; clips up to {limits.max_seconds:g} s are taken")
        if info.audio_stream is None and info.video_stream is None:
            raise ClipError(f"{name}: neither a sound track nor a picture; a clip needs a voice or a face")
        digest = sha256_file(path)
        if digest in self._by_digest:
            return self._by_digest[digest], False
        stem, suffix, n = Path(name).stem, Path(name).suffix, 1
        while name in self.files:
            n += 1
            name = f"{stem}-{n}{suffix}"
        self.folder.mkdir(parents=True, exist_ok=True)
        copy = self.folder / name
        shutil.copyfile(path, copy)
        self.files[name] = copy
        self.streams[name] = (info.audio_stream is not None, info.video_stream is not None)
        self._by_digest[digest] = name
        return name, True

    def clear(self) -> None:
        for kept in self.files.values():
            kept.unlink(missing_ok=True)
        self.files.clear()
        self.streams.clear()
        self._by_digest.clear()


def _where(message: str, path: Path, name: str) -> str:
    """``message`` with the server's path of ``path`` replaced by the user's name for it."""
    for server in (str(path.resolve()), str(path)):
        message = message.replace(server, name)
    return scrub_paths(message)


def unzip_clips(archive: Path, dest: Path, limits: ClipLimits, need_labels: bool, max_bytes: int) -> list[LabelledClip]:
    """The clips a zip holds, as its labels CSV names them, unpacked under ``dest``.

    Refused before anything is written: not a zip, a member whose path leaves ``dest`` (absolute,
    with "..") or is a link, more files than ``limits.max_clips`` allows (plus the CSV), more than
    ``max_bytes`` unpacked, no labels CSV or more than one. Then the CSV's rows are checked as
    ``python -m msa finetune`` checks them (`read_labels`).
    """
    zname = _clip_name(archive.name) if archive.suffix.lower() == ".zip" else "the zip"
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError):
        raise ClipError(
            f"{zname}: not a zip file (or a damaged one); a zip of clips holds media files and one labels CSV"
        ) from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir() and not any(j in m.filename for j in _ZIP_JUNK)]
        for m in members:
            parts = PurePosixPath(m.filename.replace("\\", "/")).parts
            if m.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise ClipError(
                    f"{zname}: {m.filename} would be unpacked outside its folder; refused (a zip of clips "
                    "holds plain relative paths, without '..')"
                )
            if stat.S_ISLNK(m.external_attr >> 16):
                raise ClipError(f"{zname}: {m.filename} is a link; refused (a zip of clips holds plain files)")
        if len(members) > limits.max_clips + 1:
            raise ClipError(
                f"{zname} holds {len(members)} files; at most {limits.max_clips} clips (and their labels CSV) "
                "are taken in one fine-tuning"
            )
        unpacked = sum(m.file_size for m in members)
        if unpacked > max_bytes:
            raise ClipError(
                f"{zname} unpacks to {unpacked / 2**20:.0f} MB; at most {max_bytes / 2**20:.0f} MB are taken"
            )
        tables = [m for m in members if m.filename.lower().endswith(".csv")]
        if len(tables) != 1:
            found = (
                "no CSV file" if not tables else f"{len(tables)} CSV files ({', '.join(t.filename for t in tables)})"
            )
            raise ClipError(f"{zname} holds {found}; it needs exactly one labels CSV with the columns file,label")
        root = dest / zname  # messages about a file not in the folder then name the zip
        for m in members:
            target = root.joinpath(*PurePosixPath(m.filename.replace("\\", "/")).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(m) as src, open(target, "wb") as out:  # at most the size the zip states
                shutil.copyfileobj(src, out, 1 << 20)
        labels = root.joinpath(*PurePosixPath(tables[0].filename.replace("\\", "/")).parts)
    try:
        return read_labels(labels, labels.parent, limits, need_labels=need_labels)
    except ClipError as e:
        message = str(e).replace(str(labels.parent.resolve()), zname).replace(str(labels.parent), zname)
        if need_labels and "needs the columns file,label" in message:
            message += " (or tick \u201clabel with the text path\u201d)"
        raise ClipError(scrub_paths(message)) from None


def label_cell(value: float) -> str:
    """A label as the table shows it: "+2", "-1.5", "0"; blank when unknown."""
    return "" if not math.isfinite(value) else f"{value:+g}" if value else "0"


def clips_from_table(
    rows: Sequence[Sequence[Any]], shelf: ClipShelf, limits: ClipLimits, need_labels: bool
) -> list[LabelledClip]:
    """The table's rows as labelled clips; every bad row is named (up to 10), then the count is
    checked. A blank row is skipped; without ``need_labels`` the label column is ignored."""
    out: list[LabelledClip] = []
    problems: list[str] = []
    seen: set[str] = set()
    for n, row in enumerate(rows, start=1):
        cells = [("" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)).strip() for v in row]
        cells += [""] * (4 - len(cells))
        name, label, text, speaker = cells[:4]
        if not any(cells):
            continue
        where = f"row {n} ({name})" if name else f"row {n}"
        try:
            if name not in shelf.files:
                raise ClipError(f"{where}: not a clip added on this page" if name else f"{where}: no clip")
            if name in seen:
                raise ClipError(f"{where}: this clip is labelled twice")
            if need_labels and not label:
                raise ClipError(f"{where}: no label; give a number from -3 to +3, or positive / neutral / negative")
            value = parse_label(label, where) if need_labels else math.nan
        except ClipError as e:
            problems.append(str(e))
            continue
        seen.add(name)
        out.append(LabelledClip(shelf.files[name], value, text or None, speaker or None))
    if problems:
        raise ClipError(join_problems(problems))
    check_count(
        len(out), limits, none="no clips yet: add video or audio clips (or a zip of clips with a labels CSV) first"
    )
    return out


class FeatureMemo:
    """The extractor behind an in-memory cache keyed by file content (and the words typed for it):
    the app's extractor keeps no cache on disk, and a second training on the same clips should
    not read them again. Bounded by the bytes of the features held (least recently used go)."""

    def __init__(self, extractor: FeatureExtractor, max_bytes: int = 256 * 2**20):
        self.extractor = extractor
        self.max_bytes = max_bytes
        self._kept: OrderedDict[tuple[str, str | None, str], tuple[Extraction, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self._home = self  # the memo whose store and counters a sibling shares

    @property
    def spec(self) -> Any:
        return self.extractor.spec

    def with_voice_stream(self, name: str) -> FeatureMemo:
        """This memo's store, read through an extractor of another voice stream (the one a base
        checkpoint was trained on); entries are kept apart by stream."""
        if name == self.extractor.spec.voice_stream:
            return self
        other = copy.copy(self)
        other.extractor = self.extractor.with_voice_stream(name)
        return other

    def extract(
        self,
        path: str | Path,
        transcript: str | None = None,
        sample_id: str | None = None,
        limits: MediaLimits | None = None,
        info: Any = None,
        **kw: Any,
    ) -> Extraction:
        """`FeatureExtractor.extract`, from memory when this content was read before."""
        home = self._home
        key = (sha256_file(Path(path)), transcript, self.extractor.spec.voice_stream)
        sid = sample_id or Path(path).stem
        with home._lock:
            kept = home._kept.get(key)
            if kept is not None:
                home._kept.move_to_end(key)
                home.hits += 1
        if kept is not None:
            ex = kept[0]
            return dataclasses.replace(ex, sample=dataclasses.replace(ex.sample, id=sid, meta=dict(ex.sample.meta)))
        ex = self.extractor.extract(path, transcript=transcript, sample_id=sid, limits=limits, info=info, **kw)
        s = ex.sample
        size = sum(a.nbytes for a in (s.acoustic, s.visual) if a is not None) + sum(
            sum(a.nbytes for a in (g.acoustic, g.visual) if a is not None) for g in ex.segments
        )
        with home._lock:
            if key not in home._kept:
                home._kept[key] = (ex, size)
                home._bytes += size
            while home._bytes > home.max_bytes and len(home._kept) > 1:
                _, (_, gone) = home._kept.popitem(last=False)
                home._bytes -= gone
        return ex


__all__ = [
    "TABLE_HEADERS",
    "ClipShelf",
    "FeatureMemo",
    "clips_from_table",
    "label_cell",
    "unzip_clips",
]
