# Sourced by the other scripts: make sure .venv exists and has the locked dependencies.
# Usage: ensure_venv <extras>   (extras: "dev" for tests, "devstack" for `habitjobs dev`; dev includes devstack)
#
# The dependencies come from requirements/<extras>.lock (made by scripts/lock: every package pinned, with
# its hashes), installed by pip in hash-checking mode; then the project itself, editable, without
# dependencies. .venv/.habitjobs-installed records the hash of pyproject.toml and the lock files and the
# extras installed with it, so an unchanged environment is not handed to pip again.

_venv_lock_hash() {
  cat pyproject.toml requirements/*.lock | sha256sum | cut -d' ' -f1
}

# _venv_covers <stamp> <hash> <extra>: the stamp names this hash and an extra that includes <extra>.
_venv_covers() {
  local stamp="$1" hash="$2" extra="$3"
  set -- $stamp
  [ "${1:-}" = "$hash" ] || return 1
  shift
  local have
  for have in "$@"; do
    if [ "$have" = "$extra" ] || { [ "$have" = "dev" ] && [ "$extra" = "devstack" ]; }; then
      return 0
    fi
  done
  return 1
}

ensure_venv() {
  local extras="$1"
  local python="${PYTHON:-}"
  if [ -z "$python" ]; then
    for candidate in python3.13 python3.12 python3.11 python3; do
      if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python="$candidate"
        break
      fi
    done
  fi
  if [ -z "$python" ]; then
    echo "habitjobs needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
    exit 2
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $python"
    "$python" -m venv .venv
  fi
  local stamp_file=.venv/.habitjobs-installed hash stamp
  hash="$(_venv_lock_hash)"
  stamp="$(cat "$stamp_file" 2>/dev/null || true)"
  if _venv_covers "$stamp" "$hash" "$extras"; then
    return 0
  fi
  # Extras already recorded for this hash stay recorded; a new hash starts over.
  local recorded=""
  case "$stamp" in "$hash "*) recorded="${stamp#* }" ;; esac
  echo "installing habitjobs[$extras] with the locked versions (requirements/$extras.lock)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
    -r "requirements/$extras.lock"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  echo "$hash $recorded $extras" | tr -s ' ' > "$stamp_file"
}
