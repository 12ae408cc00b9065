"""The batch commands: ``python -m msa predict INPUTS --out TABLE`` and ``python -m msa extract
INPUTS --out STORE``, on this machine's processes or on a Ray cluster (`msa.parallel`).

    python -m msa predict clips/ --out results.csv                      # worker processes here
    python -m msa predict manifest.csv --out results.parquet --engine ray --address ray://head:10001
    python -m msa extract /data/MOSEI/Raw --out /data/mosei-features --engine ray
    python train.py --videos /data/MOSEI/Raw --labels labels.csv --cache-dir /data/mosei-features

A run that stops (killed, a lost cluster) is resumed by running it again: rows done without an
error are skipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..commands import asr_model_argument, subcommand
from ..features.spec import DEFAULT_VOICE_STREAM, VOICE_STREAMS
from ..parallel import add_engine_arguments, map_items

if TYPE_CHECKING:
    from .table import ResultTable

INDEX_FILE = "index.csv"  # a feature store's index: each clip's status and why


def _run(args: argparse.Namespace, work: Any, table: ResultTable, items: list[dict[str, Any]], what: str) -> int:
    todo = [item for item in items if not table.done(item["file"])]
    skipped = len(items) - len(todo)
    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    say(f"{len(todo)} to {what}" + (f", {skipped} done in an earlier run" if skipped else "") + f" ({args.engine})")
    t0, failed = time.perf_counter(), 0
    try:
        for n, row in enumerate(
            map_items(work, todo, args.engine, args.workers, args.address, args.cpus_per_worker), start=1
        ):
            table.add(row)
            failed += bool(row.get("error"))
            say(f"[{n}/{len(todo)}] {row['file']}: " + (f"error: {row['error']}" if row.get("error") else "done"))
    finally:
        table.close()
    out = table.write([item["file"] for item in items])
    seconds = time.perf_counter() - t0
    rate = f", {len(todo) / seconds * 60:.1f} files a minute" if todo else ""
    print(f"{out}: {len(items) - failed} of {len(items)} done, {failed} failed, {seconds:.1f} s{rate}")
    return 1 if failed else 0


def predict_to_table(args: argparse.Namespace) -> int:
    """``predict --out``: every input scored into the table."""
    from .inputs import expand_inputs
    from .table import ResultTable
    from .work import SCORE_COLUMNS, ScoreWork

    items = expand_inputs(args.inputs)
    if args.transcript is not None:
        items = [{**item, "transcript": args.transcript} for item in items]
    columns = SCORE_COLUMNS + (["explanation"] if args.explain else [])
    table = ResultTable(args.out, columns)
    work = ScoreWork(
        str(args.checkpoint),
        args.asr_model,
        str(args.cache_dir) if args.cache_dir else None,
        args.explain,
    )
    return _run(args, work, table, items, "score")


def extract_to_store(args: argparse.Namespace) -> int:
    """``extract``: every input's features into the store (the feature cache `train.py --videos
    --cache-dir STORE` reads), with ``index.csv`` saying each clip's status."""
    from ..features.extractor import ExtractWork, FeatureExtractor
    from .inputs import expand_inputs
    from .table import ResultTable
    from .work import EXTRACT_COLUMNS

    items = expand_inputs(args.inputs)
    store = Path(args.out)
    settings = {"voice_stream": args.voice_stream, **({} if args.asr_model is None else {"asr_model": args.asr_model})}
    spec = FeatureExtractor(settings).spec
    table = ResultTable(store / INDEX_FILE, EXTRACT_COLUMNS)
    return _run(args, ExtractWork(spec.to_dict(), str(store)), table, items, "extract")


def add_extract_parser(sub: Any) -> None:
    what = "extract the features of many files into a store that train.py --videos --cache-dir reads"
    p = subcommand(sub, "extract", what, __doc__)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="media files, folders of them, or a manifest .csv")
    p.add_argument("--out", type=Path, required=True, metavar="STORE", help="the feature store (a folder)")
    asr_model_argument(p)
    p.add_argument(
        "--voice-stream",
        choices=tuple(VOICE_STREAMS),
        default=DEFAULT_VOICE_STREAM,
        help=f"the acoustic stream stored (default {DEFAULT_VOICE_STREAM}; train.py --videos --voice-stream reads it)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_engine_arguments(p)
    p.set_defaults(func=extract_to_store)


__all__ = ["INDEX_FILE", "add_extract_parser", "extract_to_store", "predict_to_table"]
