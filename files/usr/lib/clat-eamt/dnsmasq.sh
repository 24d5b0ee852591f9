#!/bin/sh
# shellcheck shell=ash
# The dnsmasq hook of clat-eamt: make dnsmasq forward to the daemon, and put dnsmasq back.
#
#   dnsmasq.sh apply PORT ADDR [IDENTITY]
#                                  every dnsmasq section of /etc/config/dhcp gets
#                                  list server 'ADDR#PORT' and noresolv 1; with IDENTITY 1
#                                  (clat-eamt's client_identity option) also addmac 1 and
#                                  addsubnet '32,128'; dnsmasq restarts
#   dnsmasq.sh restore             put back exactly what apply changed; dnsmasq restarts
#   dnsmasq.sh guard               the daemon's guard: reads `apply PORT ADDR IDENTITY`
#                                  lines from stdin and applies them; at end of file restores
#                                  and exits
#
# No addmac/addsubnet by default: with a per-client option dnsmasq forwards every query and its
# cache no longer hides repeats (dnsmasq 2.90: 3 identical client queries, 3 upstream queries;
# without, 1), so the whole LAN would lose its DNS cache.  Client identity only buys per-host
# creation limits and gating; the daemon's nftables host sets decide per packet anyway.
#
# The daemon (`clat-eamt run --dnsmasq-hook THIS`) starts `guard` before it reads its config,
# with a pipe only the daemon writes to: it sends `apply` with its own port and address once
# it listens, and the pipe's end of file - however the daemon ends, SIGKILL included - makes
# the guard restore dnsmasq (src/clat_eamt/hook.py).
# Sourced (by the init script) it only defines the functions.
#
# Every dnsmasq section, not only @dnsmasq[0]: a second instance (a guest network, say) would
# otherwise resolve past the daemon, and its IPv4-only hosts would never get mappings; this is
# also what https-dns-proxy does by default.
#
# The values apply replaces are remembered in a file on flash (/etc/clat-eamt/dnsmasq.state),
# written before /etc/config/dhcp is touched, so a power cut between apply and restore loses
# nothing; a second apply keeps the first originals.  Restore uses uci del_list / set / delete,
# which keep every other option where it was, so the committed file is byte for byte what it
# was before apply (when that file was in the format uci commit writes: any saved file is).
# Sections are remembered by position (@dnsmasq[N]): uci names anonymous sections by position.

# Test-only: a prefix for every file path (a throwaway root file system in the tests).
# Empty on a router, so every path below is the real one.
CLAT_EAMT_ROOT="${CLAT_EAMT_TESTROOT:-}"
CLAT_DNSMASQ_STATE="$CLAT_EAMT_ROOT/etc/clat-eamt/dnsmasq.state"
CLAT_DNSMASQ_LOCK="$CLAT_EAMT_ROOT/var/lock/clat-eamt-dnsmasq.lock"
CLAT_DNSMASQ_INIT="$CLAT_EAMT_ROOT/etc/init.d/dnsmasq"
# The options apply may set, with their values (the server list entry is handled apart); all
# are remembered, so restore is exact whichever apply set.  Without client identity apply sets
# only the first (CLAT_DNSMASQ_PLAIN).
CLAT_DNSMASQ_OPTIONS="noresolv=1 addmac=1 addsubnet=32,128"
CLAT_DNSMASQ_PLAIN="noresolv=1"

clat_log() {
	logger -t clat-eamt "$*"
}

# A short sleep: busybox sleep may lack fractions, then sleep a whole second.
clat_nap() {
	sleep 0.2 2>/dev/null || sleep 1
}

# apply and restore may run at once (the init script's stop_service and the guard that sees
# its daemon stop): a directory is the lock (mkdir is atomic).  It lives in /var/lock (tmpfs),
# so a power cut cannot leave it behind; one left by a killed process is taken after ~10 s.
clat_dnsmasq_lock() {
	_n=0
	mkdir -p "${CLAT_DNSMASQ_LOCK%/*}"
	while ! mkdir "$CLAT_DNSMASQ_LOCK" 2>/dev/null; do
		_n=$((_n + 1))
		if [ "$_n" -ge 50 ]; then
			clat_log "dnsmasq hook: taking over a stale lock $CLAT_DNSMASQ_LOCK"
			return 0
		fi
		clat_nap
	done
}

clat_dnsmasq_unlock() {
	rmdir "$CLAT_DNSMASQ_LOCK" 2>/dev/null
}

# The number of dnsmasq sections in /etc/config/dhcp.
clat_dnsmasq_count() {
	_c=0
	while uci -q get "dhcp.@dnsmasq[$_c]" >/dev/null; do
		_c=$((_c + 1))
	done
	echo "$_c"
}

# Is "server" of @dnsmasq[$1] a plain option (option server 'x') rather than a list?  uci get
# prints both the same way; uci export shows the keyword.
clat_dnsmasq_server_is_option() {
	uci export dhcp 2>/dev/null | awk -v want="$1" '
		/^config / { n += ($2 == "dnsmasq"); inside = ($2 == "dnsmasq" && n == want + 1); next }
		inside && $1 == "option" && $2 == "server" { found = 1 }
		END { exit !found }'
}

