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
On a Cloud TPU VM every process calls jax.distributed.initialize(), whose own detection finds
the slice's hosts, the coordinator and its own index from the TPU metadata (one process on a
single-host VM); a detected slice that cannot be joined stops the run with an error.

The checkpoints go to --ckpt-dir, a gs:// bucket that every host shares and that outlives the
VM. Running the same launch again (after a preemption, on a recreated TPU: see resume.sh)
resumes from the latest checkpoint there.

Flags:
$(hj_usage_tpu)
  --worker W             which workers: all, or one index (default $DEFAULT_WORKER)
  --dir DIR              the checkout on the workers, relative to the home folder
                         (default $DEFAULT_DIR)
  --experiment NAME      experiment to run (required): fig3_parabola, fig4_ellipse, all
  --ckpt-dir DIR         checkpoint folder (required), gs://BUCKET/PATH
  --out OUT              output folder on the workers, relative to DIR (default out/NAME);
                         process 0 writes metrics.json and the figures there
  --quick                the quick variant of the config
  --parallel MODE        jit or pmap (default: the experiment's, jit)
  --hosts N              set JAX_NUM_PROCESSES=N on every worker (default auto: JAX
                         detects the slice; tpu_setup/tpu_hosts.sh shows what it finds)
  --detach               start the run in the background (nohup) and return; the output
                         goes to OUT/run.log on each worker
$(hj_usage_common)

Anything after -- is passed to the experiment: -- --steps 20000 --seed 1

Example:
  $HJ_PROG --name hjepa --zone us-central2-b --experiment fig4_ellipse \\
      --ckpt-dir gs://my-bucket/hjepa/fig4 --dry-run
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
start="cd $(hj_quote "$O_DIR") && mkdir -p $out &&"
if ((O_DETACH)); then
  remote="$start { ${hosts}nohup $(hj_quote "${run[@]}") > $out/run.log 2>&1 < /dev/null & }"
else
  remote="set -o pipefail; $start ${hosts}$(hj_quote "${run[@]}") 2>&1 | tee -a $out/run.log"
fi
hj_run "${HJ_GCLOUD[@]}" ssh "$O_NAME" "${HJ_WHERE[@]}" "--worker=$O_WORKER" --command "$remote"
