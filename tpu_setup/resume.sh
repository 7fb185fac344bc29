#!/usr/bin/env bash
# Keep a run going on Spot / preemptible TPUs: create the TPU, install, launch detached, watch,
# and after each preemption do it again with the same checkpoints, until the run is done.
set -euo pipefail
# shellcheck source=tpu_setup/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEFAULT_MAX_RETRIES=10
DEFAULT_POLL_WAIT=120

usage() {
  cat <<EOF
Usage: $HJ_PROG --experiment NAME --out gs://... --ckpt-dir gs://... [FLAGS] [-- EXPERIMENT_FLAGS...]

Start a run and keep it going through preemptions, until it is done. Every --poll-wait
seconds it reads the TPU's state (gcloud compute tpus tpu-vm describe NAME
--format='value(state)') and acts on it:
  missing                   create.sh --recreate: create it (the first start)
  PREEMPTED, TERMINATED,    create.sh --recreate: delete it and create it again (start it
  STOPPED                   when STOPPED); one retry of --max-retries
  READY                     read the run's state on worker 0 (~/$HJ_RUN_EXIT, ~/$HJ_RUN_PID
                            that launch.sh --detach leaves):
                              not started  install.sh, then launch.sh --detach: the same
                                           command, so the run resumes from the latest
                                           checkpoint in --ckpt-dir
                              running      wait
                              exit 0       done: exit 0
                              stopped      (a run started here, on a READY TPU) look once
                                           more in case the TPU is being preempted, then
                                           exit 1 pointing to the log
  anything else (CREATING, ...) wait
With --queued a missing TPU is looked up as a queued resource: WAITING_FOR_RESOURCES,
PROVISIONING, ... wait; FAILED or SUSPENDED are requested again (one retry).
A failed create, install or launch uses one retry too. It exits 1 with the reason when the
retries are used up, and at once when a gcloud describe fails for another reason than
NOT_FOUND (no credentials, no network: it could not tell the state).
Recreating a TPU wipes its disk, so --out and --ckpt-dir must be gs:// buckets.

Flags (those of create.sh, install.sh and launch.sh are passed on; see their --help):
$(hj_usage_tpu)
  create.sh:  --accelerator-type T  --version V  --preemptible  --spot  --queued
              --best-effort
  install.sh: --repo URL  --branch B  --copy  --python PY  --jax SPEC
  launch.sh:  --experiment NAME  --out gs://...  --ckpt-dir gs://... (all three required)
              --quick  --parallel MODE  --hosts N   (the launch is always --detach)
  both:       --worker W  --dir DIR
  --max-retries N        how many times a lost TPU (or a failed step) is tried again before
                         giving up with exit status 1 (default $DEFAULT_MAX_RETRIES)
  --poll-wait S          seconds between two looks (default $DEFAULT_POLL_WAIT)
  --once                 do what the state needs now (create, launch), then exit 0 instead
                         of waiting: for a cron job or a manual step
$(hj_usage_common)

Example (run it where it can stay up, e.g. in tmux or with nohup):
  $HJ_PROG --name hjepa-pod --zone us-central2-b --accelerator-type v4-32 --spot \\
      --copy --experiment fig4_ellipse --out gs://my-bucket/runs/fig4 \\
      --ckpt-dir gs://my-bucket/ckpt/fig4 --max-retries 20 --dry-run
EOF
}

