"""Reproduce the paper's Table 2 (one dataset) or Table 3 (ablations) with one command.

    python scripts/reproduce_paper.py table2 --data /path/to/MOSI/Processed/unaligned_50.pkl
    python scripts/reproduce_paper.py table3 --data /path/to/MOSEI/Processed/unaligned_50.pkl

Each configuration is a `train.py` run over the seeds (default 1111-1115, as the field does);
the script prints a markdown table of mean ± std beside the paper's numbers and writes it to
RUN_DIR/table2.md or table3.md. Extra arguments after `--` go to train.py unchanged, e.g.
`-- --text-encoder bert-base-uncased --text-pooling cls` for the paper's text encoder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# docs/model-spec.md section 7. Acc-2 / F1 variant not stated by the paper.
PAPER_TABLE2 = {
    "mosi": {"corr": 0.796, "mae": 0.698, "acc7": 47.1, "acc2": 84.76, "f1": 84.61},
    "mosei": {"corr": 0.767, "mae": 0.535, "acc7": 52.9, "acc2": 86.13, "f1": 86.03},
}
PAPER_TABLE3 = {"full": (86.31, 86.03), "w/o rl": (85.09, 85.00), "w/o mf": (85.73, 85.72)}
ABLATIONS = {"full": [], "w/o rl": ["--no-rl"], "w/o mf": ["--no-mf"], "w/o rl, mf": ["--no-rl", "--no-mf"]}
COLUMNS = ("corr", "mae", "acc7", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0")


def run(name: str, data: str, run_dir: Path, seeds: str, extra: list[str]) -> dict[str, dict[str, float]]:
    cmd = [sys.executable, str(ROOT / "train.py"), "--data", data, "--seeds", seeds, "--run-dir", str(run_dir), *extra]
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True)
    return json.loads((run_dir / "summary.json").read_text())["summary"]


def cell(summary: dict[str, dict[str, float]], key: str) -> str:
    m, s = summary[key]["mean"], summary[key]["std"]
    return f"{m:.3f} ± {s:.3f}" if key in ("mae", "corr") else f"{m:.2f} ± {s:.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", choices=("table2", "table3"))
    p.add_argument("--data", required=True, help="dataset spec, e.g. an MMSA unaligned_50.pkl")
    p.add_argument(
        "--dataset", choices=("mosi", "mosei"), help="which paper row to compare with (default: guessed from the path)"
    )
    p.add_argument("--seeds", default="1111,1112,1113,1114,1115")
    p.add_argument("--run-dir", type=Path, default=Path("runs/paper"))
    argv = sys.argv[1:]
    train_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = p.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    args.train_args = train_args
    dataset = args.dataset or ("mosei" if "mosei" in args.data.lower() else "mosi")

    header = "| model | " + " | ".join(COLUMNS) + " |"
    lines = [header, "|" + " --- |" * (len(COLUMNS) + 1)]
    if args.table == "table2":
        summary = run("this implementation", args.data, args.run_dir / "table2", args.seeds, args.train_args)
        lines.append("| this implementation | " + " | ".join(cell(summary, k) for k in COLUMNS) + " |")
        paper = PAPER_TABLE2[dataset]
        row = [paper["corr"], paper["mae"], paper["acc7"], paper["acc2"], paper["f1"], paper["acc2"], paper["f1"]]
        lines.append(f"| paper ({dataset}, Acc-2 variant not stated) | " + " | ".join(str(v) for v in row) + " |")
    else:
        for name, flags in ABLATIONS.items():
            folder = args.run_dir / "table3" / name.replace("/", "").replace(", ", "_").replace(" ", "_")
            summary = run(name, args.data, folder, args.seeds, [*flags, *args.train_args])
            paper = PAPER_TABLE3.get(name)
            note = f" (paper Acc-2/F1: {paper[0]} / {paper[1]})" if paper else ""
            lines.append(f"| {name}{note} | " + " | ".join(cell(summary, k) for k in COLUMNS) + " |")
    table = "\n".join(lines)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    (args.run_dir / f"{args.table}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
