#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for the tests: etcd, kube-apiserver and, on
# request, kube-controller-manager, built by build.sh. No kubelet: Pods are admitted and
# stored, never run.
#
#   cluster.sh start DIR [--with-controller-manager] [--owner PID]
#   cluster.sh stop DIR
#   cluster.sh restart-apiserver DIR [FLAG...]   # same port, same etcd: every watch breaks;
#                                                # FLAGs are added to kube-apiserver's
#   cluster.sh stop-apiserver DIR                # the two halves of restart-apiserver, so
#   cluster.sh start-apiserver DIR [FLAG...]     # that etcd can be changed in between
#
# start writes into DIR (created if needed): the certificates (a CA, the apiserver's serving
# certificate for 127.0.0.1 and localhost, the service-account key pair), a static token file,
# admin.kubeconfig (user "admin", group system:masters), controller.kubeconfig (the
# controller's user, below), each server's log, the controller's requests in DIR/audit.log
# (the apiserver's audit log), and DIR/env, a shell file with the
# kubeconfigs, ports and process ids. It returns once /readyz answers ok (at most 60 s; the
# apiserver's log tail is printed otherwise).
#
# The controller's user is the chart's ServiceAccount as the apiserver would authenticate its
# token: "system:serviceaccount:tagbinder-system:tagbinder", in the groups
# system:serviceaccounts and system:serviceaccounts:tagbinder-system (and
# system:authenticated), and nothing else. RBAC then grants it exactly what the chart's own
# RoleBindings and ClusterRoleBindings give that ServiceAccount, applied unchanged.
#
# --owner PID: also stop everything once process PID has gone, however it ended (a test
# runner killed with SIGKILL runs no cleanup of its own).
#
# Binaries: $TAGBINDER_KUBE_BIN, else what build.sh builds or reuses.
set -Eeuo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
extra_apiserver_flags=()
controller_user="system:serviceaccount:tagbinder-system:tagbinder"
controller_groups="system:serviceaccounts,system:serviceaccounts:tagbinder-system"

usage() {
  echo "usage: cluster.sh start DIR [--with-controller-manager] [--owner PID] | cluster.sh stop DIR | cluster.sh {restart,start}-apiserver DIR [FLAG...] | cluster.sh stop-apiserver DIR" >&2
  exit 2
}

# A loopback port nothing listens on now. The server binds it a moment later; start_server
# retries with new ports should another process take it first.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Runs a server in a process group of its own (so that stop ends it and all it started), its
# output in DIR/NAME.log; prints its pid.
spawn() {
  local name="$1"
  shift
  setsid "$@" </dev/null >"$dir/$name.log" 2>&1 &
  echo $!
}

# SIGTERM to a process group, SIGKILL after GRACE tenths of a second (default 30: test data
# needs no orderly shutdown, and a kube-apiserver drains its watches for many seconds).
stop_group() {
  local pid="$1" grace="${2:-30}" i
  [[ -n "$pid" ]] || return 0
  kill -TERM -- "-$pid" 2>/dev/null || return 0
  for i in $(seq 1 "$grace"); do
    kill -0 -- "-$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
}

stop() {
  local pid
  [[ -f "$dir/pids" ]] || return 0
  # NB: in the reverse order of starting: the watchdog first, etcd last.
  for pid in $(tac "$dir/pids"); do
    # NB: the watchdog runs this very stop as itself; it ends when done.
    [[ "$pid" == "$$" ]] || stop_group "$pid"
  done
  rm -f "$dir/pids"
}

certificates() {
  local ssl=(openssl)
  "${ssl[@]}" req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj /CN=tagbinder-test-ca -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  "${ssl[@]}" req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj /CN=kube-apiserver -keyout "$dir/apiserver.key" -out "$dir/apiserver.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" \
    "extendedKeyUsage=serverAuth" "keyUsage=digitalSignature,keyEncipherment" >"$dir/apiserver.ext"
  "${ssl[@]}" x509 -req -in "$dir/apiserver.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 3650 -extfile "$dir/apiserver.ext" -out "$dir/apiserver.crt" 2>/dev/null
  "${ssl[@]}" genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/sa.key" 2>/dev/null
  "${ssl[@]}" pkey -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
}

tokens() {
  admin_token="$(openssl rand -hex 16)"
  controller_token="$(openssl rand -hex 16)"
  {
    echo "$admin_token,admin,admin-uid,\"system:masters\""
    echo "$controller_token,$controller_user,tagbinder-controller-uid,\"$controller_groups\""
  } >"$dir/tokens.csv"
  chmod 600 "$dir/tokens.csv"
}

