# shellcheck shell=bash disable=SC2034  # (its variables are for the scripts that source it)
# Sourced by every tpu_setup script; runs nothing by itself.
#
#   hj_parse SPEC "$@"   flags from a spec (see below), --help, --dry-run, `-- ARGS` -> HJ_REST
#   hj_run CMD ARGS...   run a command, or under --dry-run print it, shell-quoted, on one line
#   hj_run_shell LINE    the same for a command line that needs a shell (a pipe, redirections)
#   hj_note TEXT         a remark: stderr when running, a `# TEXT` line under --dry-run
#   hj_tpu_init          after hj_parse: defaults of --name/--zone, and the gcloud prefix arrays
#   hj_zones_for TYPE    the zones that offer an accelerator type's family (empty: not listed)
#
# Under --dry-run the printed lines are the exact commands, in order, and nothing runs (gcloud
# need not be installed); lines starting with # are remarks, so the output is itself a script.
# Written for bash >= 3.2, so that the local side also runs from macOS's /bin/bash.

HJ_SETUP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HJ_REPO_ROOT=$(cd "$HJ_SETUP_DIR/.." && pwd)
HJ_PROG=$(basename "$0")
DRY_RUN=0
HJ_REST=()

# ---- flag specs: one line per flag, "--flag VAR" (takes a value) or "--flag VAR switch" ----
# Shared between scripts so that resume.sh can accept and forward the flags of the others.

HJ_DEFAULT_NAME=hjepa
HJ_DEFAULT_ZONE=us-central2-b  # offers v4, as create.sh's default type (v4-8); see hj_zones_for

# A detached run's files on each worker, in the home folder (launch.sh --detach, resume.sh):
# its output, the pid of its process group, and its exit status once it has ended.
HJ_RUN_LOG=hjepa_run.log
HJ_RUN_PID=hjepa_run.pid
HJ_RUN_EXIT=hjepa_run.exit

# Which TPU VM (every script that calls gcloud).
HJ_SPEC_TPU='--name O_NAME
--zone O_ZONE
--project O_PROJECT'

# How to create it (create.sh).
HJ_SPEC_CREATE='--accelerator-type O_ACCEL
--version O_VERSION
--preemptible O_PREEMPTIBLE switch
--spot O_SPOT switch
--queued O_QUEUED switch
--best-effort O_BEST_EFFORT switch'

# Where on the workers (install.sh and launch.sh).
HJ_SPEC_REMOTE='--worker O_WORKER
--dir O_DIR'

# What to install (install.sh).
HJ_SPEC_INSTALL='--repo O_REPO
--branch O_BRANCH
--copy O_COPY switch
--python O_PYTHON
--jax O_JAX'

# What to run (launch.sh; gpu_host.sh too).
HJ_SPEC_RUN='--experiment O_EXPERIMENT
--out O_OUT
--ckpt-dir O_CKPT_DIR
--quick O_QUICK switch
--parallel O_PARALLEL'

