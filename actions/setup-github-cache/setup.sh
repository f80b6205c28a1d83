#!/usr/bin/env bash
# setup-github-cache: make sure this host's daemon runs (start it, reuse it,
# or replace it when its image changed), wait until it answers, and point
# the job at it. Inputs: INPUT_* (see action.yml).
set -euo pipefail
# shellcheck source=actions/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
ghcache_common_inputs

name=${INPUT_CONTAINER_NAME:-ghcache-daemon}
port=${INPUT_PORT:-8787}
p2p=${INPUT_P2P:-true}
p2p_port=${INPUT_P2P_PORT:-9100}
timeout=${INPUT_READY_TIMEOUT:-60}
[[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || ghcache_fail "input 'port' must be a TCP port (1-65535), not '$port'"
[[ "$p2p_port" =~ ^[0-9]+$ ]] && [ "$p2p_port" -ge 1 ] && [ "$p2p_port" -le 65535 ] || ghcache_fail "input 'p2p-port' must be a TCP port (1-65535), not '$p2p_port'"
[[ "$timeout" =~ ^[0-9]+$ ]] && [ "$timeout" -ge 1 ] || ghcache_fail "input 'ready-timeout' must be a whole number of seconds, not '$timeout'"
case "$p2p" in true | false) ;; *) ghcache_fail "input 'p2p' must be 'true' or 'false', not '$p2p'" ;; esac
[[ "$name" =~ ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ ]] || ghcache_fail "input 'container-name' is not a valid container name: '$name'"

proxy_addr="127.0.0.1:$port"
proxy_url="http://$proxy_addr"
state=$GHCACHE_STATE_DIR

if [ ! -d "$state" ]; then
    { mkdir -p "$state" && chmod 0700 "$state"; } 2>/dev/null \
        || ghcache_fail "cannot create the state directory $state; create it once for the runner's user: sudo install -d -m 0700 -o $(id -u) -g $(id -g) $state"
fi
# The daemon runs as the directory's owner, so it can write there and the
# job (usually that same user) can reach the vault socket inside it.
owner=$(stat -c '%u:%g' "$state")
[ "$GHCACHE_MODE" = docker ] && [ "${owner%%:*}" = 0 ] && echo "::warning title=ghcache::$state is owned by root, so the daemon runs as root; give it to the runner's user (chown -R $(id -u):$(id -g) $state)"

# The cluster secret goes to the daemon as a 0600 file in the state
# directory, never as an argument or a container environment value.
secret_file=
if [ -n "${INPUT_CLUSTER_SECRET:-}" ]; then
    secret_file="$state/cluster.secret"
    (umask 077 && printf '%s' "$INPUT_CLUSTER_SECRET" >"$secret_file.tmp")
    [ "$(id -u)" = 0 ] && chown "$owner" "$secret_file.tmp"
    mv -f "$secret_file.tmp" "$secret_file"
fi
# From here on the file carries it: no later process or container inherits it.
unset INPUT_CLUSTER_SECRET

# The settings this daemon was started with, to notice a job asking for others.
settings="port=$port p2p=$p2p p2p_port=$p2p_port peers=${INPUT_BOOTSTRAP_PEERS:-} ttl=${INPUT_TTL:-} registry=${INPUT_REGISTRY_DIR:-} upstream=${INPUT_UPSTREAM:-} secret=$([ -n "$secret_file" ] && echo yes || echo no)"
settings_hash=$(printf '%s' "$settings" | sha256sum | cut -c1-16)

health() {
    if [ "$GHCACHE_MODE" = binary ]; then
        ghcache -q health --proxy-addr "$proxy_addr"
    else
        docker exec "$name" /usr/local/bin/ghcache -q health --proxy-addr "$proxy_addr"
    fi
}

last_logs() {
    echo "::group::last lines of the daemon's log"
    if [ "$GHCACHE_MODE" = binary ]; then
        tail -n 50 "$state/daemon.log" 2>/dev/null || true
    else
        docker logs --tail 50 "$name" 2>&1 || true
    fi
    echo "::endgroup::"
}

