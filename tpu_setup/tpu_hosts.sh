#!/usr/bin/env bash
# Print the number of hosts of the Cloud TPU slice this VM is part of (1 off Cloud TPU).
# launch.sh runs it on every worker to set JAX_NUM_PROCESSES.
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
(v4-8, v5litepod-8, ...), 4 on a v4-32, and 1 where the TPU metadata server does not answer.
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
  hj_note "prints the number of comma-separated endpoints, or 1 when that fails"
  exit 0
fi
endpoints=$("${query[@]}" 2>/dev/null) || endpoints=''
if [[ -z $endpoints ]]; then
  echo 1
else
  awk -F, '{ print NF }' <<<"$endpoints"
fi
