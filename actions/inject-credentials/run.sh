#!/usr/bin/env bash
# inject-credentials: `ghcache inject-credentials` as this job, in the image
# or from PATH. It reads INPUT_NAMES, INPUT_LABELS, INPUT_EXPORT_ENV and
# INPUT_ALLOW_NAMES, prints `::add-mask::` for every value before anything
# else, and writes GITHUB_ENV (or the step's outputs) itself. It reaches the
# daemon's vault over <state-dir>/vault.sock (mounted at the same path).
set -euo pipefail
# shellcheck source=actions/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
ghcache_common_inputs
[ -n "${INPUT_NAMES:-}" ] || ghcache_fail "input 'names' is empty: list the credentials this job needs"
ghcache_exec inject-credentials
