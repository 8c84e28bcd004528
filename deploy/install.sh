#!/usr/bin/env bash
# Install siren-detector on Raspberry Pi OS (or Debian) as a systemd service.
#   sudo deploy/install.sh [--with-mosquitto]
# Installs the code and a virtual environment under /opt/siren-detector, the config (kept if present)
# in /etc/siren-detector/config.yaml, and the unit; then checks the config and starts the service.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }

with_mosquitto=no
for arg in "$@"; do
    case "$arg" in
        --with-mosquitto) with_mosquitto=yes ;;
        *) echo "install.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

packages=(python3-venv libportaudio2 rsync)
[[ $with_mosquitto == yes ]] && packages+=(mosquitto)
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null

prefix=/opt/siren-detector
mkdir -p "$prefix"
rsync -a --delete --exclude .git --exclude .venv --exclude cache --exclude reports ./ "$prefix/"
[[ -x $prefix/.venv/bin/python ]] || python3 -m venv "$prefix/.venv"
"$prefix/.venv/bin/pip" install --quiet --upgrade pip
# editable, so the shipped models/ and configs/ are found beside the code
"$prefix/.venv/bin/pip" install --quiet -e "$prefix[mic]"

install -d -m 0755 /etc/siren-detector
if [[ ! -f /etc/siren-detector/config.yaml ]]; then
    install -m 0644 configs/raspberry-pi.yaml /etc/siren-detector/config.yaml
    echo "install.sh: wrote /etc/siren-detector/config.yaml; set mqtt.host and mqtt.device_id for this intersection"
fi
if [[ $with_mosquitto == yes ]]; then
    install -m 0644 deploy/mosquitto-siren.conf /etc/mosquitto/conf.d/siren-detector.conf
    systemctl restart mosquitto
fi

install -m 0644 deploy/siren-detector.service /etc/systemd/system/siren-detector.service
"$prefix/.venv/bin/siren-detector" check-config /etc/siren-detector/config.yaml >/dev/null
systemctl daemon-reload
systemctl enable --now siren-detector.service
echo "install.sh: running; follow it with: journalctl -u siren-detector -f"
