# shellcheck shell=bash
# Shared by the three actions' scripts (sourced, never executed). Inputs
# arrive as INPUT_* environment variables set by each action.yml step's
# `env:`, never interpolated into script text.

# The image's state directory is a host path mounted at the same path, so a
# Unix socket or a file named by one side is valid on the other.

# The released image these actions belong to (setup-github-cache's default).
GHCACHE_DEFAULT_IMAGE=ghcr.io/ghcache/ghcache:0.1.0

ghcache_fail() {
    echo "::error title=ghcache::$*"
    exit 1
}

# Resolves mode, image and state directory: the input, else what an earlier
# setup-github-cache step exported, else the default.
ghcache_common_inputs() {
    GHCACHE_MODE=${INPUT_MODE:-${GHCACHE_MODE:-docker}}
    GHCACHE_IMAGE=${INPUT_IMAGE:-${GHCACHE_IMAGE:-$GHCACHE_DEFAULT_IMAGE}}
    GHCACHE_STATE_DIR=${INPUT_STATE_DIR:-${GHCACHE_STATE_DIR:-/var/lib/ghcache}}
    case "$GHCACHE_MODE" in
        docker)
            command -v docker >/dev/null || ghcache_fail "mode 'docker' needs the docker CLI on PATH; install Docker or use mode: binary with ghcache on PATH"
            ;;
        binary)
            command -v ghcache >/dev/null || ghcache_fail "mode 'binary' needs ghcache on PATH (download a release binary, or use mode: docker)"
            ;;
        *) ghcache_fail "input 'mode' must be 'docker' or 'binary', not '$GHCACHE_MODE'" ;;
    esac
    case "$GHCACHE_STATE_DIR" in
        /*) ;;
        *) ghcache_fail "input 'state-dir' must be an absolute path, not '$GHCACHE_STATE_DIR'" ;;
    esac
    export GHCACHE_MODE GHCACHE_IMAGE GHCACHE_STATE_DIR
}

# Runs a one-shot ghcache command as this job: the ghcache on PATH, or the
# image as the job's own user with host networking, the state directory,
# the workspace, RUNNER_TEMP and the file-command files mounted at their own
# paths. Environment values travel by name (`-e NAME`), never on argv.
ghcache_exec() {
    # An action input left empty arrives as an empty INPUT_* variable; the
    # command's own default applies only when the variable is absent.
    local input
    while IFS= read -r input; do
        case "$input" in INPUT_*) [ -n "${!input}" ] || unset "$input" ;; esac
    done < <(compgen -e)
    if [ "$GHCACHE_MODE" = binary ]; then
        ghcache "$@"
        return
    fi
    local args=(run --rm --network host --user "$(id -u):$(id -g)"
        -v "$GHCACHE_STATE_DIR:$GHCACHE_STATE_DIR" -e GHCACHE_STATE_DIR)
    local dir
    for dir in "${GITHUB_WORKSPACE:-}" "${RUNNER_TEMP:-}"; do
        [ -n "$dir" ] && [ -d "$dir" ] && args+=(-v "$dir:$dir")
    done
    [ -n "${GITHUB_WORKSPACE:-}" ] && [ -d "$GITHUB_WORKSPACE" ] && args+=(-w "$GITHUB_WORKSPACE")
    # A corporate CA bundle the job points at is mounted read-only.
    [ -n "${SSL_CERT_FILE:-}" ] && [ -f "$SSL_CERT_FILE" ] && args+=(-v "$SSL_CERT_FILE:$SSL_CERT_FILE:ro")
    [ -n "${SSL_CERT_DIR:-}" ] && [ -d "$SSL_CERT_DIR" ] && args+=(-v "$SSL_CERT_DIR:$SSL_CERT_DIR:ro")
    local file
    for file in GITHUB_ENV GITHUB_OUTPUT GITHUB_STEP_SUMMARY GITHUB_PATH GITHUB_STATE; do
        [ -n "${!file:-}" ] && [ -f "${!file}" ] && args+=(-v "${!file}:${!file}")
    done
    local name
    while IFS= read -r name; do
        case "$name" in
            # A one-shot command never needs the cluster secret (the daemon reads its file).
            *CLUSTER_SECRET) ;;
            GITHUB_* | RUNNER_* | INPUT_* | GHCACHE_* | CACHE_* | CI | SSL_CERT_FILE | SSL_CERT_DIR | RUST_LOG) args+=(-e "$name") ;;
        esac
    done < <(compgen -e)
    docker "${args[@]}" "$GHCACHE_IMAGE" "$@"
}
