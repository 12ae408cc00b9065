"""What a person and a program get for the shipped clips, as one JSON file: the check that a
refactoring changed no behaviour (run it before and after, then compare).

    python -m scripts.behaviour_snapshot before.json [--checkpoint DIR ...]
    python -m scripts.behaviour_snapshot after.json  [--checkpoint DIR ...]
    python -m scripts.behaviour_snapshot --compare before.json after.json

For each checkpoint (default: checkpoints/default, plus any given; a full-size untrained one
with all three streams, `msa.testing.full_size_checkpoint` saved once, makes the gate views
non-trivial) and each clip in assets/examples/: every output of the page's analysis (figures as
plotly JSON, the download's JSON), the attention view for another branch, word and head, the
what-ifs (without the voice, the face, both, with other words), the API's object, and the CLI's
output (``--json --explain``, ``--explain``, plain). Timings and run keys are left out; floats
are rounded to 5 digits.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from msa.app.handlers import OUTPUTS, Handlers
from msa.app.service import Checkpoints, build_service

ROOT = Path(__file__).resolve().parents[1]
CLIPS = sorted(p for p in (ROOT / "assets" / "examples").iterdir() if p.suffix != ".md")  # the folder's notes
VARYING = ("timings", "key", "from_cache")  # differ from run to run by nature


def _clean(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items() if k not in VARYING}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, float):
        return round(x, 5)
    return x


def _plain(v: Any) -> Any:
    """A component's value as JSON: figures by their plotly JSON, updates as dicts."""
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    if hasattr(v, "to_plotly_json"):
        return _clean(json.loads(v.to_json()))
    if isinstance(v, dict):
        return _clean({k: _plain(x) for k, x in v.items()})
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return repr(v)


def _choice(update: dict, last: bool = True) -> Any:
    choices = update["choices"]
    if not choices:
        return None
    c = choices[-1] if last else choices[0]
    return c[0] if isinstance(c, (list, tuple)) else c


def page_and_api(checkpoint: Path) -> dict[str, Any]:
    h = Handlers(Checkpoints(build_service(checkpoint, "base")))
    out: dict[str, Any] = {}
    for clip in CLIPS:
        video, audio = (str(clip), None) if clip.suffix == ".mp4" else (None, str(clip))
        values = dict(zip(OUTPUTS, h.analyse(video, audio, "", None, None, lambda *a, **k: None)))
        state = values["state"]
        rec = {k: _plain(v) for k, v in values.items() if k not in ("timings", "download", "state")}
        rec["download"] = _clean(json.loads(Path(values["download"]["value"]).read_text()))
        rec["state"] = {k: v for k, v in state.items() if k != "key"}
        view = (_choice(values["view_pick"]), _choice(values["word_pick"]), _choice(values["head_pick"]))
        rec["view"] = _plain(h.view(state, *view))
        for remove in (["remove the voice"], ["remove the face"], ["remove the voice", "remove the face"]):
            try:
                rec["what_if " + "+".join(remove)] = _plain(h.what_if(state, remove, ""))
            except Exception as e:  # "nothing would be left" is an answer too
                rec["what_if " + "+".join(remove)] = f"{type(e).__name__}: {e}"
        rec["what_if words"] = _plain(h.what_if(state, [], "this is a terrible awful movie"))
        rec["api"] = _clean(h.api_predict(str(clip), ""))
        out[clip.name] = rec
    return out


def cli(checkpoint: Path) -> dict[str, Any]:
    out = {}
    for flags in (["--json", "--explain"], ["--explain"], []):
        cmd = [sys.executable, "-m", "msa", "predict", *map(str, CLIPS), "--checkpoint", str(checkpoint), *flags]
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        text: Any = p.stdout
        if "--json" in flags:
            text = _clean(json.loads(text))
        else:
            text = "\n".join(line for line in text.splitlines() if "seconds:" not in line)
        out[" ".join(flags) or "plain"] = {"rc": p.returncode, "out": text}
    return out


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    if type(a) is not type(b):
        return [f"{path}: {type(a).__name__} != {type(b).__name__}"]
    if isinstance(a, dict):
        out = [f"{path}/{k}: only in one" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list):
        out = [f"{path}: {len(a)} != {len(b)} items"] if len(a) != len(b) else []
        for i, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [f"{path}: {str(a)[:120]!r} != {str(b)[:120]!r}"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", type=Path, help="the snapshot to write")
    ap.add_argument("--checkpoint", type=Path, action="append", default=[], help="another checkpoint folder")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = ap.parse_args(argv)
    if args.compare:
        diffs = differences(*(json.loads(p.read_text()) for p in args.compare))
        print("\n".join(diffs[:50]) or "identical")
        print(f"{len(diffs)} difference(s)")
        return 1 if diffs else 0
    if args.out is None:
        ap.error("give the snapshot file to write, or --compare BEFORE AFTER")
    snapshot = {}
    for ckpt in [ROOT / "checkpoints" / "default", *args.checkpoint]:
        snapshot[f"page/{ckpt.name}"] = page_and_api(ckpt)
        snapshot[f"cli/{ckpt.name}"] = cli(ckpt)
    args.out.write_text(json.dumps(snapshot, indent=1, sort_keys=True))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
