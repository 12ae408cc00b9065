"""Do the tests catch equation errors? Apply each edit of `scripts/mutations.py` and run them.

    python -m scripts.mutation_check [--ids A,B] [--tests tests/test_equations.py,...] [--list]

The repository's files (tracked, and untracked ones git does not ignore, so that new tests
count before they are committed) are copied into a temporary folder; the working tree is never
touched. The unmutated copy is tested first and must pass, else the check means nothing. Then,
one mutation at a time, the edit is applied to the copy, the chosen test files run there with
``python -m pytest -q -x -p no:randomly`` (cwd and PYTHONPATH = the copy, so the copy's `msa`
is imported, not the editable install; a sanity run prints which `msa` that is), and the file
is restored. A mutation is killed when the tests fail. The table at the end gives each
mutation's fate and time; the exit status is 1 if any survived (or could not be applied or
run), 2 if the unmutated copy fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scripts.mutations import MUTATIONS, Mutation

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TESTS = (
    "tests/test_equations.py",  # first: with -x, most mutations die within seconds
    "tests/test_model.py",
    "tests/test_losses.py",
    "tests/test_training.py",
    "tests/test_metrics.py",
)


@dataclass
class Outcome:
    """What happened to one mutation: ``killed``, ``survived``, ``timeout`` (counted as killed),
    or ``error`` (the edit did not apply, or pytest could not run the tests)."""

    mutation: Mutation
    status: str
    seconds: float
    detail: str = ""


def repository_files(root: Path) -> list[str]:
    """Tracked files and untracked files git does not ignore, relative to ``root``.

    Untracked ones are included so that a new test (or a new module a test imports) is checked
    before it is committed; files deleted from the working tree are left out.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return sorted({f for f in listed.split("\0") if f and (root / f).is_file()})


def copy_files(root: Path, files: Sequence[str], dest: Path) -> None:
    """Copy ``files`` (relative to ``root``) to the same paths under ``dest``."""
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)


def run_env(copy: Path) -> dict[str, str]:
    """The environment for runs in ``copy``: its folder first on the import path, no bytecode.

    Bytecode caches are off because a mutation and its restore can leave a file with the same
    size and modification second as a cached compile of the other version. OpenMP threads wait
    passively (unless the caller says otherwise): the tests use two torch threads, and on shared
    cores spinning threads made the equation tests 3-9 times slower.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def imported_msa(copy: Path) -> Path:
    """Where ``import msa`` resolves from inside the copy, as the test runs see it."""
    done = subprocess.run(
        [sys.executable, "-c", "import msa; print(msa.__file__)"],
        cwd=copy,
        env=run_env(copy),
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(done.stdout.strip()).resolve()


def apply(copy: Path, mutation: Mutation) -> str:
    """Edit the copy's file; return its original text. ValueError unless ``old`` occurs once."""
    path = copy / mutation.file
    text = path.read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise ValueError(f"{mutation.id}: the old text occurs {count} times in {mutation.file}, not once")
    path.write_text(text.replace(mutation.old, mutation.new))
    return text


