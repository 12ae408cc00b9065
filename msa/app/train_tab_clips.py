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
import lzma
import math
import os
import re
import shutil
import stat
import threading
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
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
# The ways a member may be packed that zipfile reads (not Deflate64, nor AES-encrypted).
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
# Damage that shows only while reading a member: a bad CRC, data cut short or garbled (bzip2 says
# so with an OSError), a local header that disagrees with the directory or is not the UTF-8 it says.
_DAMAGE = (zipfile.BadZipFile, EOFError, OSError, zlib.error, lzma.LZMAError, NotImplementedError, UnicodeDecodeError)
_NAME_BYTES, _PATH_BYTES = 255, 1024  # Linux's longest file name; a path well within its 4096


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


def _shown(name: str) -> str:
    """A member's name as a message shows it: unprintable characters escaped, at most 80 long."""
    shown = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in name) or "''"
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _member_problem(m: zipfile.ZipInfo, name: str, path: PurePosixPath, seen: set[PurePosixPath]) -> str:
    """Why member ``m`` (its name with "/" only, and as a path) cannot be unpacked; "" if it can."""
    if "\0" in m.orig_filename:  # zipfile cuts the name at the NUL: not the name its maker meant
        return "has a NUL character in its name; refused (a zip of clips holds plainly named files)"
    if not path.parts:
        return "is not a file name; refused (each file in a zip of clips has a name)"
    if name.startswith("/") or ".." in path.parts or ":" in path.parts[0]:
        return "would be unpacked outside its folder; refused (a zip of clips holds plain relative paths, without '..')"
    if stat.S_ISLNK(m.external_attr >> 16):
        return "is a link; refused (a zip of clips holds plain files)"
    if max(len(os.fsencode(part)) for part in path.parts) > _NAME_BYTES or len(os.fsencode(name)) > _PATH_BYTES:
        return (
            f"has too long a name; file and folder names up to {_NAME_BYTES} bytes (and paths up to "
            f"{_PATH_BYTES}) are taken"
        )
    if m.flag_bits & 0x41:  # bit 0: encrypted; bit 6: "strong" encryption
        return "is encrypted; zip the clips again without a password"
    if m.compress_type not in _METHODS:
        return (
            f"is packed in a way not read here (method {m.compress_type}); zip the clips again with the usual deflate"
        )
    if path in seen:
        return "is in the zip twice; refused (a zip of clips holds each file once)"
    return ""


def _check_members(
    zf: zipfile.ZipFile, zname: str, limits: ClipLimits, max_bytes: int
) -> tuple[list[tuple[zipfile.ZipInfo, PurePosixPath]], PurePosixPath]:
    """The files to unpack (folders and a Mac's extras left out), each with its path under the
    unpacked folder, and the labels CSV's path; every refusal that needs no reading of the data."""
    files: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    seen: set[PurePosixPath] = set()
    for m in zf.infolist():
        name = m.filename.replace("\\", "/")
        if name.endswith("/") or any(j in name for j in _ZIP_JUNK):
            continue
        path = PurePosixPath(name)
        why = _member_problem(m, name, path, seen)
        if why:
            raise ClipError(f"{zname}: {_shown(m.orig_filename)} {why}")
        seen.add(path)
        files.append((m, path))
    folders = {folder for path in seen for folder in path.parents}
    for m, path in files:
        if path in folders:
            raise ClipError(
                f"{zname}: {_shown(m.orig_filename)} is both a file and a folder; refused (a zip of clips "
                "names each file and folder once)"
            )
    if len(files) > limits.max_clips + 1:
        raise ClipError(
            f"{zname} holds {len(files)} files; at most {limits.max_clips} clips (and their labels CSV) "
            "are taken in one fine-tuning"
        )
    unpacked = sum(m.file_size for m, _ in files)
    if unpacked > max_bytes:
        raise ClipError(f"{zname} unpacks to {unpacked / 2**20:.0f} MB; at most {max_bytes / 2**20:.0f} MB are taken")
    tables = [(m, path) for m, path in files if path.suffix.lower() == ".csv"]
    if len(tables) != 1:
        found = "no CSV file" if not tables else f"{len(tables)} CSV files ({', '.join(str(p) for _, p in tables)})"
        raise ClipError(f"{zname} holds {found}; it needs exactly one labels CSV with the columns file,label")
    return files, tables[0][1]


