"""Speech recognition alone, per decoding policy, on the hard-case corpus (`bench.asr_corpus`).

For each clip of the corpus (looped speech, distinct speech, a long silence, music, noise, a
5-minute talk) and for the three real MOSI clips, it times Whisper (the extractor's model,
base int8 by default) under each decoding policy, and measures what came out: words, word error
rate against the reference transcript, and invented words: every word out of the music and
noise clips, and on speech the words inserted beyond the reference (the JSON also counts the
words timed inside the long silence). The MOSI clips' error rate is pooled as total edits /
total reference words. The 5-minute talk against the 30 s of distinct speech checks that time
and memory grow no faster than the audio. Policies run interleaved clip by clip, so
that load from other processes falls on all of them alike; a clip's time is the fastest of
``--repeats`` runs, in wall-clock and in CPU seconds (this process's, all threads: on a shared
machine the steadier measure of the work done).

    python -m bench.bench_asr [--json out.json] [--policies before,after] [--repeats 2]

``before`` is the decoding the app used until this benchmark (sequential, beam 5, temperature
fallback 0.0-1.0); ``after`` is `msa.features.asr.transcribe` as it is now. ``--policies all``
adds the variants the choice was made from.

Results (Whisper base int8, 2 cores shared with another job, so CPU seconds, the steadier
measure there; ``--repeats 3``). CPU seconds, words out, WER, invented words (+n):

| clip (audio)          | before                     | after (chosen)        | after / before |
|-----------------------|----------------------------|-----------------------|----------------|
| looped 30 s           | 17.9 s, 60 w, 0.188        | 2.8 s, 60 w, 0.188    | 0.15           |
| distinct 30 s         | 2.8 s, 67 w, 0.043         | 2.6 s, 67 w, 0.058    | 0.94           |
| long silence 31 s     | 10.1 s, 22 w, 0.238, +2    | 1.7 s, 20 w, 0.095    | 0.16           |
| music 20 s            | 1.1 s, 0 w                 | 0.04 s, 0 w           | 0.04           |
| noise 20 s            | 10.4 s, 0 w                | 0.04 s, 0 w           | 0.00           |
| talk 5 min            | 31.0 s, 680 w, 0.084       | 23.6 s, 678 w, 0.080  | 0.76           |
| MOSI x3 (13 s)        | 3.9 s, 29 w, 0.100 pooled  | 3.8 s, 29 w, 0.100    | 0.98           |
| all 9 clips           | 77.1 s, 0.093 pooled, +2   | 34.5 s, 0.087, +0     | 0.45           |

The 5-minute talk takes 9.1x the CPU time of the 30 s of distinct speech for 9.9x the audio
(before: 11.2x); memory grows by 354 MB during its call against 80 MB on 30 s (before: 240 and
101 MB): up to `BATCH_SIZE` windows are decoded at once, so it stops growing once a batch is full
(by construction; not measured past 5 minutes).

The variants (``--policies all``, ``--repeats 2``; CPU load changed during the 5-minute column,
so its seconds are left out). Wall-clock seconds, words, WER, invented:

| policy     | looped | distinct      | long silence        | noise (music)   | talk: words, WER | MOSI  | all speech |
|------------|--------|---------------|---------------------|-----------------|------------------|-------|------------|
| before     | 17.7 s | 2.3 s, 0.043  | 8.1 s, 0.238, +2    | 9.3 s (0.7 s)   | 680, 0.084       | 0.100 | 0.093, +2  |
| seq_t0     | 3.2 s  | 2.2 s, 0.043  | 11.1 s, 6.52, +134  | 9.2 s, 179 w    | 680, 0.084       | 0.100 | 0.242, +134|
| seq_t0_0.4 | 6.0 s  | 2.3 s, 0.043  | 6.8 s, 0.238, +2    | 11.9 s, 179 w   | 680, 0.084       | 0.100 | 0.093, +2  |
| seq_vad    | 17.2 s | 2.4 s, 0.043  | 1.3 s, 0.333        | 0.04 s          | 680, 0.084       | 0.100 | 0.095      |
| seq_vad_t0 | 3.3 s  | 2.3 s, 0.043  | 1.4 s, 0.333        | 0.04 s          | 680, 0.084       | 0.100 | 0.095      |
| after      | 2.5 s  | 2.1 s, 0.058  | 1.2 s, 0.095        | 0.04 s          | 678, 0.080       | 0.100 | 0.087      |
| batch1, 8  | 2.3 s  | 2.1 s, 0.058  | 1.2 s, 0.095        | 0.04 s          | 678, 0.080       | 0.100 | 0.087      |
| beam1      | 1.6 s  | 1.4 s, 0.043  | 0.9 s, 0.429        | 0.04 s          | 676, 0.091, +2   | 0.133 | 0.104, +2  |
| vad160ms   | 2.2 s  | 2.1 s, 0.058  | 1.2 s, 0.143        | 0.04 s          | 680, 0.090, +2   | 0.100 | 0.096, +2  |
| timestamps | 2.6 s  | 2.4 s, 0.043  | 1.3 s, 0.333        | 0.04 s          | 632, 0.155, +2   | 0.100 | 0.153, +2  |

No policy but seq_t0 and seq_t0_0.4 says a word on music or noise. So: temperature 0 alone
removes the loop cost but invents 179 words on noise and a 134-word loop after the speech in the
long silence; the sequential decoder with the VAD drops the speech after the silence; greedy
decoding loses words on MOSI; faster-whisper's batched VAD default (160 ms minimum silence) and
decoding with timestamp tokens cost words on the long clips. Batch size changes no word (each
window is padded to 30 s): on the talk, three alternating rounds took 27-29 CPU s at batch 1,
24-25.5 at 2, 23.9-24.7 at 4 and 23.9-25.7 at 8, with ~95, ~150, ~300 and ~670 MB of growth; 4
is as fast as 8 for less than half the memory.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.asr_corpus import CLIPS, REAL, CorpusClip, build_corpus, gold_transcripts
from msa.features import FeatureExtractor, asr, decode_audio, normalize_words, word_error_rate
from msa.features.asr import PAUSE_SPLIT, split_segments
from msa.features.spec import SAMPLE_RATE, FeatureSpec
from msa.sample import TimedWord

Segments = list[tuple[str, float, float]]
Words = list[TimedWord]
Policy = Callable[[Any, np.ndarray, FeatureSpec], tuple[Segments, Words]]


def _split_before(segments: Any) -> tuple[Segments, Words]:
    """The segmentation that went with the sequential decoding (`transcribe` before this
    benchmark): Whisper's segments, split where two words are `PAUSE_SPLIT` apart."""
    segs: Segments = []
    words: Words = []
    for seg in segments:
        current: Words = []
        for w in seg.words or []:
            word = TimedWord(w.word.strip(), float(w.start), float(w.end))
            if not word.word:
                continue
            if current and word.start - current[-1].end >= PAUSE_SPLIT:
                segs.append((" ".join(x.word for x in current), current[0].start, current[-1].end))
                current = []
            current.append(word)
            words.append(word)
        if current:
            segs.append((" ".join(x.word for x in current), current[0].start, current[-1].end))
        elif seg.text.strip():
            segs.append((seg.text.strip(), float(seg.start), float(seg.end)))
    return segs, words