daemon_env() {
    export GHCACHE_PROXY_ADDR=$proxy_addr CACHE_ENABLE_P2P=$p2p CACHE_LISTEN_PORT=$p2p_port
    export CACHE_BOOTSTRAP_PEERS=${INPUT_BOOTSTRAP_PEERS:-} CACHE_DEFAULT_TTL=${INPUT_TTL:-}
    export GHCACHE_REGISTRY_DIR=${INPUT_REGISTRY_DIR:-} GHCACHE_UPSTREAM=${INPUT_UPSTREAM:-}
    export GHCACHE_CLUSTER_SECRET_FILE=$secret_file GHCACHE_STATE_DIR=$state
    unset GHCACHE_CLUSTER_SECRET
}

start_container() {
    daemon_env
    local args=(run -d --name "$name" --network host --restart unless-stopped
        --user "$owner" --label "dev.ghcache.settings=$settings_hash"
        -v "$state:$state")
    if [ -n "${INPUT_REGISTRY_DIR:-}" ]; then
        mkdir -p "$INPUT_REGISTRY_DIR"
        args+=(-v "$INPUT_REGISTRY_DIR:$INPUT_REGISTRY_DIR")
    fi
    [ -n "${SSL_CERT_FILE:-}" ] && [ -f "$SSL_CERT_FILE" ] && args+=(-v "$SSL_CERT_FILE:$SSL_CERT_FILE:ro")
    [ -n "${SSL_CERT_DIR:-}" ] && [ -d "$SSL_CERT_DIR" ] && args+=(-v "$SSL_CERT_DIR:$SSL_CERT_DIR:ro")
    # The inputs' settings, and any other GHCACHE_*/CACHE_* setting the step
    # sets (e.g. GHCACHE_MDNS=false), by name; never the secret's value.
    local var
    while IFS= read -r var; do
        case "$var" in
            GHCACHE_CLUSTER_SECRET | GHCACHE_API_URL | GHCACHE_JOB_ID | GHCACHE_IMAGE | GHCACHE_MODE | GHCACHE_HINTS_SHOWN) ;;
            GHCACHE_* | CACHE_* | SSL_CERT_FILE | SSL_CERT_DIR | RUST_LOG) [ -n "${!var:-}" ] && args+=(-e "$var") ;;
        esac
    done < <(compgen -e)
    docker "${args[@]}" "$GHCACHE_IMAGE" daemon >/dev/null
}

action=
if [ "$GHCACHE_MODE" = binary ]; then
    if health >/dev/null 2>&1; then
        action=reused
    else
        # An empty RUNNER_TRACKING_ID keeps the runner from killing the daemon
        # when the job ends (a systemd unit is the better home; see examples/).
        # Only the daemon itself is backgrounded, with no descriptor of this
        # step's, so the step ends when this script does.
        daemon_env
        RUNNER_TRACKING_ID='' nohup ghcache daemon </dev/null >>"$state/daemon.log" 2>&1 &
        action=started
    fi
else
    want=$(docker image inspect --format '{{.Id}}' "$GHCACHE_IMAGE" 2>/dev/null) || {
        docker pull --quiet "$GHCACHE_IMAGE" >/dev/null || ghcache_fail "cannot pull $GHCACHE_IMAGE"
        want=$(docker image inspect --format '{{.Id}}' "$GHCACHE_IMAGE")
    }
    if have=$(docker container inspect --format '{{.Image}} {{.State.Running}} {{index .Config.Labels "dev.ghcache.settings"}}' "$name" 2>/dev/null); then
        read -r have_image running have_settings <<<"$have"
        if [ "$have_image" != "$want" ]; then
            echo "The running daemon uses another image; replacing it (SIGTERM, 30 s to flush its store)."
            docker stop --time 30 "$name" >/dev/null
            docker rm "$name" >/dev/null
            start_container
            action=replaced
        else
            [ "$running" = true ] || docker start "$name" >/dev/null
            [ "$have_settings" = "$settings_hash" ] || echo "::warning title=ghcache::the daemon $name was started with other settings and is reused as it is; to apply this job's, run: docker rm -f $name"
            action=reused
        fi
    elif started=$(start_container 2>&1); then
        action=started
    elif docker container inspect "$name" >/dev/null 2>&1; then
        # Another job on this host started it at the same moment.
        action=reused
    else
        ghcache_fail "cannot start the daemon container: $started"
    fi
