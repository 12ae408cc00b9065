"""Clips per minute on this machine: batch scoring on local worker processes against a local Ray
(one actor on 2 CPUs: one CPU stays with Ray's own tasks), Ray's start-up apart; and the
per-clip extraction cost that a plan for a MOSEI-size corpus multiplies.

The clips are the three shipped MOSI clips, copied ``--copies`` times (distinct bytes, so no
cache helps). Every engine runs the same work (`msa.batch.work.ScoreWork` with the default
checkpoint, Whisper base), so the rows are the same; only the wall clock differs.

    python -m bench.bench_scale [--copies 4] [--engines local1,local2,ray]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from msa.batch.work import ScoreWork
from msa.features.extractor import ExtractWork, FeatureExtractor
from msa.features.media import ffmpeg_command
from msa.parallel import connect_ray, map_items
from msa.testing import ROOT

CLIPS = sorted((ROOT / "assets" / "examples").glob("mosi_*"))
CHECKPOINT = ROOT / "checkpoints" / "default"
MOSEI_HOURS = 65.0  # CMU-MOSEI's raw videos, segmented


def copies(folder: Path, n: int) -> list[Path]:
    """``n`` copies of each clip with distinct bytes (a comment differs), same media."""
    out = []
    for k in range(n):
        for clip in CLIPS:
            dst = folder / f"{clip.stem}_{k}{clip.suffix}"
            cmd = ffmpeg_command("-y", "-i", str(clip), "-c", "copy", "-metadata", f"comment=copy {k}", str(dst))
            subprocess.run(cmd, check=True)
            out.append(dst)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copies", type=int, default=4, help="copies of each shipped clip")
    ap.add_argument("--engines", default="local1,local2,ray", help="which runs, comma-separated")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        files = copies(tmp, args.copies)
        items = [{"file": str(f), "transcript": None, "id": f.stem} for f in files]
        media = sum(FeatureExtractor().extract(f, transcript="x").duration for f in CLIPS) * args.copies
        print(f"{len(items)} clips, {media:.0f} s of media; the default checkpoint, Whisper base\n")
        print(f"{'engine':<24} {'start-up':>9} {'wall':>8} {'clips/min':>10}  errors")
        for engine in args.engines.split(","):
            name, workers = ("ray", 1) if engine == "ray" else ("local", int(engine.removeprefix("local")))
            t0 = time.perf_counter()
            startup = 0.0
            if name == "ray":
                connect_ray(None)
                startup = time.perf_counter() - t0
            rows = list(map_items(ScoreWork(str(CHECKPOINT)), items, name, workers))
            wall = time.perf_counter() - t0
            errors = sum(bool(r.get("error")) for r in rows)
            label = "ray (1 actor, 2 CPUs)" if name == "ray" else f"local, {workers} worker(s)"
            print(f"{label:<24} {startup:>8.1f}s {wall:>7.1f}s {len(rows) / wall * 60:>10.1f}  {errors}")

        # The extraction a training corpus needs (train.py --videos, python -m msa extract).
        fx = FeatureExtractor()
        work = ExtractWork(fx.spec.to_dict(), str(tmp / "store"))
        t0 = time.perf_counter()
        rows = list(map_items(work, items, "local", 1))
        wall = time.perf_counter() - t0
        warm = rows[1:]  # the first row also paid the models' loading
        per_second = sum(float(r["seconds"]) for r in warm) / sum(float(r["duration"]) for r in warm)
        print(
            f"\nextraction, 1 local worker: {wall:.1f} s for {media:.0f} s of media (models loading included); "
            f"warm, {per_second:.3f} s a media second"
        )
        hours = MOSEI_HOURS * 3600 * per_second / 3600
        print(f"CMU-MOSEI ({MOSEI_HOURS:g} h): {hours:.1f} worker-hours; e.g. {hours / 16:.1f} h on 16 workers")
        shutil.rmtree(tmp / "store", ignore_errors=True)


if __name__ == "__main__":
    main()