# Is $2 one item of the server list of @dnsmasq[$1]?
clat_dnsmasq_has_server() {
	_items="$(uci -q get "dhcp.@dnsmasq[$1].server")" || return 1
	case " $_items " in
		*" $2 "*) return 0 ;;
	esac
	return 1
}

# Write what apply is about to change (the state file), before anything changes.
clat_dnsmasq_remember() {
	_server="$1"
	_count="$(clat_dnsmasq_count)"
	_tmp="$CLAT_DNSMASQ_STATE.new"
	mkdir -p "${CLAT_DNSMASQ_STATE%/*}" || return 1
	{
		echo "# clat-eamt: what dnsmasq.sh apply changed in /etc/config/dhcp; restore puts it back"
		printf 'server\t%s\n' "$_server"
		printf 'identity\t%s\n' "$2"
		_i=0
		while [ "$_i" -lt "$_count" ]; do
			if clat_dnsmasq_has_server "$_i" "$_server"; then
				printf '%s\tserver\tpresent\n' "$_i"
			elif clat_dnsmasq_server_is_option "$_i"; then
				printf '%s\tserver\toption\t%s\n' "$_i" "$(uci -q get "dhcp.@dnsmasq[$_i].server")"
			else
				printf '%s\tserver\tadded\n' "$_i"
			fi
			for _pair in $CLAT_DNSMASQ_OPTIONS; do
				_opt="${_pair%%=*}"
				if _old="$(uci -q get "dhcp.@dnsmasq[$_i].$_opt")"; then
					printf '%s\t%s\tset\t%s\n' "$_i" "$_opt" "$_old"
				else
					printf '%s\t%s\tunset\n' "$_i" "$_opt"
				fi
			done
			_i=$((_i + 1))
		done
	} >"$_tmp" && sync && mv "$_tmp" "$CLAT_DNSMASQ_STATE" && sync
}

# The server entry a state file was written for (empty: no state).
clat_dnsmasq_state_server() {
	[ -f "$CLAT_DNSMASQ_STATE" ] || return 0
	awk -F '\t' '$1 == "server" { print $2; exit }' "$CLAT_DNSMASQ_STATE"
}

# The client identity setting a state file was written for (0 for a file without one).
clat_dnsmasq_state_identity() {
	[ -f "$CLAT_DNSMASQ_STATE" ] || return 0
	awk -F '\t' '$1 == "identity" { v = $2 } END { print (v == "1" ? 1 : 0) }' "$CLAT_DNSMASQ_STATE"
}

# Does the state file describe @dnsmasq[$1]?
clat_dnsmasq_known() {
	awk -F '\t' -v i="$1" '$1 == i && $2 == "server" { found = 1 } END { exit !found }' \
		"$CLAT_DNSMASQ_STATE"
}

clat_dnsmasq_commit() {
	uci commit dhcp || {
		clat_log "dnsmasq hook: uci commit dhcp failed"
		return 1
	}
	if [ -x "$CLAT_DNSMASQ_INIT" ]; then
		"$CLAT_DNSMASQ_INIT" restart >/dev/null 2>&1 || clat_log "dnsmasq hook: dnsmasq restart failed"
	fi
	return 0
}

# Restore without taking the lock (the caller holds it).
clat_dnsmasq_restore_locked() {
	[ -f "$CLAT_DNSMASQ_STATE" ] || return 0
	_server="$(clat_dnsmasq_state_server)"
	_changed=
	# The fields are tab-separated; a value keeps its inner spaces.
	while IFS="$(printf '\t')" read -r _i _opt _how _old; do
		case "$_i" in
			'' | *[!0-9]*) continue ;; # the comment and the server line
		esac
		uci -q get "dhcp.@dnsmasq[$_i]" >/dev/null || continue # the section was deleted since
		_ref="dhcp.@dnsmasq[$_i].$_opt"
		case "$_opt:$_how" in
			server:added)
				if clat_dnsmasq_has_server "$_i" "$_server"; then
					uci del_list "$_ref=$_server" && _changed=1
				fi
				;;
			server:option)
				# uci set replaces the list by a plain option at the same place.
				uci set "$_ref=$_old" && _changed=1
				;;
			*:unset)
				if uci -q get "$_ref" >/dev/null; then
					uci -q delete "$_ref" && _changed=1
				fi
				;;
			*:set)
				if [ "$(uci -q get "$_ref")" != "$_old" ]; then
					uci set "$_ref=$_old" && _changed=1
				fi
				;;
		esac
	done <"$CLAT_DNSMASQ_STATE"
	if [ -n "$_changed" ]; then
		clat_dnsmasq_commit || return 1
		clat_log "dnsmasq hook: dnsmasq restored (no longer forwards to $_server)"
	fi
	rm -f "$CLAT_DNSMASQ_STATE"
	rmdir "${CLAT_DNSMASQ_STATE%/*}" 2>/dev/null
	return 0
}

