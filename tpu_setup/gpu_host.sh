#!/usr/bin/env bash
# Install and run an experiment on one machine with several NVIDIA GPUs (see README.md).
set -euo pipefail
# shellcheck source=tpu_setup/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEFAULT_JAX='jax[cuda12]'
DEFAULT_PORT=12355

usage() {
  cat <<EOF
Usage: $HJ_PROG [--install] [--experiment NAME [FLAGS]] [-- EXPERIMENT_FLAGS...]

On this machine (run it there; no gcloud):
  --install              DIR/.venv with 'pip install -e DIR JAX' (tpu_setup/host_install.sh)
  --experiment NAME      then run it. With --processes 1 (the default) one process uses every
                         GPU (jit with the batch sharded over them):
                           .venv/bin/python -m hjepa_jax.experiments.run NAME --out OUT ...
                         With --processes N, N processes, one per GPU, that form one JAX job:
                           CUDA_VISIBLE_DEVICES=I .venv/bin/python -m hjepa_jax.experiments.run NAME ...
                             --coordinator 127.0.0.1:PORT --num-processes N --process-id I
                         each writing OUT/process-I.log; the script waits for all of them.

Flags:
  --dir DIR              the hjepa_jax checkout (default: the one holding this script,
                         $HJ_REPO_ROOT)
  --python PY            interpreter for the venv (default auto, see host_install.sh --help)
  --jax SPEC             the JAX build to install (default '$DEFAULT_JAX')
  --out OUT              output folder, relative to DIR (default out/NAME)
  --ckpt-dir DIR         checkpoint folder (a local path or gs://...); a rerun with the same
                         folder resumes from its latest checkpoint
  --quick                the quick variant of the config
  --parallel MODE        jit or pmap (default: the experiment's, jit)
  --processes N          processes, one GPU each (default 1: one process, all GPUs)
  --port PORT            coordinator port of process 0 when N > 1 (default $DEFAULT_PORT)
$(hj_usage_common)

Anything after -- is passed to the experiment: -- --steps 20000 --seed 1

Examples:
  $HJ_PROG --install --experiment fig4_ellipse --ckpt-dir ckpt/fig4 --dry-run
  $HJ_PROG --experiment fig4_ellipse --processes 8 --ckpt-dir ckpt/fig4 --dry-run
EOF
}

hj_parse "--dir O_DIR
--install O_INSTALL switch
--python O_PYTHON
--jax O_JAX
$HJ_SPEC_RUN
--processes O_PROCESSES
--port O_PORT" "$@"
: "${O_DIR:=$HJ_REPO_ROOT}" "${O_PYTHON:=auto}" "${O_JAX:=$DEFAULT_JAX}"
: "${O_PROCESSES:=1}" "${O_PORT:=$DEFAULT_PORT}"
if ((!O_INSTALL)) && [[ -z $O_EXPERIMENT ]]; then
  hj_die "nothing to do: give --install, --experiment NAME, or both"
fi
hj_check_int O_PROCESSES --processes 1
hj_check_int O_PORT --port 1
if [[ -n $O_PARALLEL && $O_PARALLEL != jit && $O_PARALLEL != pmap ]]; then
  hj_die "--parallel must be jit or pmap, got '$O_PARALLEL'"
fi

if ((O_INSTALL)); then
  install=(bash "$HJ_SETUP_DIR/host_install.sh" --dir "$O_DIR" --python "$O_PYTHON" --jax "$O_JAX")
  if ((DRY_RUN)); then "${install[@]}" --dry-run; else "${install[@]}"; fi
fi
if [[ -z $O_EXPERIMENT ]]; then exit 0; fi

: "${O_OUT:=out/$O_EXPERIMENT}"
run=(.venv/bin/python -m hjepa_jax.experiments.run "$O_EXPERIMENT" --out "$O_OUT")
if [[ -n $O_CKPT_DIR ]]; then run+=(--ckpt-dir "$O_CKPT_DIR"); fi
if ((O_QUICK)); then run+=(--quick); fi
if [[ -n $O_PARALLEL ]]; then run+=(--parallel "$O_PARALLEL"); fi
run+=(${HJ_REST[@]+"${HJ_REST[@]}"})

hj_run cd "$O_DIR"
if ((O_PROCESSES == 1)); then
  hj_run "${run[@]}"
  exit 0
fi

hj_run mkdir -p "$O_OUT"
pids=()
stop() {
  if ((${#pids[@]})); then kill "${pids[@]}" 2>/dev/null || true; fi
}
trap 'stop; exit 130' INT TERM
for ((i = 0; i < O_PROCESSES; i++)); do
  cmd=(env "CUDA_VISIBLE_DEVICES=$i" "${run[@]}" --coordinator "127.0.0.1:$O_PORT"
    --num-processes "$O_PROCESSES" --process-id "$i")
  log=$O_OUT/process-$i.log
  if ((DRY_RUN)); then
    printf '%s > %s 2>&1 &\n' "$(hj_quote "${cmd[@]}")" "$(hj_quote "$log")"
  else
    printf '+ %s > %s 2>&1 &\n' "$(hj_quote "${cmd[@]}")" "$(hj_quote "$log")" >&2
    "${cmd[@]}" >"$log" 2>&1 &
    pids+=($!)
  fi
done
if ((DRY_RUN)); then
  echo wait
  exit 0
fi
# The first process to fail stops the others (they would wait for it for ever).
failed=0
for ((i = 0; i < O_PROCESSES; i++)); do
  status=0
  wait -n || status=$?
  if ((status == 0)); then continue; fi
  hj_note "a process exited with status $status: stopping the others"
  failed=1
  stop
  break
done
wait || true
trap - INT TERM
case $O_OUT in
  /*) hj_note "logs: $O_OUT/process-*.log" ;;
  *) hj_note "logs: $PWD/$O_OUT/process-*.log" ;;
esac
if ((failed)); then
  for ((i = 0; i < O_PROCESSES; i++)); do
    log=$O_OUT/process-$i.log
    if [[ -f $log ]]; then
      printf '==> %s <==\n' "$log" >&2
      tail -n 5 "$log" >&2
    fi
  done
fi
exit "$failed"