# Every request of the controller's user, in DIR/audit.log (one JSON event a line, written
# before the answer is sent): the tests read which calls it made and what RBAC answered.
audit_policy() {
  cat >"$dir/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: ["$controller_user"]
- level: None
EOF
}

kubeconfig() {
  local path="$1" user="$2" token="$3"
  cat >"$path" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tagbinder-test
  cluster:
    server: https://127.0.0.1:$apiserver_port
    certificate-authority: $dir/ca.crt
users:
- name: $user
  user:
    token: $token
contexts:
- name: $user
  context: {cluster: tagbinder-test, user: $user}
current-context: $user
EOF
  chmod 600 "$path"
}

# True once the process runs and PORT accepts connections; false if it exited.
listening() {
  local pid="$1" port="$2" i
  for i in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

start_etcd() {
  local attempt
  for attempt in 1 2 3; do
    etcd_port="$(free_port)"
    local peer_port
    peer_port="$(free_port)"
    etcd_pid="$(spawn etcd "$bin/etcd" --data-dir "$dir/etcd" \
      --listen-client-urls "http://127.0.0.1:$etcd_port" \
      --listen-peer-urls "http://127.0.0.1:$peer_port")"
    echo "$etcd_pid" >>"$dir/pids"
    if listening "$etcd_pid" "$etcd_port"; then
      return 0
    fi
    stop_group "$etcd_pid"
    rm -rf "$dir/etcd"
  done
  echo "cluster.sh: etcd did not start; its log:" >&2
  tail -n 40 "$dir/etcd.log" >&2
  return 1
}

# Starts kube-apiserver on $apiserver_port when set (a restart), else on a free port.
start_apiserver() {
  local attempt fixed_port="${apiserver_port:-}"
  for attempt in 1 2 3; do
    apiserver_port="${fixed_port:-$(free_port)}"
    apiserver_pid="$(spawn kube-apiserver "$bin/kube-apiserver" \
      --etcd-servers "http://127.0.0.1:$etcd_port" \
      --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$apiserver_port" \
      --cert-dir "$dir" --tls-cert-file "$dir/apiserver.crt" --tls-private-key-file "$dir/apiserver.key" \
      --token-auth-file "$dir/tokens.csv" \
      --authorization-mode RBAC \
      --enable-admission-plugins PodSecurity \
      --service-account-issuer https://kubernetes.default.svc \
      --service-account-key-file "$dir/sa.pub" --service-account-signing-key-file "$dir/sa.key" \
      --service-cluster-ip-range 10.0.0.0/24 \
      --endpoint-reconciler-type none \
      --audit-policy-file "$dir/audit-policy.yaml" --audit-log-path "$dir/audit.log" \
      --profiling=false --v 0 ${extra_apiserver_flags[@]+"${extra_apiserver_flags[@]}"})"
    echo "$apiserver_pid" >>"$dir/pids"
    if listening "$apiserver_pid" "$apiserver_port"; then
      return 0
    fi
    if [[ -z "$fixed_port" ]] && grep -q 'address already in use' "$dir/kube-apiserver.log"; then
      stop_group "$apiserver_pid"
      continue
    fi
    break
  done
  echo "cluster.sh: kube-apiserver did not start; the end of its log:" >&2
  tail -n 40 "$dir/kube-apiserver.log" >&2
  return 1
}

wait_ready() {
  local i answer=""
  for i in $(seq 1 600); do
    answer="$(curl -s --max-time 2 --cacert "$dir/ca.crt" -H "Authorization: Bearer $admin_token" \
      "https://127.0.0.1:$apiserver_port/readyz" || true)"
    [[ "$answer" == ok ]] && return 0
    kill -0 "$apiserver_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$apiserver_pid" 2>/dev/null; then
    echo "cluster.sh: kube-apiserver not ready within 60 s (last answer: ${answer:-none}); the end of its log:" >&2
  else
    echo "cluster.sh: kube-apiserver exited; the end of its log:" >&2
  fi
  tail -n 40 "$dir/kube-apiserver.log" >&2
  return 1
}

