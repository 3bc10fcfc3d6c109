# Sourced by the other scripts: make sure .venv exists and has exactly the locked dependencies.
# Usage: ensure_venv <extras>   (extras: "dev" for tests, "devstack" for `habitjobs dev`)

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
  local stamp
  stamp="$extras $(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
  if [ "$(cat .venv/.habitjobs-installed 2>/dev/null)" != "$stamp" ]; then
    echo "installing habitjobs[$extras] with the locked versions (constraints.txt)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[$extras]"
    echo "$stamp" > .venv/.habitjobs-installed
  fi
}
