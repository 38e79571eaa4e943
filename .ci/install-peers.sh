#!/usr/bin/env bash
# install-peers.sh: make sure the real SIP/XMPP peers used by the conformance
# tests (conformance/peers) and PostgreSQL are installed, that PostgreSQL
# answers on 127.0.0.1:5432 with trust auth for user postgres, and that the
# web phone (conformance/peers/webphone: Chromium + StanzaJS driven by
# puppeteer-core under node) has its npm modules and its StanzaJS bundle.
#
# Idempotent and quiet on success: on a machine that already has everything it
# only checks and returns. Needs root (apt-get, pg_ctlcluster). Output of the
# steps it runs is kept in a temp log and printed only when a step fails.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
PKGS=(prosody lua-unbound sip-tester python3-slixmpp baresip-core kamailio
      kamailio-presence-modules kamailio-utils-modules postgresql
      ejabberd go-sendxmpp openssl tcpdump # tcpdump: make load -capture
      chromium sox) # the web phone's browser; sox to look at call recordings by hand

LOG=$(mktemp -t install-peers.XXXXXX)
trap 'rm -f "$LOG"' EXIT
run() { # run CMD...: quiet unless it fails
	if ! "$@" >>"$LOG" 2>&1; then
		echo "install-peers: failed: $*" >&2
		cat "$LOG" >&2
		exit 1
	fi
}

installed() { # dpkg-query says the package is fully installed
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

missing=()
for p in "${PKGS[@]}"; do
	installed "$p" || missing+=("$p")
done

# node and npm for the web phone. Debian 12 gives node 18, which the pinned
# puppeteer-core 24 and esbuild accept (engines >=18); a node from elsewhere
# (nodesource bundles npm) is used as it is.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
	run apt-get update -q
	run apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }

if ! pg_up; then
	ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
	if [ -z "$ver" ]; then
		# Package present but no cluster (e.g. removed): create the default one.
		ver=$(ls /usr/lib/postgresql | sort -V | tail -n1)
		run pg_createcluster "$ver" main
	fi
	run pg_ctlcluster --skip-systemctl-redirect "$ver" main start
	for _ in $(seq 150); do pg_up && break; sleep 0.2; done
	if ! pg_up; then
		echo "install-peers: PostgreSQL did not come up on 127.0.0.1:5432" >&2
		tail -n 50 /var/log/postgresql/postgresql-"$ver"-main.log >&2 2>/dev/null || true
		exit 1
	fi
fi

# Trust auth for 127.0.0.1 (a fresh Debian cluster uses scram-sha-256 there).
if ! psql -X -q -w -h 127.0.0.1 -U postgres -d postgres -c 'select 1' >/dev/null 2>&1; then
	ver=$(ls /etc/postgresql | sort -V | tail -n1)
	hba=/etc/postgresql/$ver/main/pg_hba.conf
	# Put our line first: pg_hba.conf is first-match.
	if ! grep -qE '^host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
		sed -i '0,/^[^#[:space:]]/s//host all all 127.0.0.1\/32 trust\n&/' "$hba"
	fi
	run pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
	for _ in $(seq 50); do
		psql -X -q -w -h 127.0.0.1 -U postgres -d postgres -c 'select 1' >/dev/null 2>&1 && break
		sleep 0.2
	done
	if ! psql -X -q -w -h 127.0.0.1 -U postgres -d postgres -c 'select 1' >/dev/null 2>&1; then
		echo "install-peers: trust auth for postgres@127.0.0.1 does not work; see $hba" >&2
		exit 1
	fi
fi

# The web phone: npm modules exactly as package-lock.json pins them (npm ci;
# --ignore-scripts: esbuild's postinstall is not needed, its binary comes
# from @esbuild/linux-x64), then the StanzaJS bundle the page loads. Both
# are gitignored and redone only when the lock file or the entry changed.
webphone=$(cd "$(dirname "$0")/.." && pwd)/conformance/peers/webphone
if [ ! -f "$webphone/node_modules/.package-lock.json" ] ||
	[ "$webphone/package-lock.json" -nt "$webphone/node_modules/.package-lock.json" ]; then
	run npm ci --prefix "$webphone" --no-audit --no-fund --ignore-scripts
fi
if [ ! -f "$webphone/stanza.bundle.js" ] ||
	[ "$webphone/node_modules/.package-lock.json" -nt "$webphone/stanza.bundle.js" ] ||
	[ "$webphone/entry.js" -nt "$webphone/stanza.bundle.js" ]; then
	run npm run --prefix "$webphone" build
fi
