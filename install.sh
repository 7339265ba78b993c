#!/usr/bin/env bash
# Install harness and everything it needs into ./.venv: Debian packages for the PDF report,
# PyTorch (the CPU build on machines without an NVIDIA GPU), and the package with its test extras.
# Safe to run again: it only installs what is missing.
# --bench also installs the benchmark-only comparison packages (docs/performance.md): the `bench` extra
# (adversarial-robustness-toolbox) and torchattacks without its declared dependencies.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# torchattacks declares torchvision, which pip resolves to a CUDA build of torch that replaces the CPU one;
# its code never imports torchvision, so it is installed with --no-deps (its other needs come with the extras).
TORCHATTACKS_VERSION=3.5.1
EXTRAS="test"
BENCH=0
for arg in "$@"; do
  case "$arg" in
    --bench) BENCH=1 EXTRAS="test,bench" ;;
    -h|--help) echo "usage: ./install.sh [--bench]"; exit 0 ;;
    *) echo "install.sh: unknown option '$arg' (usage: ./install.sh [--bench])" >&2; exit 2 ;;
  esac
done

APT_PACKAGES=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core poppler-utils)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install.sh: installing Debian packages: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "install.sh: NVIDIA GPU found: installing a CUDA build of PyTorch" >&2
    "${PIP[@]}" "torch>=2.2,<3"
  else
    echo "install.sh: no NVIDIA GPU: installing the CPU build of PyTorch 2.13.0" >&2
    "${PIP[@]}" "torch==2.13.0+cpu" 2>/dev/null \
      || "${PIP[@]}" "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
  fi
fi
"${PIP[@]}" -e ".[$EXTRAS]"
if [ "$BENCH" -eq 1 ]; then
  echo "install.sh: --bench: installing torchattacks $TORCHATTACKS_VERSION without its dependencies" >&2
  "${PIP[@]}" --no-deps "torchattacks==$TORCHATTACKS_VERSION"
fi
echo "install.sh: ready (.venv/bin/harness)" >&2
