#!/usr/bin/env bash
# Create a Cloud TPU VM or pod slice (see README.md).
set -euo pipefail
# shellcheck source=tpu_setup/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEFAULT_ACCEL=v4-8

usage() {
  cat <<EOF
Usage: $HJ_PROG [FLAGS] [-- EXTRA_GCLOUD_FLAGS...]

Create a Cloud TPU VM (one host, e.g. v4-8) or a pod slice (several hosts, e.g. v4-32):
  gcloud compute tpus tpu-vm create NAME --zone=ZONE --accelerator-type=TYPE --version=VERSION

Flags:
$(hj_usage_tpu)
  --accelerator-type T   TPU type and size: v4-8, v4-32, v5litepod-8, v5p-8, v6e-8, ...
                         (default $DEFAULT_ACCEL)
  --version V            TPU software (runtime) version (default: from the type:
                         v6e-* $(runtime_for v6e-8), v5p-* $(runtime_for v5p-8),
                         v5litepod-* $(runtime_for v5litepod-8), else $(runtime_for v4-8))
  --preemptible          a preemptible TPU (cheaper; can be stopped at any time)
  --spot                 a Spot TPU (the newer kind of preemptible)
  --recreate             make sure the TPU is there and usable: create it when missing,
                         delete and create it again when PREEMPTED or TERMINATED, start it
                         when STOPPED, nothing when READY (resume.sh uses this)
$(hj_usage_common)

Anything after -- goes to gcloud as it is (e.g. -- --network=NET --reserved).

Example:
  $HJ_PROG --name hjepa --zone us-central2-b --accelerator-type v4-32 --spot --dry-run
EOF
}

# The TPU software version for an accelerator type (cloud.google.com/tpu/docs/runtimes).
runtime_for() {
  case $1 in
    v6e-*) echo v2-alpha-tpuv6e ;;
    v5p-*) echo v2-alpha-tpuv5 ;;
    v5litepod-* | v5e-*) echo v2-alpha-tpuv5-lite ;;
    *) echo tpu-ubuntu2204-base ;;
  esac
}

hj_parse "$HJ_SPEC_TPU
$HJ_SPEC_CREATE
--recreate O_RECREATE switch" "$@"
hj_tpu_init
: "${O_ACCEL:=$DEFAULT_ACCEL}"
: "${O_VERSION:=$(runtime_for "$O_ACCEL")}"
if ((O_PREEMPTIBLE && O_SPOT)); then
  hj_die "give --preemptible or --spot, not both"
fi

create=("${HJ_GCLOUD[@]}" create "$O_NAME" "${HJ_WHERE[@]}" "--accelerator-type=$O_ACCEL"
  "--version=$O_VERSION")
if ((O_PREEMPTIBLE)); then create+=(--preemptible); fi
if ((O_SPOT)); then create+=(--spot); fi
create+=(${HJ_REST[@]+"${HJ_REST[@]}"})
delete=("${HJ_GCLOUD[@]}" delete "$O_NAME" "${HJ_WHERE[@]}" --quiet)
start=("${HJ_GCLOUD[@]}" start "$O_NAME" "${HJ_WHERE[@]}")
describe=("${HJ_GCLOUD[@]}" describe "$O_NAME" "${HJ_WHERE[@]}" '--format=value(state)')

if ((!O_RECREATE)); then
  hj_run "${create[@]}"
  exit 0
fi

if ((DRY_RUN)); then
  hj_note "--recreate: the state that this prints decides what runs next"
  hj_run "${describe[@]}"
  hj_note "missing:"
  hj_run "${create[@]}"
  hj_note "PREEMPTED or TERMINATED (a preempted TPU must be deleted and created again):"
  hj_run "${delete[@]}"
  hj_run "${create[@]}"
  hj_note "STOPPED:"
  hj_run "${start[@]}"
  hj_note "READY: nothing to do"
  exit 0
fi

state=$(hj_run "${describe[@]}" 2>/dev/null) || state=''
case $state in
  '')
    hj_note "$O_NAME not found in $O_ZONE: creating it"
    hj_run "${create[@]}"
    ;;
  PREEMPTED | TERMINATED)
    hj_note "$O_NAME is $state: deleting it and creating it again"
    hj_run "${delete[@]}"
    hj_run "${create[@]}"
    ;;
  STOPPED)
    hj_note "$O_NAME is STOPPED: starting it"
    hj_run "${start[@]}"
    ;;
  READY)
    hj_note "$O_NAME is READY"
    ;;
  *)
    printf '%s: error: %s is %s; wait until it is READY (or delete it) and run again\n' \
      "$HJ_PROG" "$O_NAME" "$state" >&2
    exit 1
    ;;
esac
