#!/bin/sh
# Make the deploy-time secrets docker-compose.yml needs, once, into deploy/secrets/ (0700):
# broker passwords for the services, the Grafana admin password, the broker's TLS certificate.
# Existing files are kept, so running it again only fills what is missing.
#
#   deploy/bootstrap.sh BROKER_NAME [NAME...]    # names/IPs the nodes use to reach the broker
#
# Uses `rivermon` from PATH or .venv/, else the rivermon image (docker compose build).
# SECRETS_DIR overrides the target directory (the tests use it).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
secrets=${SECRETS_DIR:-$repo/deploy/secrets}
if [ $# -lt 1 ]; then
    echo "usage: $0 BROKER_NAME [NAME...]  (DNS names / IPs of the broker for its TLS certificate)" >&2
    exit 2
fi
umask 077
mkdir -p "$secrets"
chmod 700 "$secrets"

if command -v rivermon >/dev/null 2>&1; then
    rivermon() { command rivermon "$@"; }
elif [ -x "$repo/.venv/bin/rivermon" ]; then
    rivermon() { "$repo/.venv/bin/rivermon" "$@"; }
else
    (cd "$repo" && docker compose build ingest)
    rivermon() {
        docker run --rm --user "$(id -u):$(id -g)" -v "$secrets:$secrets" rivermon:latest "$@"
    }
fi

# TLS for the nodes' listener (8883); `mosquitto` and `localhost` for checks on the host.
if [ ! -f "$secrets/tls/server.crt" ]; then
    "$repo/deploy/mosquitto/make-certs.sh" "$secrets/tls" "$@" mosquitto localhost
fi

for service in ingest detect control web sim notify; do
    file="$secrets/mqtt-$service.password"
    if [ ! -s "$file" ]; then
        rivermon node add --service "$service" --password-file "$secrets/mosquitto.passwd" \
            --secret-file "$file" >/dev/null
        echo "issued the broker account of $service ($file)"
    fi
done

if [ ! -s "$secrets/notify-routes.toml" ]; then
    cp "$repo/notify/routes.example.toml" "$secrets/notify-routes.toml"
    echo "edit $secrets/notify-routes.toml (robot URLs and keys) before \`--profile notify\`"
fi

if [ ! -s "$secrets/grafana-admin.password" ]; then
    python3 -c 'import secrets; print(secrets.token_urlsafe(18))' > "$secrets/grafana-admin.password"
    echo "Grafana admin password: $secrets/grafana-admin.password"
fi

# The containers read their secrets as their own users: mosquitto 1883, rivermon 10001,
# grafana 472. As root, hand each file to its reader; otherwise make them readable inside this
# 0700 directory (bind mounts keep the host's owner and mode).
chmod 755 "$secrets/tls"
chmod 644 "$secrets/tls/ca.crt" "$secrets/tls/server.crt"
if [ "$(id -u)" = 0 ] && [ -z "${SECRETS_NO_CHOWN:-}" ]; then
    chown 1883:1883 "$secrets/mosquitto.passwd" "$secrets/tls/server.key"
    chown 10001:10001 "$secrets"/mqtt-*.password "$secrets/notify-routes.toml"
    chown 472:472 "$secrets/grafana-admin.password"
    chmod 600 "$secrets/mosquitto.passwd" "$secrets/tls/server.key" "$secrets"/mqtt-*.password \
        "$secrets/notify-routes.toml" "$secrets/grafana-admin.password"
else
    chmod 644 "$secrets/mosquitto.passwd" "$secrets/tls/server.key" "$secrets"/mqtt-*.password \
        "$secrets/notify-routes.toml" "$secrets/grafana-admin.password"
fi
echo "secrets ready in $secrets; issue node passwords with:"
echo "  rivermon node add NODE --password-file $secrets/mosquitto.passwd && docker compose kill -s HUP mosquitto"
