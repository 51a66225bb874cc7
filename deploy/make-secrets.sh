#!/usr/bin/env bash
# The files compose.yaml mounts, in deploy/secrets/ (never commit them):
#   ca.crt ca.key          a private CA (10 years)
#   server.crt server.key  the broker's certificate for the host names "mosquitto" and
#                          "localhost" (extra names: MQTT_HOSTS="mosquitto localhost broker.lan")
#   passwd                 Mosquitto's password file (users gw1, dashboard, device)
#   *_password             each user's password, one random line
# Needs openssl and python3; run from the repository root. Existing files are kept.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/deploy/secrets}"
hosts="${MQTT_HOSTS:-mosquitto localhost}"
mkdir -p "$out"
cd "$out"
umask 077
if [ ! -f ca.crt ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
    -subj "/CN=deepsense MQTT CA" 2>/dev/null
fi
if [ ! -f server.crt ]; then
  san=$(printf 'DNS:%s,' $hosts)
  openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
    -subj "/CN=${hosts%% *}" 2>/dev/null
  printf 'subjectAltName=%sIP:127.0.0.1\n' "$san" > san.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out server.crt -days 825 -extfile san.ext 2>/dev/null
  rm -f server.csr san.ext
fi
for user in gateway dashboard device; do
  [ -f "${user}_password" ] || openssl rand -hex 24 > "${user}_password"
done
# Mosquitto's password file, written by the gateway's own helper (the $6$ salted format);
# the gateway logs in as gw1 (its --username in the Dockerfile).
PYTHONPATH="$root" python3 -c '
from pathlib import Path
from gateway.broker import write_password_file
users = {"gw1": "gateway", "dashboard": "dashboard", "device": "device"}
write_password_file("passwd", {user: Path(f"{name}_password").read_text().split()[0]
                               for user, name in users.items()})
'
# The containers run as other users than yours: let them read the mounted files.
chmod 644 ca.crt server.crt *_password passwd
chmod 600 ca.key
chmod 644 server.key
echo "wrote $(pwd): ca.crt server.crt server.key passwd gateway_password dashboard_password device_password"
