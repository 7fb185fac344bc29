#!/usr/bin/env bash
# Run one experiment on every worker of a TPU VM / pod slice (see README.md).
set -euo pipefail
# shellcheck source=tpu_setup/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEFAULT_WORKER=all
DEFAULT_DIR=hjepa_jax

usage() {
  cat <<EOF
Usage: $HJ_PROG --experiment NAME --ckpt-dir gs://BUCKET/PATH [FLAGS] [-- EXPERIMENT_FLAGS...]

Run the same command on every worker (gcloud compute tpus tpu-vm ssh NAME --worker=all):
  cd DIR && .venv/bin/python -m hjepa_jax.experiments.run NAME \\
      --out OUT --ckpt-dir gs://BUCKET/PATH ... 2>&1 | tee -a OUT/run.log
(the log goes to ~/$HJ_RUN_LOG instead when OUT is a gs:// bucket). With --detach the run
starts in the background on each worker, in its own session (setsid nohup), and the script
returns at once; each worker then has
  ~/$HJ_RUN_LOG   the output (appended)    ~/$HJ_RUN_PID   the pid of its process group
  ~/$HJ_RUN_EXIT  its exit status, once it has ended (resume.sh reads it)
and a worker whose detached run is still going refuses to start another.
On a Cloud TPU VM every process calls jax.distributed.initialize(), whose own detection finds
the slice's hosts, the coordinator and its own index from the TPU metadata (one process on a
single-host VM); a detected slice that cannot be joined stops the run with an error.

The checkpoints go to --ckpt-dir, a gs:// bucket that every host shares and that outlives the
VM. Running the same launch again (after a preemption, on a recreated TPU: see resume.sh)
resumes from the latest checkpoint there. Give --out gs://... too, so that the metrics and
figures outlive the VM.

Flags:
$(hj_usage_tpu)
  --worker W             which workers: all, or one index (default $DEFAULT_WORKER)
  --dir DIR              the checkout on the workers, relative to the home folder
                         (default $DEFAULT_DIR)
  --experiment NAME      experiment to run (required), a NAME of hjepa-run --help
  --ckpt-dir DIR         checkpoint folder (required), gs://BUCKET/PATH
  --out OUT              output folder: gs://BUCKET/PATH, or a folder on the workers relative
                         to DIR (default out/NAME); process 0 writes metrics.json and the
                         figures there
  --quick                the quick variant of the config
  --parallel MODE        jit or pmap (default: the experiment's, jit)
  --hosts N              set JAX_NUM_PROCESSES=N on every worker (default auto: JAX
                         detects the slice; tpu_setup/tpu_hosts.sh shows what it finds)
  --detach               start the run in the background and return at once (see above)
$(hj_usage_common)

Anything after -- is passed to the experiment: -- --steps 20000 --seed 1

Examples:
  $HJ_PROG --name hjepa --zone us-central2-b --experiment fig4_ellipse \\
      --ckpt-dir gs://my-bucket/hjepa/fig4 --dry-run
  $HJ_PROG --name hjepa-pod --zone us-central2-b --experiment fig4_ellipse \\
      --out gs://my-bucket/runs/fig4 --ckpt-dir gs://my-bucket/ckpt/fig4 --detach --dry-run
EOF
}

hj_parse "$HJ_SPEC_TPU
$HJ_SPEC_REMOTE
$HJ_SPEC_RUN
--hosts O_HOSTS
--detach O_DETACH switch" "$@"
hj_tpu_init
hj_require O_EXPERIMENT --experiment
hj_require O_CKPT_DIR --ckpt-dir
: "${O_WORKER:=$DEFAULT_WORKER}" "${O_DIR:=$DEFAULT_DIR}" "${O_OUT:=out/$O_EXPERIMENT}"
: "${O_HOSTS:=auto}"
if [[ -n $O_PARALLEL && $O_PARALLEL != jit && $O_PARALLEL != pmap ]]; then
  hj_die "--parallel must be jit or pmap, got '$O_PARALLEL'"
fi
hosts=''  # auto: jax.distributed.initialize() detects the slice on each worker
if [[ $O_HOSTS != auto ]]; then
  hj_check_int O_HOSTS --hosts 1
  hosts="JAX_NUM_PROCESSES=$O_HOSTS "
fi
if [[ $O_CKPT_DIR != gs://* ]]; then
  printf '%s: warning: --ckpt-dir %s is not a gs:// bucket: on the VM'\''s disk it is lost with a preempted VM, and the hosts of a pod do not share it\n' \
    "$HJ_PROG" "$O_CKPT_DIR" >&2
fi

run=(.venv/bin/python -m hjepa_jax.experiments.run "$O_EXPERIMENT" --out "$O_OUT" --ckpt-dir "$O_CKPT_DIR")
if ((O_QUICK)); then run+=(--quick); fi
if [[ -n $O_PARALLEL ]]; then run+=(--parallel "$O_PARALLEL"); fi
run+=(${HJ_REST[@]+"${HJ_REST[@]}"})

out=$(hj_quote "$O_OUT")
go="cd $(hj_quote "$O_DIR") &&"
if [[ $O_OUT == gs://* ]]; then
  # shellcheck disable=SC2088  # (the tilde is for the worker's shell)
  log="~/$HJ_RUN_LOG"  # a bucket has no folders to make, nor a file to append to
else
  go="$go mkdir -p $out &&"
  log=$out/run.log
fi
ssh=("${HJ_GCLOUD[@]}" ssh "$O_NAME" "${HJ_WHERE[@]}")
if ((!O_DETACH)); then
  hj_run "${ssh[@]}" "--worker=$O_WORKER" --command \
    "set -o pipefail; $go ${hosts}$(hj_quote "${run[@]}") 2>&1 | tee -a $log"
  exit 0
fi

# Detached: the run, then its exit status into ~/$HJ_RUN_EXIT, in a session of its own
# (setsid: no hangup when ssh leaves, and its pid is its process group's), its output appended
# to ~/$HJ_RUN_LOG. A worker whose last detached run is still alive (no exit status yet)
# refuses.
job="$go ${hosts}$(hj_quote "${run[@]}"); echo \$? > ~/$HJ_RUN_EXIT"
pid="\$(cat $HJ_RUN_PID)"
remote="cd && if [ ! -f $HJ_RUN_EXIT ] && [ -f $HJ_RUN_PID ] && kill -0 $pid 2>/dev/null; then \
echo \"\$(hostname): a run is going already (pid $pid, log ~/$HJ_RUN_LOG): stop it first\" >&2; \
exit 1; fi; rm -f $HJ_RUN_EXIT; \
setsid nohup bash -c $(hj_quote "$job") >> $HJ_RUN_LOG 2>&1 < /dev/null & \
echo \$! > $HJ_RUN_PID; echo \"\$(hostname): started pid \$!, log ~/$HJ_RUN_LOG\""
hj_run "${ssh[@]}" "--worker=$O_WORKER" --command "$remote"
worker=0
if [[ $O_WORKER != all ]]; then worker=$O_WORKER; fi
hj_note "started in the background; follow the log (process 0 logs the progress) with"
hj_note "  $(hj_quote "${ssh[@]}" "--worker=$worker" --command "tail -f ~/$HJ_RUN_LOG")"
hj_note "stop it on every worker with (a SIGTERM, as at a preemption: a run that checks for it saves and exits)"
hj_note "  $(hj_quote "${ssh[@]}" --worker=all --command "kill -TERM -- -\$(cat ~/$HJ_RUN_PID)")"
