#!/usr/bin/env bash
# Install hjepa_jax into DIR/.venv on this machine (install.sh runs it on every TPU worker;
# gpu_host.sh --install runs it on a GPU host).
set -euo pipefail
# shellcheck source=tpu_setup/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEFAULT_JAX='jax[tpu]'

usage() {
  cat <<EOF
Usage: $HJ_PROG [FLAGS]

Install hjepa_jax on this machine: a virtual environment DIR/.venv, then
  DIR/.venv/bin/python -m pip install -e DIR 'JAX' gcsfs
(gcsfs lets the checkpoints go to a gs://BUCKET/PATH folder).
The package needs Python >= 3.11; when none is found (TPU VM images are Ubuntu 22.04 with
Python 3.10), python3.11 is installed with sudo apt-get.

Flags:
  --dir DIR              the hjepa_jax checkout (default: the one holding this script,
                         $HJ_REPO_ROOT)
  --python PY            the interpreter for the venv (default auto: the first of
                         python3.13, python3.12, python3.11 found, else python3.11 from apt)
  --jax SPEC             the JAX build to install (default '$DEFAULT_JAX'; 'jax[cuda12]' on
                         NVIDIA GPUs, 'jax' on CPU)
$(hj_usage_common)
EOF
}

hj_parse "--dir O_DIR
--python O_PYTHON
--jax O_JAX" "$@"
: "${O_DIR:=$HJ_REPO_ROOT}" "${O_PYTHON:=auto}" "${O_JAX:=$DEFAULT_JAX}"
if [[ -d $O_DIR ]]; then
  O_DIR=$(cd "$O_DIR" && pwd)  # absolute, so that pip reads it as a path
elif ((!DRY_RUN)); then
  hj_die "--dir $O_DIR is not a directory"
fi
venv=$O_DIR/.venv

apt_install() {
  hj_run sudo apt-get update -qq
  hj_run sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

py=$O_PYTHON
if [[ $py == auto ]]; then
  py=''
  for candidate in python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1; then py=$candidate; break; fi
  done
  if [[ -z $py ]]; then
    hj_note "no Python >= 3.11 here: installing python3.11 with apt-get"
    py=python3.11
    apt_install python3.11 python3.11-venv
  fi
fi

if ((DRY_RUN)); then
  hj_note "if the next command fails (no venv module): apt-get install ${py##*/}-venv, then again with --clear"
fi
if ! hj_run "$py" -m venv "$venv"; then
  hj_note "$py -m venv failed: installing ${py##*/}-venv with apt-get and trying again"
  apt_install "${py##*/}-venv"
  hj_run "$py" -m venv --clear "$venv"
fi
hj_run "$venv/bin/python" -m pip install -q --upgrade pip
# gcsfs: orbax reaches a gs:// --ckpt-dir through etils.epath, which needs it (or TensorFlow).
hj_run "$venv/bin/python" -m pip install -q -e "$O_DIR" "$O_JAX" gcsfs
hj_run "$venv/bin/python" -c 'import gcsfs, hjepa_jax, jax; print("hjepa_jax installed, jax", jax.__version__)'
