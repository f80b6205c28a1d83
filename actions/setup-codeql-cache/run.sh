#!/usr/bin/env bash
# setup-codeql-cache: `ghcache codeql check` (or `save` when INPUT_SAVE_SARIF_DIR
# is set) as this job, in the image or from PATH. The command reads its
# settings from the INPUT_* variables and writes the step's outputs,
# GITHUB_ENV and the job summary itself (those files are mounted).
set -euo pipefail
# shellcheck source=actions/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
ghcache_common_inputs
if [ -n "${INPUT_SAVE_SARIF_DIR:-}" ]; then
    args=(codeql save --sarif-dir "$INPUT_SAVE_SARIF_DIR")
    [ -n "${INPUT_DURATION:-}" ] && args+=(--duration "$INPUT_DURATION")
    ghcache_exec "${args[@]}"
else
    ghcache_exec codeql check
fi