clat_dnsmasq_restore() {
	clat_dnsmasq_lock
	clat_dnsmasq_restore_locked
	_rc=$?
	clat_dnsmasq_unlock
	return "$_rc"
}

# The server entry dnsmasq gets for a daemon listening on ADDR#PORT (both as the daemon says,
# never guessed here): dnsmasq cannot send to a wildcard address, the daemon answers on
# loopback then.
clat_dnsmasq_server() {
	case "$1" in
		'' | *[!0-9]*)
			clat_log "dnsmasq hook: bad port '$1'"
			return 2
			;;
	esac
	case "$2" in
		'')
			clat_log "dnsmasq hook: no address"
			return 2
			;;
		0.0.0.0) echo "127.0.0.1#$1" ;;
		::) echo "::1#$1" ;;
		*) echo "$2#$1" ;;
	esac
}

clat_dnsmasq_apply() {
	_want="$(clat_dnsmasq_server "$1" "$2")" || return 2
	_identity="${3:-0}"
	case "$_identity" in
		1) _options="$CLAT_DNSMASQ_OPTIONS" ;;
		0) _options="$CLAT_DNSMASQ_PLAIN" ;;
		*)
			clat_log "dnsmasq hook: bad client identity setting '$_identity' (0 or 1)"
			return 2
			;;
	esac
	clat_dnsmasq_lock
	_had="$(clat_dnsmasq_state_server)"
	if [ -n "$_had" ] && { [ "$_had" != "$_want" ] ||
		[ "$(clat_dnsmasq_state_identity)" != "$_identity" ]; }; then
		# The daemon moved (another port or address) or client identity was switched: undo
		# the old hook first, so the state file keeps describing the real originals.
		clat_dnsmasq_restore_locked
		_had=
	fi
	if [ -z "$_had" ]; then
		clat_dnsmasq_remember "$_want" "$_identity" || {
			clat_log "dnsmasq hook: cannot write $CLAT_DNSMASQ_STATE; dnsmasq left alone"
			rm -f "$CLAT_DNSMASQ_STATE.new"
			clat_dnsmasq_unlock
			return 1
		}
	fi
	_changed=
	_count="$(clat_dnsmasq_count)"
	[ "$_count" -gt 0 ] || clat_log "dnsmasq hook: no dnsmasq section in /etc/config/dhcp"
	_i=0
	while [ "$_i" -lt "$_count" ]; do
		# Only sections the state file knows (one added since an earlier apply is left alone:
		# restore could not put it back).
		if clat_dnsmasq_known "$_i"; then
			if ! clat_dnsmasq_has_server "$_i" "$_want"; then
				uci add_list "dhcp.@dnsmasq[$_i].server=$_want" && _changed=1
			fi
			for _pair in $_options; do
				_opt="${_pair%%=*}"
				_val="${_pair#*=}"
				if [ "$(uci -q get "dhcp.@dnsmasq[$_i].$_opt")" != "$_val" ]; then
					uci set "dhcp.@dnsmasq[$_i].$_opt=$_val" && _changed=1
				fi
			done
		fi
		_i=$((_i + 1))
	done
	_rc=0
	if [ -n "$_changed" ]; then
		clat_dnsmasq_commit || _rc=1
		[ "$_rc" = 0 ] && clat_log "dnsmasq hook: dnsmasq forwards to $_want"
	fi
	clat_dnsmasq_unlock
	return "$_rc"
}

# The guard (see the top).  Only the end of its stdin ends it: signals meant for the daemon
# (a Ctrl-C, procd's SIGTERM to the process group) must not stop it before it restores.
clat_dnsmasq_guard() {
	trap '' INT TERM HUP PIPE
	while IFS= read -r _line; do
		# shellcheck disable=SC2086  # split the line into its words on purpose
		set -- $_line
		case "$1" in
			apply)
				shift
				clat_dnsmasq_apply "$@" ||
					clat_log "dnsmasq could not be pointed at the daemon; it keeps resolving on its own"
				;;
			*) clat_log "dnsmasq hook guard: unknown request '$_line'" ;;
		esac
	done
	clat_dnsmasq_restore
	clat_log "dnsmasq hook: the daemon ended; dnsmasq resolves on its own"
}

clat_dnsmasq_main() {
	case "$1" in
		apply)
			shift
			[ -n "$2" ] || {
				echo "usage: ${0##*/} apply PORT ADDR [IDENTITY]" >&2
				return 2
			}
			clat_dnsmasq_apply "$@"
			;;
		restore)
			clat_dnsmasq_restore
			;;
		guard)
			clat_dnsmasq_guard
			;;
		*)
			echo "usage: ${0##*/} apply PORT ADDR [IDENTITY] | restore | guard" >&2
			return 2
			;;
	esac
}

# Run only when executed, not when sourced.
case "${0##*/}" in
	dnsmasq.sh) clat_dnsmasq_main "$@" ;;
esac
