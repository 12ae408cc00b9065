"""A folder of labelled videos as training data, through the app's own feature extractor, so
that a checkpoint trained on it is served the same features (``train.py --videos``)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from ..data.loaders import DataError, load_label_csv
from ..data.sources import Splits
from ..sample import SPLITS
from .extractor import FeatureExtractor, extract_many
from .spec import DEFAULT_VOICE_STREAM, FeatureNormalizer, FeatureSpec

log = logging.getLogger(__name__)

# Media the extractor reads; a label id matches the file <id>.<ext> with any of them.
MEDIA_SUFFIXES = (".mp4", ".webm", ".mov", ".avi", ".mkv", ".flv", ".wav", ".mp3", ".m4a", ".flac")


def media_files(folder: Path) -> dict[str, Path]:
    """Media files of ``folder`` by stem; the first suffix in `MEDIA_SUFFIXES` wins a tie."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of media files")

    def order(f: Path) -> tuple[str, int]:
        suffix = f.suffix.lower()
        return f.stem, MEDIA_SUFFIXES.index(suffix) if suffix in MEDIA_SUFFIXES else len(MEDIA_SUFFIXES)

    found: dict[str, Path] = {}
    for f in sorted(folder.iterdir(), key=order):
        if f.is_file() and f.suffix.lower() in MEDIA_SUFFIXES:
            found.setdefault(f.stem, f)
    return found


def load_videos(
    videos: Path,
    labels: Path,
    cache_dir: Path,
    asr_model: str = "base",
    workers: int = 1,
    limit: int = 0,
    progress: bool = True,
    engine: str = "local",
    address: str | None = None,
    voice_stream: str = DEFAULT_VOICE_STREAM,
) -> tuple[Splits, FeatureSpec, FeatureNormalizer]:
    """Extract features for every labelled file of ``videos``, normalised with train statistics.

    Parameters
    ----------
    videos : a folder of media files named ``<id>.<ext>`` after the label CSV's ids.
    labels : a transcript label CSV (`msa.data.load_label_csv`); its gold transcripts replace the ASR.
    cache_dir : the feature cache (by file content and feature spec).
    asr_model, workers, limit, progress : extractor settings, processes, samples per split, a bar.
    engine, address : where the extraction runs (`msa.parallel`: worker processes here, or a Ray
        cluster); the features land in ``cache_dir`` and are read from it here.
    voice_stream : what the acoustic branch will read (`msa.features.spec.VOICE_STREAMS`).

    Returns
    -------
    The splits, the extractor's spec and the normaliser fit on the train split: stored in the
    checkpoint, they make a model trained on them usable by the app. Files missing from the
    folder or failing extraction are skipped with a warning that lists them.

    Raises
    ------
    DataError
        When no labelled file can be used at all.
    """
    labelled = load_label_csv(labels)
    if limit:
        labelled = {k: v[:limit] for k, v in labelled.items()}
    files = media_files(videos)
    rows = [s for split in labelled.values() for s in split]
    missing = [s.id for s in rows if s.id not in files]
    rows = [s for s in rows if s.id in files]
    if missing:
        log.warning(
            "%d of %d labelled ids have no media file in %s, skipped: %s%s",
            len(missing),
            len(missing) + len(rows),
            videos,
            ", ".join(missing[:20]),
            " ..." if len(missing) > 20 else "",
        )
    if not rows:
        raise DataError(
            f"no file in {videos} matches an id of {labels} "
            f"(expected <id>.<ext>, e.g. {next(iter(missing), 'VIDEO_CLIP')}.mp4)"
        )

    extractor = FeatureExtractor({"asr_model": asr_model, "voice_stream": voice_stream}, cache_dir)
    results = extract_many(
        [files[s.id] for s in rows],
        extractor,
        workers=workers,
        transcripts=[s.text for s in rows],
        sample_ids=[s.id for s in rows],
        on_error="return",
        progress=progress,
        engine=engine,
        address=address,
    )
    data: Splits = {split: [] for split in SPLITS}
    failed = []
    for row, r in zip(rows, results):
        if isinstance(r, Exception):
            failed.append(f"{row.id} ({r})")
            continue
        data[row.meta["split"]].append(
            dataclasses.replace(r.sample, label=row.label, meta={**r.sample.meta, **row.meta})
        )
    if failed:
        log.warning("%d file(s) failed extraction, skipped: %s", len(failed), "; ".join(failed[:20]))
    if not any(data.values()):
        raise DataError(f"no file in {videos} could be extracted")

    # Statistics from the train split only: valid/test must not leak into training.
    spec = extractor.spec
    normalizer = FeatureNormalizer.fit(data["train"], spec.acoustic_dim, spec.visual_dim)
    data = {k: [normalizer(s) for s in v] for k, v in data.items()}
    return data, spec, normalizer


__all__ = ["MEDIA_SUFFIXES", "load_videos", "media_files"]
