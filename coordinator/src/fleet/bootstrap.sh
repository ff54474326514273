#!/bin/bash
# Sweep worker bootstrap for instance {{INSTANCE}} of fleet {{FLEET}}, rendered by the
# coordinator. It holds no admin or client token and no reusable join token: the join
# token below is minted for this instance alone, is spent by its first use and expires
# at {{JOIN_EXPIRES}}. Everything else here is public (the coordinator's address, the
# worker binary's SHA-256, the CA certificate that signed the coordinator's).
set -euo pipefail
COORDINATOR='{{COORDINATOR}}'
WORKER_SHA256='{{WORKER_SHA256}}'
INSTANCE='{{INSTANCE}}'
IDLE_SECS='{{IDLE_SECS}}'
MAX_MINUTES='{{MAX_MINUTES}}'
TORCH_VERSION='{{TORCH_VERSION}}'
# On EC2 everything lives under /opt/sweep; the local provider gives each "instance" a directory.
ROOT="${SWEEP_INSTANCE_ROOT:-/opt/sweep}"
umask 077
mkdir -p "$ROOT/bin" "$ROOT/etc"

# Dead man's switch, part 1: the instance ends itself at its fleet's max hours, whatever
# the coordinator does (EC2 runs it with shutdown behaviour "terminate").
if [ -z "${SWEEP_INSTANCE_ROOT:-}" ]; then
  shutdown -h "+$MAX_MINUTES" "sweep: fleet max hours reached" || true
fi

cat > "$ROOT/etc/ca.pem" <<'SWEEP_CA_PEM'
{{CA_PEM}}
SWEEP_CA_PEM
CURL_TLS=()
WORKER_TLS=()
if grep -q 'BEGIN CERTIFICATE' "$ROOT/etc/ca.pem"; then
  CURL_TLS=(--cacert "$ROOT/etc/ca.pem")
  WORKER_TLS=(--ca-file "$ROOT/etc/ca.pem")
fi

# The worker binary from the coordinator, checked against the hash pinned above.
for attempt in $(seq 1 60); do
  if curl -fsS "${CURL_TLS[@]}" -o "$ROOT/bin/sweep-worker.download" "$COORDINATOR/v1/artifacts/sweep-worker"; then
    break
  fi
  echo "worker download failed (attempt $attempt), retrying" >&2
  sleep 5
done
echo "$WORKER_SHA256  $ROOT/bin/sweep-worker.download" | sha256sum --check --strict
chmod 0755 "$ROOT/bin/sweep-worker.download"
mv "$ROOT/bin/sweep-worker.download" "$ROOT/bin/sweep-worker"

# libtorch: the image's PyTorch when it has one, else the torch wheel in a venv.
torch_lib() { "$1" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null; }
if ! TORCH_LIB=$(torch_lib python3); then
  python3 -m venv "$ROOT/torch"
  "$ROOT/torch/bin/pip" install --quiet "torch==$TORCH_VERSION"
  TORCH_LIB=$(torch_lib "$ROOT/torch/bin/python")
fi

printf '%s\n' '{{JOIN_TOKEN}}' > "$ROOT/etc/join-token"
ARGS=(run --coordinator "$COORDINATOR" --name "fleet-$INSTANCE" --exit-when-idle-secs "$IDLE_SECS" "${WORKER_TLS[@]}")
export SWEEP_JOIN_TOKEN_FILE="$ROOT/etc/join-token"
export SWEEP_WORKER_CREDENTIAL_FILE="$ROOT/etc/credential.json"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

if [ -n "${SWEEP_INSTANCE_ROOT:-}" ]; then
  exec "$ROOT/bin/sweep-worker" "${ARGS[@]}"
fi

# Dead man's switch, part 2: the worker exits once it has had no work for the idle
# time, and a clean exit powers the instance off (terminating it). A crash restarts it.
cat > /etc/systemd/system/sweep-worker.service <<UNIT
[Unit]
Description=Sweep worker (fleet instance $INSTANCE)
After=network-online.target
Wants=network-online.target

[Service]
Environment=SWEEP_JOIN_TOKEN_FILE=$SWEEP_JOIN_TOKEN_FILE
Environment=SWEEP_WORKER_CREDENTIAL_FILE=$SWEEP_WORKER_CREDENTIAL_FILE
Environment=LD_LIBRARY_PATH=$LD_LIBRARY_PATH
ExecStart=$ROOT/bin/sweep-worker ${ARGS[*]}
ExecStopPost=/bin/sh -c 'if [ "\$\$SERVICE_RESULT" = success ]; then /sbin/shutdown -h now "sweep: worker idle"; fi'
Restart=on-failure
RestartSec=5
KillSignal=SIGTERM
TimeoutStopSec=60

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now sweep-worker.service