# Usage text of the shared flags.
hj_usage_tpu() {
  cat <<EOF
  --name NAME            TPU VM (or pod slice) name (default $HJ_DEFAULT_NAME)
  --zone ZONE            zone (default $HJ_DEFAULT_ZONE)
  --project PROJECT      Google Cloud project (default: gcloud's configured project)
EOF
}

hj_usage_common() {
  cat <<EOF
  --dry-run              print the commands, one per line, instead of running them
  -h, --help             this help
EOF
}

# ---- errors ----

hj_die() {
  printf '%s: error: %s\n' "$HJ_PROG" "$*" >&2
  printf "Try '%s --help'.\n" "$HJ_PROG" >&2
  exit 2
}

# hj_require VAR FLAG: exit with an error naming FLAG unless VAR is set.
hj_require() {
  if [[ -z ${!1:-} ]]; then
    hj_die "missing required flag $2"
  fi
}

# hj_check_int VAR FLAG MIN: VAR is an integer >= MIN.
hj_check_int() {
  local value=${!1}
  if [[ ! $value =~ ^[0-9]+$ ]] || ((10#$value < $3)); then
    hj_die "$2 must be an integer >= $3, got '$value'"
  fi
}

# ---- parsing ----

# hj_parse SPEC [ARGS...]: every VAR of SPEC is reset ("" or 0 for a switch), then set from
# ARGS (--flag VALUE or --flag=VALUE; a switch takes no value). -h/--help calls the script's
# `usage` and exits 0; --dry-run sets DRY_RUN=1; what follows `--` is kept in HJ_REST.
hj_parse() {
  local spec=$1 arg flag value has_value f var kind found
  shift
  while read -r f var kind; do
    if [[ -z $f ]]; then continue; fi
    if [[ $kind == switch ]]; then printf -v "$var" 0; else printf -v "$var" ''; fi
  done <<<"$spec"
  while (($# > 0)); do
    arg=$1
    shift
    case $arg in
      -h | --help) usage; exit 0 ;;
      --dry-run) DRY_RUN=1; continue ;;
      --) HJ_REST=("$@"); return 0 ;;
      --*=*) flag=${arg%%=*}; value=${arg#*=}; has_value=1 ;;
      --*) flag=$arg; value=''; has_value=0 ;;
      *) hj_die "unexpected argument '$arg' (flags start with --; put experiment flags after --)" ;;
    esac
    found=0
    while read -r f var kind; do
      if [[ -n $f && $f == "$flag" ]]; then found=1; break; fi
    done <<<"$spec"
    if ((!found)); then hj_die "unknown flag $flag"; fi
    if [[ $kind == switch ]]; then
      if ((has_value)); then hj_die "$flag takes no value"; fi
      printf -v "$var" 1
      continue
    fi
    if ((!has_value)); then
      if (($# == 0)) || [[ $1 == --* ]]; then hj_die "$flag needs a value"; fi
      value=$1
      shift
    fi
    if [[ -z $value ]]; then hj_die "$flag needs a value"; fi
    printf -v "$var" '%s' "$value"
  done
}

# hj_forward SPEC: HJ_FWD=(the flags of SPEC that are set, as they were given).
hj_forward() {
  local f var kind
  HJ_FWD=()
  while read -r f var kind; do
    if [[ -z $f ]]; then continue; fi
    if [[ $kind == switch ]]; then
      if ((${!var})); then HJ_FWD+=("$f"); fi
    elif [[ -n ${!var} ]]; then
      HJ_FWD+=("$f" "${!var}")
    fi
  done <<<"$1"
}

# ---- running, or printing under --dry-run ----

# hj_quote WORDS...: the words as one shell line (bare when safe, else in single quotes).
hj_quote() {
  local w sep='' q="'\\''"
  for w in "$@"; do
    printf '%s' "$sep"
    sep=' '
    if [[ -n $w && $w != *[!A-Za-z0-9_@%+=:,./-]* ]]; then
      printf '%s' "$w"
    else
      printf "'%s'" "${w//\'/$q}"
    fi
  done
}

hj_run() {
  if ((DRY_RUN)); then
    hj_quote "$@"
    printf '\n'
  else
    printf '+ %s\n' "$(hj_quote "$@")" >&2
    "$@"
  fi
}

hj_run_shell() {
  if ((DRY_RUN)); then
    printf '%s\n' "$1"
  else
    printf '+ %s\n' "$1" >&2
    bash -o pipefail -c "$1"
  fi
}

hj_note() {
  if ((DRY_RUN)); then
    printf '# %s\n' "$*"
  else
    printf '%s: %s\n' "$HJ_PROG" "$*" >&2
  fi
}

# ---- gcloud ----

# After hj_parse with HJ_SPEC_TPU: apply the defaults, check the name, and set
#   HJ_GCLOUD=(gcloud compute tpus tpu-vm)   HJ_WHERE=(--zone=ZONE [--project=PROJECT])
# so that a command reads: "${HJ_GCLOUD[@]}" create "$O_NAME" "${HJ_WHERE[@]}" ...
hj_tpu_init() {
  : "${O_NAME:=$HJ_DEFAULT_NAME}" "${O_ZONE:=$HJ_DEFAULT_ZONE}"
  if [[ ! $O_NAME =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]]; then
    hj_die "--name '$O_NAME': use lowercase letters, digits and hyphens, starting with a letter"
  fi
  HJ_GCLOUD=(gcloud compute tpus tpu-vm)
  HJ_WHERE=("--zone=$O_ZONE")
  if [[ -n $O_PROJECT ]]; then HJ_WHERE+=("--project=$O_PROJECT"); fi
}

# hj_zones_for TYPE: the zones whose Cloud TPU offer includes TYPE's family, as listed at
# https://cloud.google.com/tpu/docs/regions-zones (US and europe-west4; the list there is
# longer and changes); nothing for a family not listed here.
hj_zones_for() {
  case $1 in
    v4-*) echo us-central2-b ;;
    v5litepod-* | v5e-*) echo us-central1-a us-south1-a us-west1-c us-west4-a europe-west4-b ;;
    v5p-*) echo us-central1-a us-east5-a ;;
    v6e-*) echo us-central1-b us-east1-d us-east5-a us-east5-b europe-west4-a ;;
  esac
}