hj_parse "$HJ_SPEC_TPU
$HJ_SPEC_CREATE
$HJ_SPEC_REMOTE
$HJ_SPEC_INSTALL
$HJ_SPEC_RUN
--hosts O_HOSTS
--max-retries O_MAX_RETRIES
--poll-wait O_POLL_WAIT
--once O_ONCE switch" "$@"
: "${O_MAX_RETRIES:=$DEFAULT_MAX_RETRIES}" "${O_POLL_WAIT:=$DEFAULT_POLL_WAIT}"
hj_check_int O_MAX_RETRIES --max-retries 0
hj_check_int O_POLL_WAIT --poll-wait 0
hj_require O_EXPERIMENT --experiment
hj_require O_CKPT_DIR --ckpt-dir
hj_require O_OUT --out
for pair in "--ckpt-dir $O_CKPT_DIR" "--out $O_OUT"; do
  if [[ ${pair#* } != gs://* ]]; then
    hj_die "$pair: give a gs:// bucket: a preempted TPU is deleted and created again, which wipes its disk"
  fi
done

# Each step gets the flags given here that it knows (its own defaults apply to the others);
# before hj_tpu_init, which fills in the default name and zone.
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
--hosts O_HOSTS"
launch_flags=("${HJ_FWD[@]}" --detach)
hj_tpu_init

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

worker=0  # the worker whose run is watched: process 0's, unless the launch is on one worker
if [[ -n $O_WORKER && $O_WORKER != all ]]; then worker=$O_WORKER; fi
describe=("${HJ_GCLOUD[@]}" describe "$O_NAME" "${HJ_WHERE[@]}" '--format=value(state)')
qr=(gcloud compute tpus queued-resources)
if ((O_BEST_EFFORT)); then qr=(gcloud alpha compute tpus queued-resources); fi
qdescribe=("${qr[@]}" describe "$O_NAME" "${HJ_WHERE[@]}" '--format=value(state.state)')
ssh=("${HJ_GCLOUD[@]}" ssh "$O_NAME" "${HJ_WHERE[@]}" "--worker=$worker")
probe=("${ssh[@]}" --command "cd && if [ -f $HJ_RUN_EXIT ]; then echo \"exit \$(cat $HJ_RUN_EXIT)\"; \
elif [ -f $HJ_RUN_PID ] && kill -0 \$(cat $HJ_RUN_PID) 2>/dev/null; then echo running; \
else echo none; fi")
log_cmd=$(hj_quote "${ssh[@]}" --command "tail -n 50 ~/$HJ_RUN_LOG")

if ((DRY_RUN)); then
  hj_note "every $O_POLL_WAIT s until the run is done, at most $O_MAX_RETRIES retries:"
  hj_note "1. the TPU's state"
  hj_run "${describe[@]}"
  if ((O_QUEUED)); then
    hj_note "no TPU: the queued resource's state (FAILED or SUSPENDED: requested again; else wait)"
    hj_run "${qdescribe[@]}"
  fi
  hj_note "2. missing, PREEMPTED, TERMINATED or STOPPED:"
  step create --dry-run
  hj_note "3. READY: the run's state on worker $worker: running, exit STATUS or none"
  hj_run "${probe[@]}"
  hj_note "4. none (not started on this VM): the code, then the run, resuming from $O_CKPT_DIR"
  step install --dry-run
  step launch --dry-run
  hj_note "exit 0: done. running: wait. A run started here that stopped on a READY TPU: error"
  exit 0
fi

# Every step checks its flags (a dry run: nothing runs) before anything is created.
for name in create install launch; do
  step "$name" --dry-run >/dev/null
done

fatal() {
  printf '%s: error: %s\n' "$HJ_PROG" "$*" >&2
  exit 1
}
say() {
  hj_note "$(date '+%Y-%m-%d %H:%M:%S') $*"
}
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT

# query VAR CMD...: VAR=the state CMD prints, MISSING when gcloud answers NOT_FOUND (or
# nothing); any other failure of CMD ends the script: without the state it cannot go on.
query() {
  local var=$1 out
  shift
  if out=$("$@" 2>"$errors"); then
    out=$(printf '%s\n' "$out" | tail -n 1 | tr -d '[:space:]')
    printf -v "$var" '%s' "${out:-MISSING}"
  elif grep -q NOT_FOUND "$errors"; then
    printf -v "$var" MISSING
  else
    fatal "$(hj_quote "$@") failed: $(tail -n 3 "$errors")"
  fi
}

# run_state: prints running, none or 'exit N' as read on the worker; fails when ssh does.
run_state() {
  local out
  out=$("${probe[@]}" 2>"$errors") || return 1
  printf '%s\n' "$out" | grep -E '^(running|none|exit [0-9]+)$' | tail -n 1
}

state='' qstate='' retries=0
began=0     # this script has created or launched something
launched=0  # a run is known to have been started on the current VM
strikes=0   # consecutive looks at a READY TPU whose run stopped or could not be read

use_retry() {
  retries=$((retries + 1))
  if ((retries > O_MAX_RETRIES)); then
    fatal "$1; the $O_MAX_RETRIES retries of --max-retries are used up: giving up"
  fi
  say "$1: retry $retries of $O_MAX_RETRIES"
}

wait_a_poll() {
  if ((O_ONCE)); then
    say "$1 (--once: not waiting)"
    exit 0
  fi
  say "$1; next look in $O_POLL_WAIT s"
  sleep "$O_POLL_WAIT"
}

# after_failure WHAT: with --once, exit 1; else wait for the next look (which tries again).
after_failure() {
  if ((O_ONCE)); then fatal "$1"; fi
  wait_a_poll "$1"
}

# bring_up WHY COUNTS: create.sh --recreate; COUNTS=1 uses a retry. Returns 1 if it failed.
bring_up() {
  if (($2)); then use_retry "$1"; else say "$1"; fi
  began=1 launched=0 strikes=0
  if ! step create; then
    after_failure "creating $O_NAME failed"
    return 1
  fi
}

while :; do
  query state "${describe[@]}"
  if [[ $state == MISSING ]] && ((O_QUEUED)); then
    query qstate "${qdescribe[@]}"
    case $qstate in
      MISSING) bring_up "no TPU $O_NAME and no queued resource: requesting it" "$began" || true ;;
      FAILED | SUSPENDED) bring_up "the queued resource $O_NAME is $qstate" 1 || true ;;
      *) wait_a_poll "the queued resource $O_NAME is $qstate" ;;
    esac
    continue
  fi
  case $state in
    MISSING)
      bring_up "no TPU $O_NAME in $O_ZONE: creating it" "$began" || true
      continue
      ;;
    PREEMPTED | TERMINATED | STOPPED)
      bring_up "$O_NAME is $state" 1 || true
      continue
      ;;
    READY) ;;
    *)
      wait_a_poll "$O_NAME is $state"
      continue
      ;;
  esac

  if ! run=$(run_state) || [[ -z $run ]]; then
    strikes=$((strikes + 1))
    if ((strikes >= 2)); then
      fatal "could not read the run's state on worker $worker of $O_NAME, which is READY: $(tail -n 3 "$errors")"
    fi
    after_failure "could not read the run's state on worker $worker of $O_NAME"
    continue
  fi
  case $run in
    running)
      strikes=0
      if ((!launched)); then say "a run started earlier is going on $O_NAME: watching it"; fi
      launched=1
      wait_a_poll "the run is going on $O_NAME"
      ;;
    'exit 0')
      say "the run is done (exit status 0 on worker $worker); its log: $log_cmd"
      exit 0
      ;;
    *)
      if ((!launched)); then
        say "$O_NAME is READY and runs nothing ($run): installing and launching"
        began=1
        if step install && step launch; then
          launched=1 strikes=0
          wait_a_poll "the run is going on $O_NAME"
        else
          use_retry "installing or launching on $O_NAME failed"
          after_failure "installing or launching on $O_NAME failed"
        fi
        continue
      fi
      strikes=$((strikes + 1))
      if ((strikes >= 2)); then
        fatal "the run stopped ($run) while $O_NAME stays READY; its log: $log_cmd"
      fi
      wait_a_poll "the run stopped ($run) while $O_NAME is READY: looking again, in case it is being preempted"
      ;;
  esac
done