def _damaged(zname: str, m: zipfile.ZipInfo) -> ClipError:
    return ClipError(
        f"{zname}: {_shown(m.orig_filename)} is damaged (its data do not unpack as the zip says they "
        "should); zip the clips again and upload the new zip"
    )


def _data(zf: zipfile.ZipFile, m: zipfile.ZipInfo, zname: str) -> Iterator[bytes]:
    """Member ``m``'s data in chunks, which must add up to the size its header states; damage that
    shows only while reading (a bad CRC, data cut short or garbled, a size that lies) is refused."""
    size = 0
    try:
        with zf.open(m) as src:
            while chunk := src.read(1 << 20):
                size += len(chunk)
                yield chunk
    except _DAMAGE:
        raise _damaged(zname, m) from None
    if size != m.file_size:
        raise _damaged(zname, m)


def _unpack(zf: zipfile.ZipFile, m: zipfile.ZipInfo, target: Path, zname: str, budget: int) -> int:
    """Member ``m`` written to ``target``; the bytes written, refused past ``budget``: counted as
    written, as a header may lie (zipfile stops at the stated size today; this does not rely on it)."""
    written = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            for chunk in _data(zf, m, zname):
                written += len(chunk)
                if written > budget:
                    raise ClipError(
                        f"{zname}: {_shown(m.orig_filename)} unpacks to more than the zip states; refused (a "
                        "zip's stated sizes must be its real ones)"
                    )
                out.write(chunk)
    except OSError as e:  # a name or a disk the server refuses: the reason, never the server's path
        raise ClipError(
            f"{zname}: {_shown(m.orig_filename)} could not be unpacked ({e.strerror or 'refused'}); "
            "a zip of clips holds plainly named files and folders"
        ) from None
    return written


def unzip_clips(archive: Path, dest: Path, limits: ClipLimits, need_labels: bool, max_bytes: int) -> list[LabelledClip]:
    """The clips a zip holds, as its labels CSV names them, unpacked under ``dest``.

    Refused before anything is written: not a zip, a member whose path leaves ``dest`` (absolute,
    with "..") or is a link, a name no file can have (a NUL, too long, none), a name twice or as a
    file and a folder, an encrypted member or one packed in a way not read here, more files than
    ``limits.max_clips`` allows (plus the CSV), more than ``max_bytes`` unpacked, no labels CSV or
    more than one. Refused while unpacking: a damaged member, or sizes that lie (the bytes written
    are counted against ``max_bytes``). Then the CSV's rows are checked as ``python -m msa
    finetune`` checks them (`read_labels`).

    ``dest`` is the caller's, as are the clips on success; they are unpacked in a new folder of
    ``dest`` named as the zip, removed again whenever the zip is refused.
    """
    zname = _clip_name(archive.name) if archive.suffix.lower() == ".zip" else "the zip"
    try:
        zf = zipfile.ZipFile(archive)
    except UnicodeDecodeError as e:  # zipfile decodes the names as it opens the zip
        raise ClipError(
            f"{zname}: {_shown(e.object.decode('utf-8', 'backslashreplace'))} has a name that is not the UTF-8 "
            "the zip says it is; zip the clips again"
        ) from None
    except NotImplementedError as e:  # a member needs a newer "zip file version" than zipfile reads
        raise ClipError(f"{zname}: written in a zip format not read here ({e}); zip the clips again") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise ClipError(
            f"{zname}: not a zip file (or a damaged one); a zip of clips holds media files and one labels CSV"
        ) from None
    root = dest / zname  # messages about a file not in the folder then name the zip
    with zf:
        files, table = _check_members(zf, zname, limits, max_bytes)
        root.mkdir(parents=True)
        try:
            written = 0
            for m, path in files:
                written += _unpack(zf, m, root / path, zname, max_bytes - written)
            return _labelled(root / table, zname, limits, need_labels)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)  # nothing half-unpacked stays
            raise


def _labelled(labels: Path, zname: str, limits: ClipLimits, need_labels: bool) -> list[LabelledClip]:
    """`read_labels` on an unpacked zip's CSV, its messages naming the zip, not the folder."""
    try:
        return read_labels(labels, labels.parent, limits, need_labels=need_labels)
    except ClipError as e:
        message = str(e).replace(str(labels.parent.resolve()), zname).replace(str(labels.parent), zname)
        if need_labels and "needs the columns file,label" in message:
            message += " (or tick \u201clabel with the text path\u201d)"
        if zname not in message:  # a row's problem: say which zip's CSV it is in
            message = f"{zname}: {message}"
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
