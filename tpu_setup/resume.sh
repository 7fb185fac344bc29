#!/usr/bin/env bash
# After a preemption: recreate the TPU if needed, reinstall, relaunch on the same checkpoints.
set -euo pipefail
# shellcheck source=tpu_setup/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<EOF
Usage: $HJ_PROG --experiment NAME --ckpt-dir gs://BUCKET/PATH [FLAGS] [-- EXPERIMENT_FLAGS...]

Bring a run back after a preemption (or start it: the first run is the same):
  1. create.sh --recreate   the TPU is created when missing, deleted and created again when
                            PREEMPTED, left alone when READY
  2. install.sh             the code and the venv on every worker (again: a new VM is bare)
  3. launch.sh              the same experiment command with the same --ckpt-dir, which
                            resumes from the latest checkpoint in the bucket
With --max-attempts N it goes round again when a step fails (a preemption mid-run makes the
launch fail), up to N times, --retry-wait seconds apart: unattended training on Spot TPUs.

Flags (those of create.sh, install.sh and launch.sh, passed on; see their --help):
$(hj_usage_tpu)
  create.sh:  --accelerator-type T  --version V  --preemptible  --spot
  install.sh: --repo URL  --branch B  --copy  --python PY  --jax SPEC
  launch.sh:  --experiment NAME (required)  --ckpt-dir gs://... (required)  --out OUT
              --quick  --parallel MODE  --hosts N  --detach
  both:       --worker W  --dir DIR
  --max-attempts N       rounds before giving up (default 1)
  --retry-wait S         seconds between rounds (default 60)
$(hj_usage_common)

Example:
  $HJ_PROG --name hjepa --zone us-central2-b --accelerator-type v4-32 --spot \\
      --repo https://github.com/ME/hjepa_jax.git --experiment fig4_ellipse \\
      --ckpt-dir gs://my-bucket/hjepa/fig4 --max-attempts 20 --dry-run
EOF
}

hj_parse "$HJ_SPEC_TPU
$HJ_SPEC_CREATE
$HJ_SPEC_REMOTE
$HJ_SPEC_INSTALL
$HJ_SPEC_RUN
--hosts O_HOSTS
--detach O_DETACH switch
--max-attempts O_MAX_ATTEMPTS
--retry-wait O_RETRY_WAIT" "$@"
: "${O_MAX_ATTEMPTS:=1}" "${O_RETRY_WAIT:=60}"
hj_check_int O_MAX_ATTEMPTS --max-attempts 1
hj_check_int O_RETRY_WAIT --retry-wait 0
hj_require O_EXPERIMENT --experiment
hj_require O_CKPT_DIR --ckpt-dir
if ((O_DETACH && O_MAX_ATTEMPTS > 1)); then
  hj_die "--detach returns at once, so --max-attempts cannot see the run fail: give one of them"
fi

# Each step gets the flags given here that it knows (its own defaults apply to the others).
hj_forward "$HJ_SPEC_TPU
$HJ_SPEC_CREATE"
create_flags=(${HJ_FWD[@]+"${HJ_FWD[@]}"} --recreate)
hj_forward "$HJ_SPEC_TPU
$HJ_SPEC_REMOTE
$HJ_SPEC_INSTALL"
install_flags=(${HJ_FWD[@]+"${HJ_FWD[@]}"})
hj_forward "$HJ_SPEC_TPU
$HJ_SPEC_REMOTE
$HJ_SPEC_RUN
--hosts O_HOSTS
--detach O_DETACH switch"
launch_flags=("${HJ_FWD[@]}")

# step NAME [FLAGS...]: run NAME.sh with its flags and FLAGS (the experiment's after --).
step() {
  local name=$1
  shift
  case $name in
    create) bash "$HJ_SETUP_DIR/create.sh" "${create_flags[@]}" "$@" ;;
    install) bash "$HJ_SETUP_DIR/install.sh" ${install_flags[@]+"${install_flags[@]}"} "$@" ;;
    launch)
      bash "$HJ_SETUP_DIR/launch.sh" "${launch_flags[@]}" "$@" -- ${HJ_REST[@]+"${HJ_REST[@]}"}
      ;;
  esac
}

if ((DRY_RUN)); then
  hj_note "1. the TPU"
  step create --dry-run
  hj_note "2. the code and the venv on every worker"
  step install --dry-run
  hj_note "3. the experiment, resuming from the latest checkpoint in $O_CKPT_DIR"
  step launch --dry-run
  if ((O_MAX_ATTEMPTS > 1)); then
    hj_note "a failed round runs 1-3 again after $O_RETRY_WAIT s, up to $O_MAX_ATTEMPTS rounds"
  fi
  exit 0
fi

# Every step checks its flags (a dry run: nothing runs) before anything is created.
for name in create install launch; do
  step "$name" --dry-run >/dev/null
done

attempt=1
while :; do
  hj_note "round $attempt of $O_MAX_ATTEMPTS"
  if step create && step install && step launch; then
    hj_note "done"
    exit 0
  fi
  if ((attempt >= O_MAX_ATTEMPTS)); then
    printf '%s: error: round %s of %s failed; giving up\n' "$HJ_PROG" "$attempt" \
      "$O_MAX_ATTEMPTS" >&2
    exit 1
  fi
  hj_note "round $attempt failed; trying again in $O_RETRY_WAIT s"
  sleep "$O_RETRY_WAIT"
  attempt=$((attempt + 1))
done