def _sequential(**kwargs: Any) -> Policy:
    def run(model: Any, audio: np.ndarray, spec: FeatureSpec) -> tuple[Segments, Words]:
        options = {
            "language": spec.language,
            "beam_size": spec.asr_beam_size,
            "word_timestamps": True,
            "condition_on_previous_text": False,
            **kwargs,
        }
        segments, _ = model.transcribe(audio, **options)
        return _split_before(segments)

    return run


def _after_but(**changes: Any) -> Policy:
    """`transcribe` (the chosen policy) with some of the batched pipeline's arguments changed."""

    def run(model: Any, audio: np.ndarray, spec: FeatureSpec) -> tuple[Segments, Words]:
        from faster_whisper import BatchedInferencePipeline

        options = {**asr.decoding_options(spec), **changes}
        segments, _ = BatchedInferencePipeline(model).transcribe(audio, **options)
        return split_segments(s for s in segments if not asr._no_speech(s))

    return run


def _after(model: Any, audio: np.ndarray, spec: FeatureSpec) -> tuple[Segments, Words]:
    return asr.transcribe(model, audio, spec)


POLICIES: dict[str, Policy] = {
    "before": _sequential(),
    "after": _after,
}
# What the choice was made from: the sequential decoder without the fallback, with a bounded
# one, with the VAD; the batched pipeline with another batch size, greedy, with faster-whisper's
# own batched VAD setting (160 ms minimum silence), with timestamp tokens.
VARIANTS: dict[str, Policy] = {
    "seq_t0": _sequential(temperature=0.0),
    "seq_t0_0.4": _sequential(temperature=(0.0, 0.4)),
    "seq_vad": _sequential(vad_filter=True),
    "seq_vad_t0": _sequential(vad_filter=True, temperature=0.0),
    "batch1": _after_but(batch_size=1),
    "batch8": _after_but(batch_size=8),
    "beam1": _after_but(beam_size=1),
    "vad160ms": _after_but(vad_parameters={"min_silence_duration_ms": 160}),
    "timestamps": _after_but(without_timestamps=False),
}


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 10 ms from
    /proc; the process-wide maximum from getrusage cannot tell one call from an earlier one)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def now() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.start = self.peak = self.now()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def edits(reference: str, hypothesis: str) -> tuple[int, int]:
    """(all word-level edits, insertions) from ``reference`` to ``hypothesis``, on
    `normalize_words` as `word_error_rate` counts them. Insertions are words said by nobody: on
    a speech clip, the hallucinated words."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    # d[i][j] = (edits, insertions) from ref[:i] to hyp[:j]; ties keep fewer insertions.
    d = [[(j, j) for j in range(len(hyp) + 1)]]
    for i, r in enumerate(ref, 1):
        row = [(i, 0)]
        for j, h in enumerate(hyp, 1):
            sub, dele, ins = d[i - 1][j - 1], d[i - 1][j], row[j - 1]
            row.append(min((sub[0] + (r != h), sub[1]), (dele[0] + 1, dele[1]), (ins[0] + 1, ins[1] + 1)))
        d.append(row)
    return d[len(ref)][len(hyp)]


def measure(
    policies: dict[str, Policy], fx: FeatureExtractor, clip: CorpusClip, audio: np.ndarray, repeats: int
) -> dict[str, dict[str, Any]]:
    """Each policy on one clip, interleaved: seconds (fastest run), words, errors, peak RSS."""
    out: dict[str, dict[str, Any]] = {}
    for _ in range(repeats):
        for name, policy in policies.items():
            with PeakRSS() as mem:
                t0, c0 = time.perf_counter(), time.process_time()
                segs, words = policy(fx.asr, audio, fx.spec)
                seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            row = out.setdefault(name, {"seconds": [], "cpu_seconds": [], "rss_peak_mb": 0.0})
            row["seconds"].append(seconds)
            row["cpu_seconds"].append(cpu)
            row["rss_peak_mb"] = max(row["rss_peak_mb"], mem.peak / 2**20)
            row["rss_growth_mb"] = max(row.get("rss_growth_mb", 0.0), (mem.peak - mem.start) / 2**20)
            text = " ".join(s[0] for s in segs)
            n_ref = len(normalize_words(clip.reference))
            row.update(words=len(normalize_words(text)), text=text, segments=segs)
            if clip.speech:
                n_edits, inserted = edits(clip.reference, text)
                row.update(
                    edits=n_edits, ref_words=n_ref, wer=word_error_rate(clip.reference, text), hallucinated=inserted
                )
            else:
                row["hallucinated"] = row["words"]
            if clip.silence is not None:
                # Half a second of slack each side: a real word's timing may spill into it.
                a, b = clip.silence[0] + 0.5, clip.silence[1] - 0.5
                row["in_silence"] = sum(1 for w in words if a < (w.start + w.end) / 2 < b)
    for row in out.values():
        row["runs"], row["cpu_runs"] = row["seconds"], row["cpu_seconds"]
        row["seconds"], row["cpu_seconds"] = min(row["seconds"]), min(row["cpu_seconds"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=None, help="write all numbers here")
    ap.add_argument("--policies", default="before,after", help="comma-separated names, or 'all'")
    ap.add_argument("--clips", default="all", help="comma-separated corpus clip names (and 'mosi'), or 'all'")
    ap.add_argument("--repeats", type=int, default=2, help="runs per clip and policy; the fastest counts")
    ap.add_argument("--asr-model", choices=("base", "tiny.en"), default="base")
    ap.add_argument("--corpus-dir", type=Path, default=None, help="default: $MSA_CACHE_DIR/asr-corpus")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]  # progress when piped to a file

    every = {**POLICIES, **VARIANTS}
    names = list(every) if args.policies == "all" else args.policies.split(",")
    unknown = [n for n in names if n not in every]
    if unknown:
        raise SystemExit(f"unknown policies {unknown}; choose from {list(every)}")
    policies = {n: every[n] for n in names}

    corpus = build_corpus(args.corpus_dir)
    gold = gold_transcripts()
    mosi = {n: CorpusClip(n, CLIPS / n, 0.0, gold[n], True) for n in REAL}
    wanted = set(corpus) | {"mosi"} if args.clips == "all" else set(args.clips.split(","))

    fx = FeatureExtractor({"asr_model": args.asr_model})
    t0 = time.perf_counter()
    # One-off costs (loading Whisper, the VAD model, first-call allocations) are not the clips'.
    warm = (0.01 * np.random.default_rng(0).standard_normal(SAMPLE_RATE)).astype(np.float32)
    for policy in policies.values():
        policy(fx.asr, warm, fx.spec)
    load = time.perf_counter() - t0
    print(f"Whisper {args.asr_model} {fx.spec.asr_compute_type}, {os.cpu_count()} cores; load + warm-up {load:.1f} s")

    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name, clip in corpus.items():
        if name not in wanted:
            continue
        audio = decode_audio(clip.path)
        results[name] = measure(policies, fx, clip, audio, args.repeats)
        _print_clip(name, clip.seconds, results[name], list(policies))
    if "mosi" in wanted:
        pooled: dict[str, dict[str, Any]] = {}
        for n, clip in mosi.items():
            audio = decode_audio(clip.path)
            res = measure(policies, fx, clip, audio, args.repeats)
            results[n] = res
            for p, row in res.items():
                acc = pooled.setdefault(
                    p, {"seconds": 0.0, "cpu_seconds": 0.0, "edits": 0, "ref_words": 0, "words": 0, "hallucinated": 0}
                )
                for k in acc:
                    acc[k] += row[k]
        for row in pooled.values():
            row["wer"] = row["edits"] / row["ref_words"]
        results["mosi_pooled"] = pooled
        _print_clip(
            "mosi (3 clips)",
            sum(len(decode_audio(c.path)) for c in mosi.values()) / SAMPLE_RATE,
            pooled,
            list(policies),
        )

    # Every clip together: the time of the whole corpus, and the error rate pooled over all speech.
    clips = [n for n in results if n != "mosi_pooled"]
    total: dict[str, dict[str, Any]] = {}
    for p in policies:
        rows = [results[n][p] for n in clips]
        speech = [r for r in rows if "ref_words" in r]
        total[p] = {
            "seconds": sum(r["seconds"] for r in rows),
            "cpu_seconds": sum(r["cpu_seconds"] for r in rows),
            "words": sum(r["words"] for r in rows),
            "hallucinated": sum(r["hallucinated"] for r in rows),
        }
        if speech:
            total[p]["wer"] = sum(r["edits"] for r in speech) / sum(r["ref_words"] for r in speech)
    results["all"] = total
    _print_clip(f"all {len(clips)} clips (WER pooled over their speech)", 0.0, total, list(policies))

    if "talk_5min" in results and "distinct_30s" in results:
        print("\nlength check (5-minute talk vs 30 s of distinct speech):")
        for p in policies:
            long, short = results["talk_5min"][p], results["distinct_30s"][p]
            ratio_len = corpus["talk_5min"].seconds / corpus["distinct_30s"].seconds
            print(
                f"  {p:12s} {long['seconds']:5.1f} s vs {short['seconds']:4.1f} s "
                f"({long['seconds'] / short['seconds']:.1f}x), CPU {long['cpu_seconds']:5.1f} s vs "
                f"{short['cpu_seconds']:4.1f} s ({long['cpu_seconds'] / short['cpu_seconds']:.1f}x) "
                f"for {ratio_len:.1f}x the audio; "
                f"peak RSS {long['rss_peak_mb']:.0f} MB vs {short['rss_peak_mb']:.0f} MB "
                f"(growth during the call {long['rss_growth_mb']:.0f} vs {short['rss_growth_mb']:.0f} MB)"
            )
    if "talk_5min" in results:
        # Segments are the utterances the app scores one by one: their size should not change.
        print("\nsegments of the 5-minute talk (ends within 0.5 s of the first policy's):")
        first = [e for _, _, e in results["talk_5min"][names[0]]["segments"][:-1]]
        for p in policies:
            segs = results["talk_5min"][p]["segments"]
            ends = [e for _, _, e in segs[:-1]]
            same = sum(1 for e in ends if any(abs(e - f) < 0.5 for f in first))
            seconds = sorted(e - s for _, s, e in segs)
            longest = max(len(t.split()) for t, _, _ in segs)
            print(
                f"  {p:12s} {len(segs)} segments, median {seconds[len(seconds) // 2]:.1f} s, "
                f"at most {longest} words; {same} of {len(ends)} ends"
            )
    if args.json:
        meta = {
            "asr_model": args.asr_model,
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "policies": names,
            "corpus": {n: {"path": str(c.path), "seconds": c.seconds} for n, c in corpus.items()},
        }
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
        print(f"wrote {args.json}")


def _print_clip(name: str, seconds: float, res: dict[str, dict[str, Any]], policies: list[str]) -> None:
    base = res[policies[0]]
    print(f"\n{name} ({seconds:.1f} s of audio)" if seconds else f"\n{name}")
    head = ("seconds", "ratio", "CPU s", "ratio", "words", "WER", "invented")
    print(f"  {'policy':12s} " + " ".join(f"{h:>{w}s}" for h, w in zip(head, (8, 6, 7, 6, 6, 6, 8), strict=True)))
    for p in policies:
        row = res[p]
        wer = f"{row['wer']:.3f}" if "wer" in row else "-"
        hall = str(row["hallucinated"]) if "hallucinated" in row else "-"
        ratio = row["seconds"] / base["seconds"]
        cpu_ratio = row["cpu_seconds"] / base["cpu_seconds"]
        print(
            f"  {p:12s} {row['seconds']:8.2f} {ratio:6.2f} {row['cpu_seconds']:7.2f} {cpu_ratio:6.2f} "
            f"{row['words']:6d} {wer:>6s} {hall:>8s}"
        )


if __name__ == "__main__":
    main()
