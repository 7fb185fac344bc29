#!/usr/bin/env bash
# Print the number of hosts of the Cloud TPU slice this VM is part of; fail where the TPU
# metadata server does not answer. A check of what jax.distributed.initialize() will find.
set -euo pipefail
# shellcheck source=tpu_setup/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The slice's workers, comma-separated, as JAX itself reads them on Cloud TPU.
# HJ_TPU_METADATA_URL replaces the address (the tests point it at a file:// URL).
URL=${HJ_TPU_METADATA_URL:-http://metadata.google.internal/computeMetadata/v1/instance/attributes/worker-network-endpoints}

usage() {
  cat <<EOF
Usage: $HJ_PROG [--dry-run]

Print the number of hosts (workers) of this Cloud TPU VM's slice: 1 on a single-host TPU VM
(v4-8, v5litepod-8, ...), 4 on a v4-32. Exits 1 with an error where the TPU metadata server
does not answer (off Cloud TPU, or a metadata outage): a guess of 1 would start every host of
a pod as an independent job.
It asks the metadata server for the slice's worker endpoints:
  $URL

Flags:
$(hj_usage_common)
EOF
}

hj_parse '' "$@"
query=(curl -sf --max-time 5 -H 'Metadata-Flavor: Google' "$URL")
if ((DRY_RUN)); then
  hj_run "${query[@]}"
  hj_note "prints the number of comma-separated endpoints, or fails"
  exit 0
fi
endpoints=$("${query[@]}" 2>/dev/null) || endpoints=''
if [[ -z $endpoints ]]; then
  printf '%s: error: the TPU metadata server gave no worker endpoints at %s (is this a Cloud TPU VM?)\n' "$HJ_PROG" "$URL" >&2
  exit 1
fi
awk -F, '{ print NF }' <<<"$endpoints"
