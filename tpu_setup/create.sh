#!/usr/bin/env bash
# Create a Cloud TPU VM or pod slice, directly or as a queued resource (see README.md).
set -euo pipefail
# shellcheck source=tpu_setup/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEFAULT_ACCEL=v4-8

usage() {
  cat <<EOF
Usage: $HJ_PROG [FLAGS] [-- EXTRA_GCLOUD_FLAGS...]

Create a Cloud TPU VM (one host, e.g. v4-8) or a pod slice (several hosts, e.g. v4-32):
  gcloud compute tpus tpu-vm create NAME --zone=ZONE --accelerator-type=TYPE --version=VERSION
or, with --queued, request it as a queued resource (also named NAME) that Cloud TPU fills
when the capacity is there, which is how large and Spot slices are usually obtained:
  gcloud compute tpus queued-resources create NAME --node-id=NAME --zone=ZONE \\
      --accelerator-type=TYPE --runtime-version=VERSION [--spot | --best-effort]
The TPU VM NAME exists once the request is ACTIVE; resume.sh waits for that, or watch
  gcloud compute tpus queued-resources describe NAME --zone=ZONE

Flags:
$(hj_usage_tpu)
                         (the zones of each type: README.md; the default zone has v4 only)
  --accelerator-type T   TPU type and size: v4-8, v4-32, v5litepod-8, v5p-8, v6e-8, ...
                         (default $DEFAULT_ACCEL)
  --version V            TPU software (runtime) version (default: from the type:
                         v6e-* $(runtime_for v6e-8), v5p-* $(runtime_for v5p-8),
                         v5litepod-* $(runtime_for v5litepod-8), else $(runtime_for v4-8))
  --preemptible          a preemptible TPU (cheaper; can be stopped at any time; not with
                         --queued)
  --spot                 a Spot TPU (the newer kind of preemptible)
  --queued               create it through a queued resource (see above)
  --best-effort          with --queued: the best-effort tier (gcloud alpha: the GA command
                         has no such flag)
  --recreate             make sure the TPU is there and usable: create it when missing,
                         delete and create it again when PREEMPTED or TERMINATED, start it
                         when STOPPED, nothing when READY (resume.sh uses this). With
                         --queued: a request still queued is left to wait, a FAILED or
                         SUSPENDED one is deleted and made again
$(hj_usage_common)

Anything after -- goes to gcloud as it is (e.g. -- --network=NET --reserved).

Examples:
  $HJ_PROG --name hjepa --zone us-central2-b --accelerator-type v4-32 --spot --dry-run
  $HJ_PROG --name hjepa-pod --zone us-central2-b --accelerator-type v4-32 --queued --spot --dry-run
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
zone_given=${O_ZONE:+1}
hj_tpu_init
: "${O_ACCEL:=$DEFAULT_ACCEL}"
: "${O_VERSION:=$(runtime_for "$O_ACCEL")}"
if ((O_PREEMPTIBLE && O_SPOT)); then
  hj_die "give --preemptible or --spot, not both"
fi
if ((O_BEST_EFFORT && !O_QUEUED)); then
  hj_die "--best-effort is a tier of queued resources: give it with --queued"
fi
if ((O_QUEUED && O_PREEMPTIBLE)); then
  hj_die "--queued takes --spot or --best-effort, not --preemptible"
fi
if ((O_SPOT && O_BEST_EFFORT)); then
  hj_die "give --spot or --best-effort, not both"
fi
zones=$(hj_zones_for "$O_ACCEL")
if [[ -z $zone_given && -n $zones && " $zones " != *" $O_ZONE "* ]]; then
  hj_die "--accelerator-type $O_ACCEL is not offered in the default zone $O_ZONE: give --zone, e.g. one of: $zones (and the same --zone to install.sh, launch.sh and resume.sh)"
fi

if ((O_QUEUED)); then
  qr=(gcloud compute tpus queued-resources)
  if ((O_BEST_EFFORT)); then qr=(gcloud alpha compute tpus queued-resources); fi
  create=("${qr[@]}" create "$O_NAME" "--node-id=$O_NAME" "${HJ_WHERE[@]}"
    "--accelerator-type=$O_ACCEL" "--runtime-version=$O_VERSION")
  if ((O_BEST_EFFORT)); then create+=(--best-effort); fi
  # --force: the TPU VM of the request goes too (needed unless it is already gone).
  delete=("${qr[@]}" delete "$O_NAME" "${HJ_WHERE[@]}" --force --quiet)
  qdescribe=("${qr[@]}" describe "$O_NAME" "${HJ_WHERE[@]}" '--format=value(state.state)')
  queued_note="the TPU VM $O_NAME exists once the queued resource is ACTIVE: $(hj_quote \
    "${qr[@]}" describe "$O_NAME" "${HJ_WHERE[@]}")"
else
  create=("${HJ_GCLOUD[@]}" create "$O_NAME" "${HJ_WHERE[@]}" "--accelerator-type=$O_ACCEL"
    "--version=$O_VERSION")
  if ((O_PREEMPTIBLE)); then create+=(--preemptible); fi
  delete=("${HJ_GCLOUD[@]}" delete "$O_NAME" "${HJ_WHERE[@]}" --quiet)
fi
if ((O_SPOT)); then create+=(--spot); fi
create+=(${HJ_REST[@]+"${HJ_REST[@]}"})
start=("${HJ_GCLOUD[@]}" start "$O_NAME" "${HJ_WHERE[@]}")
describe=("${HJ_GCLOUD[@]}" describe "$O_NAME" "${HJ_WHERE[@]}" '--format=value(state)')

if ((!O_RECREATE)); then
  hj_run "${create[@]}"
  if ((O_QUEUED)); then hj_note "$queued_note"; fi
  exit 0
fi

if ((DRY_RUN)); then
  hj_note "--recreate: the state that this prints decides what runs next"
  hj_run "${describe[@]}"
  if ((O_QUEUED)); then
    hj_note "missing: the queued resource's state decides"
    hj_run "${qdescribe[@]}"
    hj_note "no queued resource:"
    hj_run "${create[@]}"
    hj_note "queued resource FAILED or SUSPENDED:"
    hj_run "${delete[@]}"
    hj_run "${create[@]}"
    hj_note "queued resource WAITING_FOR_RESOURCES, ACCEPTED, CREATING, PROVISIONING, ACTIVE: wait"
    hj_note "PREEMPTED or TERMINATED (the queued resource and its TPU VM are made again):"
  else
    hj_note "missing:"
    hj_run "${create[@]}"
    hj_note "PREEMPTED or TERMINATED (a preempted TPU must be deleted and created again):"
  fi
  hj_run "${delete[@]}"
  hj_run "${create[@]}"
  hj_note "STOPPED:"
  hj_run "${start[@]}"
  hj_note "READY: nothing to do"
  exit 0
fi

# $1: a state that needs the TPU made again.
recreate() {
  hj_note "$O_NAME is $1: deleting it and creating it again"
  hj_run "${delete[@]}"
  hj_run "${create[@]}"
  if ((O_QUEUED)); then hj_note "$queued_note"; fi
}

state=$(hj_run "${describe[@]}" 2>/dev/null) || state=''
if [[ -z $state ]] && ((O_QUEUED)); then
  qstate=$(hj_run "${qdescribe[@]}" 2>/dev/null) || qstate=''
  case $qstate in
    '')
      hj_note "no queued resource $O_NAME in $O_ZONE: requesting it"
      hj_run "${create[@]}"
      hj_note "$queued_note"
      ;;
    FAILED | SUSPENDED) recreate "a queued resource in state $qstate" ;;
    WAITING_FOR_RESOURCES | ACCEPTED | CREATING | PROVISIONING | ACTIVE)
      hj_note "the queued resource $O_NAME is $qstate: its TPU VM is not there yet"
      ;;
    *)
      printf '%s: error: the queued resource %s is %s; wait and run again\n' \
        "$HJ_PROG" "$O_NAME" "$qstate" >&2
      exit 1
      ;;
  esac
  exit 0
fi
case $state in
  '')
    hj_note "$O_NAME not found in $O_ZONE: creating it"
    hj_run "${create[@]}"
    ;;
  PREEMPTED | TERMINATED) recreate "$state" ;;
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