def run_tests(copy: Path, tests: Sequence[str], timeout: float) -> tuple[int | None, str]:
    """pytest on ``tests`` in ``copy``: its exit code (None on timeout) and its output."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:randomly", *tests]
    try:
        done = subprocess.run(cmd, cwd=copy, env=run_env(copy), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, out
    return done.returncode, done.stdout + done.stderr


def first_failure(output: str) -> str:
    """The test that failed first (pytest's short summary), or else the last line of output
    (for a passing run, pytest's count of tests passed)."""
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0]
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def check(copy: Path, mutation: Mutation, tests: Sequence[str], timeout: float) -> Outcome:
    """Apply one mutation to the copy, run the tests, restore the file."""
    t0 = time.perf_counter()
    try:
        original = apply(copy, mutation)
    except ValueError as e:
        return Outcome(mutation, "error", 0.0, str(e))
    try:
        code, output = run_tests(copy, tests, timeout)
    finally:
        (copy / mutation.file).write_text(original)
    seconds = time.perf_counter() - t0
    if code is None:
        return Outcome(mutation, "timeout", seconds, f"no answer in {timeout:g} s")
    if code == 0:
        return Outcome(mutation, "survived", seconds)
    if code in (1, 2):  # tests failed, or collection failed (the edit broke an import)
        return Outcome(mutation, "killed", seconds, first_failure(output))
    return Outcome(mutation, "error", seconds, f"pytest exit {code}: {first_failure(output)}")


def select(ids: str | None) -> list[Mutation]:
    """The mutations named in a comma-separated ``ids`` (all when empty), in the order given."""
    if not ids:
        return list(MUTATIONS)
    wanted = [i.strip() for i in ids.split(",") if i.strip()]
    known = {m.id: m for m in MUTATIONS}
    unknown = [i for i in wanted if i not in known]
    if unknown:
        raise SystemExit(f"unknown mutation ids: {', '.join(unknown)} (see --list)")
    return [known[i] for i in wanted]


def table(outcomes: Sequence[Outcome]) -> str:
    """One line per mutation: id, description (shortened), status, seconds, the first failure."""
    width = max(len(o.mutation.id) for o in outcomes)
    desc = min(60, max(len(o.mutation.description) for o in outcomes))
    lines = [f"{'id':<{width}}  {'description':<{desc}}  {'status':<8}  {'s':>6}  detail"]
    for o in outcomes:
        d = o.mutation.description
        d = d if len(d) <= desc else d[: desc - 1] + "…"
        lines.append(f"{o.mutation.id:<{width}}  {d:<{desc}}  {o.status:<8}  {o.seconds:6.1f}  {o.detail}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; the exit status is 0 only if every selected mutation is killed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", help="comma-separated mutation ids (default: all)")
    parser.add_argument("--tests", default=",".join(DEFAULT_TESTS), help="comma-separated test files")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per test run")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    mutations = select(args.ids)
    if args.list:
        for m in mutations:
            print(f"{m.id:<36} {m.file:<18} {m.description}")
        return 0
    tests = [t.strip() for t in args.tests.split(",") if t.strip()]
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="mutation-check-") as tmp:
        copy = Path(tmp)
        copy_files(ROOT, repository_files(ROOT), copy)
        missing = [t for t in tests if not (copy / t).is_file()]
        if missing:
            raise SystemExit(f"test files not in the copy: {', '.join(missing)}")
        where = imported_msa(copy)
        print(f"copy: {copy}\nmsa imported from: {where}", flush=True)
        if not where.is_relative_to(copy.resolve()):
            raise SystemExit("the copy's runs import another msa: the check would test the wrong code")
        stale = [m.id for m in mutations if (copy / m.file).read_text().count(m.old) != 1]
        if stale:  # before the long runs: an edit that no longer applies is a bug of the list
            raise SystemExit(f"old text not found exactly once for: {', '.join(stale)} (update scripts/mutations.py)")

        t0 = time.perf_counter()
        code, output = run_tests(copy, tests, args.timeout)
        seconds = time.perf_counter() - t0
        print(f"unmutated copy: pytest exit {code} in {seconds:.1f} s: {first_failure(output)}", flush=True)
        if code != 0:
            print(output[-3000:])
            print("the unmutated copy fails its tests: a mutation check would mean nothing")
            return 2

        outcomes = []
        for i, mutation in enumerate(mutations, 1):
            outcome = check(copy, mutation, tests, args.timeout)
            outcomes.append(outcome)
            print(f"[{i}/{len(mutations)}] {mutation.id}: {outcome.status} ({outcome.seconds:.1f} s)", flush=True)

    print()
    print(table(outcomes))
    killed = sum(o.status in ("killed", "timeout") for o in outcomes)
    print(f"\nkilled {killed} of {len(outcomes)} mutations in {time.perf_counter() - started:.0f} s")
    return 0 if killed == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
