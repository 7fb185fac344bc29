#!/usr/bin/env bash
# Put hjepa_jax on every worker of a TPU VM / pod slice and install it (see README.md).
set -euo pipefail
# shellcheck source=tpu_setup/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEFAULT_WORKER=all
DEFAULT_DIR=hjepa_jax
DEFAULT_BRANCH=main
DEFAULT_JAX='jax[tpu]'
TARBALL_NAME=hjepa_jax-src.tar.gz

origin_url() {
  git -C "$HJ_REPO_ROOT" remote get-url origin 2>/dev/null || true
}

usage() {
  cat <<EOF
Usage: $HJ_PROG [FLAGS]

On every worker (gcloud compute tpus tpu-vm ssh NAME --worker=all --command ...):
get the code into ~/DIR, either
  git clone --branch BRANCH REPO DIR      (or fetch and check out BRANCH when DIR exists)
or, with --copy, this checkout's files (tracked and untracked, not ignored ones) sent with
  gcloud compute tpus tpu-vm scp ... --worker=all
then run DIR/tpu_setup/host_install.sh there: DIR/.venv with 'pip install -e DIR JAX'.
Running it again updates the code and the install (a clone's local edits are discarded).

Flags:
$(hj_usage_tpu)
  --worker W             which workers: all, or one index (default $DEFAULT_WORKER)
  --dir DIR              the checkout on the workers, relative to the home folder
                         (default $DEFAULT_DIR)
  --repo URL             git URL to clone (default: this checkout's 'origin' remote$(
    url=$(origin_url); if [[ -n $url ]]; then printf ',\n                         %s' "$url"; fi))
  --branch B             branch or tag to check out (default $DEFAULT_BRANCH)
  --copy                 copy this checkout instead of cloning (no git access needed on the
                         workers; includes uncommitted changes)
  --python PY            interpreter for the venv (default auto, see host_install.sh --help)
  --jax SPEC             the JAX build (default '$DEFAULT_JAX')
$(hj_usage_common)

Examples:
  $HJ_PROG --name hjepa --zone us-central2-b --repo https://github.com/ME/hjepa_jax.git
  $HJ_PROG --name hjepa --zone us-central2-b --copy --dry-run
EOF
}

hj_parse "$HJ_SPEC_TPU
$HJ_SPEC_REMOTE
$HJ_SPEC_INSTALL" "$@"
hj_tpu_init
: "${O_WORKER:=$DEFAULT_WORKER}" "${O_DIR:=$DEFAULT_DIR}" "${O_JAX:=$DEFAULT_JAX}"
: "${O_PYTHON:=auto}"
if ((O_COPY)); then
  if [[ -n $O_REPO || -n $O_BRANCH ]]; then hj_die "give --copy or --repo/--branch, not both"; fi
else
  : "${O_REPO:=$(origin_url)}" "${O_BRANCH:=$DEFAULT_BRANCH}"
  if [[ -z $O_REPO ]]; then
    hj_die "missing required flag --repo (this checkout has no 'origin' remote), or use --copy"
  fi
fi

ssh=("${HJ_GCLOUD[@]}" ssh "$O_NAME" "${HJ_WHERE[@]}" "--worker=$O_WORKER" --command)
dir=$(hj_quote "$O_DIR")
host_install="bash $dir/tpu_setup/host_install.sh $(hj_quote --dir "$O_DIR" --python "$O_PYTHON" \
  --jax "$O_JAX")"

if ((O_COPY)); then
  tarball=${TMPDIR:-/tmp}/$TARBALL_NAME
  # Not any venv at the top (.venv, .venv-*), even one that .gitignore misses.
  hj_run_shell "git -C $(hj_quote "$HJ_REPO_ROOT") ls-files -z --cached --others \
--exclude-standard -- . ':!.venv*' | tar -czf $(hj_quote "$tarball") -C $(hj_quote "$HJ_REPO_ROOT") \
--null -T -"
  hj_run "${HJ_GCLOUD[@]}" scp "$tarball" "$O_NAME:$TARBALL_NAME" "${HJ_WHERE[@]}" \
    "--worker=$O_WORKER"
  get="mkdir -p $dir && tar -xzf $TARBALL_NAME -C $dir && rm -f $TARBALL_NAME"
else
  repo=$(hj_quote "$O_REPO")
  branch=$(hj_quote "$O_BRANCH")
  get="if [ -d $dir/.git ]; then git -C $dir fetch --depth=1 $repo $branch && \
git -C $dir checkout --force -B $branch FETCH_HEAD; \
else git clone --depth=1 --branch $branch $repo $dir; fi"
fi
hj_run "${ssh[@]}" "set -euo pipefail; $get; $host_install"
if ((O_COPY)); then hj_run rm -f "$tarball"; fi
