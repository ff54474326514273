#!/bin/bash
# EC2 user-data for a GPU worker (Deep Learning AMI or any image with an NVIDIA driver).
# Fill in COORDINATOR and the join token (from `sweep-coordinator token create --role join`),
# e.g. through SSM Parameter Store rather than plain user-data.
set -euo pipefail
COORDINATOR=${COORDINATOR:-https://coordinator.internal:50051}
python3 -m venv /opt/sweep/torch && /opt/sweep/torch/bin/pip install -q torch==2.11.0
TORCH_LIB=$(/opt/sweep/torch/bin/python -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
install -m 0755 sweep-worker /usr/local/bin/sweep-worker   # built with scripts/setup.sh + cargo build --release
mkdir -p /etc/sweep
aws ssm get-parameter --name /sweep/join-token --with-decryption --query Parameter.Value --output text > /etc/sweep/join-token
chmod 600 /etc/sweep/join-token
cat > /etc/sweep/worker.env <<ENV
SWEEP_COORDINATOR=$COORDINATOR
SWEEP_JOIN_TOKEN_FILE=/etc/sweep/join-token
LD_LIBRARY_PATH=$TORCH_LIB
ENV
cp sweep-worker.service /etc/systemd/system/
systemctl daemon-reload && systemctl enable --now sweep-worker