fi

# Running, and not restarted by its restart policy since this step began.
container_state() { docker container inspect --format '{{.State.Running}} {{.RestartCount}}' "$name" 2>/dev/null; }
not_ready() {
    last_logs
    # A daemon this step started and that cannot start is not left restarting.
    [ "$GHCACHE_MODE" = docker ] && [ "$action" != reused ] && docker rm -f "$name" >/dev/null 2>&1
    ghcache_fail "$1"
}
initial_state="true 0"
# (Only a container has a state: a reused binary-mode daemon has none.)
if [ "$GHCACHE_MODE" = docker ] && [ "$action" = reused ]; then
    initial_state=$(container_state)
fi
deadline=$((SECONDS + timeout))
until report=$(health 2>/dev/null); do
    if [ "$GHCACHE_MODE" = docker ] && [ "$(container_state)" != "$initial_state" ]; then
        not_ready "the daemon container $name stopped before it was ready"
    fi
    [ "$SECONDS" -lt "$deadline" ] || not_ready "the daemon did not answer on $proxy_url within ${timeout} s"
    sleep 0.5
done

value() { sed -n "s/^$1=//p" <<<"$report"; }

# Per-job attribution without the token: this job's clients reach the
# proxy under a random prefix, which the daemon counts apart;
# `ghcache report` (the job's last step) reads those counters.
job_id=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
job_url="$proxy_url/_job/$job_id"
# Registers the job (so a job that makes no request still reports zeros)
# and writes the cache's state to the job summary.
ghcache_exec -q report --state --job "$job_id" --proxy-addr "$proxy_addr" \
    || echo "::warning title=ghcache::cannot write the cache's state to the job summary"
{
    echo "proxy-url=$proxy_url"
    echo "api-url=$job_url"
    echo "job-id=$job_id"
    echo "peer-id=$(value peer-id)"
    echo "connected-peers=$(value connected-peers)"
    echo "daemon=$action"
    echo "version=$(value version)"
} >>"$GITHUB_OUTPUT"
{
    echo "GHCACHE_API_URL=$job_url"
    echo "GHCACHE_JOB_ID=$job_id"
    echo "GHCACHE_PROXY_ADDR=$proxy_addr"
    echo "GHCACHE_MODE=$GHCACHE_MODE"
    echo "GHCACHE_IMAGE=$GHCACHE_IMAGE"
    echo "GHCACHE_STATE_DIR=$state"
} >>"$GITHUB_ENV"

echo "ghcache daemon $action: $proxy_url (version $(value version), peers connected: $(value connected-peers))"
if [ -z "${GHCACHE_HINTS_SHOWN:-}" ]; then
    echo "GHCACHE_HINTS_SHOWN=1" >>"$GITHUB_ENV"
    cat <<HINTS
Point API clients in later steps at the cache (GITHUB_API_URL itself belongs to the runner and cannot be changed):
  gh:             gh has no setting for an http:// API base on github.com; call the cache with
                  curl -H "Authorization: token \$GH_TOKEN" "\$GHCACHE_API_URL/repos/OWNER/REPO"
  octokit:        new Octokit({ baseUrl: process.env.GHCACHE_API_URL })
  github-script:  with: { base-url: \${{ env.GHCACHE_API_URL }} }
  PyGithub:       Github(base_url=os.environ["GHCACHE_API_URL"], auth=Auth.Token(token))
HINTS
fi