start_controller_manager() {
  controller_manager_pid="$(spawn kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$dir/admin.kubeconfig" \
    --controllers '*' --use-service-account-credentials=false --leader-elect=false \
    --service-account-private-key-file "$dir/sa.key" --root-ca-file "$dir/ca.crt" \
    --cluster-signing-cert-file "$dir/ca.crt" --cluster-signing-key-file "$dir/ca.key" \
    --bind-address 127.0.0.1 --secure-port 0 --v 0)"
  echo "$controller_manager_pid" >>"$dir/pids"
  # NB: ready once its ServiceAccount controller has made the default namespace's account,
  # which every Pod needs to be admitted.
  local i
  for i in $(seq 1 600); do
    if "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" -n default get serviceaccount default \
      >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$controller_manager_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "cluster.sh: kube-controller-manager not working within 60 s; the end of its log:" >&2
  tail -n 40 "$dir/kube-controller-manager.log" >&2
  return 1
}

# Stops the cluster once OWNER has gone; itself in the pid list, so stop ends it too.
watch_owner() {
  local owner="$1"
  setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec bash "$2" stop "$3"' \
    watchdog "$owner" "$here/cluster.sh" "$dir" </dev/null >/dev/null 2>&1 &
  echo $! >>"$dir/pids"
}

# Stops kube-apiserver; etcd runs on (start-apiserver starts it again).
stop_apiserver() {
  # shellcheck disable=SC1091
  source "$dir/env"
  stop_group "$APISERVER_PID"
  grep -vx "$APISERVER_PID" "$dir/pids" >"$dir/pids.new" || true
  mv "$dir/pids.new" "$dir/pids"
}

# Starts kube-apiserver again on its port, over the same etcd, with the extra FLAGs given
# (--watch-cache=false, say): every watch has broken, and the new server's watch cache (if
# any) starts afresh.
start_apiserver_again() {
  extra_apiserver_flags=("$@")
  # shellcheck disable=SC1091
  source "$dir/env"
  bin="$KUBE_BIN"
  etcd_port="${ETCD_URL##*:}"
  apiserver_port="$APISERVER_PORT"
  admin_token="$(awk -F, '$2 == "admin" { print $1 }' "$dir/tokens.csv")"
  start_apiserver
  wait_ready
  sed -i "s/^APISERVER_PID=.*/APISERVER_PID=$apiserver_pid/" "$dir/env"
}

start() {
  local with_controller_manager=false owner=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --with-controller-manager) with_controller_manager=true ;;
      --owner) owner="$2"; shift ;;
      *) usage ;;
    esac
    shift
  done
  if [[ -f "$dir/pids" ]]; then
    echo "cluster.sh: $dir/pids exists: a cluster runs there (cluster.sh stop $dir first)" >&2
    exit 1
  fi
  if [[ -n "${TAGBINDER_KUBE_BIN:-}" ]]; then
    bin="$TAGBINDER_KUBE_BIN"
  else
    bin="$(bash "$here/build.sh" | tail -n 1)"
  fi
  # NB: any failure from here stops what was started.
  trap 'stop' ERR
  : >"$dir/pids"
  certificates
  tokens
  audit_policy
  start_etcd
  start_apiserver
  kubeconfig "$dir/admin.kubeconfig" admin "$admin_token"
  kubeconfig "$dir/controller.kubeconfig" "$controller_user" "$controller_token"
  wait_ready
  controller_manager_pid=""
  if $with_controller_manager; then
    start_controller_manager
  fi
  [[ -z "$owner" ]] || watch_owner "$owner"
  trap - ERR
  cat >"$dir/env" <<EOF
KUBE_BIN=$bin
ADMIN_KUBECONFIG=$dir/admin.kubeconfig
CONTROLLER_KUBECONFIG=$dir/controller.kubeconfig
CONTROLLER_USER=$controller_user
APISERVER_URL=https://127.0.0.1:$apiserver_port
APISERVER_PORT=$apiserver_port
ETCD_URL=http://127.0.0.1:$etcd_port
ETCD_PID=$etcd_pid
APISERVER_PID=$apiserver_pid
AUDIT_LOG=$dir/audit.log
CONTROLLER_MANAGER_PID=$controller_manager_pid
EOF
  echo "cluster.sh: kube-apiserver ready at https://127.0.0.1:$apiserver_port (KUBECONFIG=$dir/admin.kubeconfig)" >&2
}

[[ $# -ge 2 ]] || usage
command="$1"
mkdir -p "$2"
dir="$(cd "$2" && pwd)"
shift 2
case "$command" in
  start) start "$@" ;;
  stop) stop ;;
  restart-apiserver) stop_apiserver && start_apiserver_again "$@" ;;
  stop-apiserver) stop_apiserver ;;
  start-apiserver) start_apiserver_again "$@" ;;
  *) usage ;;
esac
