# Emulated /lib/functions/procd.sh (test kit).  Instead of sending JSON to procd over ubus it
# writes what the init script asks for, one tab-separated line per call, to
# $CLAT_EAMT_TESTROOT/var/run/procd/SERVICE.service (replaced by each start, as `ubus call
# service set` replaces the service); calls that act (kill, signal) go to procd.log and are
# carried out on the pid the test kit (tests/openwrtkit/procd.py) wrote to SERVICE.pid when it
# started the instance.  Rules modelled from OpenWrt's package/system/procd/files/procd.sh:
# - _procd_close_instance: `respawn` without values gets system.@service[0].respawn_threshold,
#   respawn_timeout, respawn_retry from UCI, else 3600 5 5;
# - procd_kill is `ubus call service delete` (procd then stops the instance: SIGTERM to its
#   pid, SIGKILL after term_timeout; procd's service/instance.c instance_stop): here a marker
#   SERVICE.halt tells the kit's supervisor that the exit is a stop, not a crash;
# - procd_send_signal sends SIGHUP unless told otherwise (procd's service_handle_signal).
# shellcheck shell=ash
# shellcheck disable=SC3043

_procd_dir="$CLAT_EAMT_TESTROOT/var/run/procd"
_procd_service=

_procd_rec() {
	local IFS="	"
	printf '%s\n' "$*" >>"$_procd_dir/$_procd_service.new"
}

_procd_log() {
	local IFS="	"
	printf '%s\n' "$*" >>"$_procd_dir/procd.log"
}

_procd_signal_pid() {
	local pid
	pid="$(cat "$_procd_dir/$1.pid" 2>/dev/null)" || return 0
	[ -n "$pid" ] && kill -s "$2" "$pid" 2>/dev/null
	return 0
}

procd_lock() { :; }
procd_open_service() {
	mkdir -p "$_procd_dir"
	_procd_service="$1"
	: >"$_procd_dir/$1.new"
	_procd_rec service "$1" "$2"
}
procd_close_service() {
	service_triggers
	mv "$_procd_dir/$_procd_service.new" "$_procd_dir/$_procd_service.service"
	_procd_log set "$_procd_service"
}
procd_open_instance() {
	_procd_respawn_defaults=
	_procd_rec instance "${1:-instance1}"
}
procd_set_param() {
	if [ "$1" = respawn ] && [ $# -eq 1 ]; then
		_procd_respawn_defaults=1
	fi
	_procd_rec param "$@"
}
procd_append_param() { _procd_rec param "$@"; }
procd_close_instance() {
	local threshold timeout retry
	if [ -n "$_procd_respawn_defaults" ]; then
		threshold="$(uci -q get system.@service[0].respawn_threshold)"
		timeout="$(uci -q get system.@service[0].respawn_timeout)"
		retry="$(uci -q get system.@service[0].respawn_retry)"
		_procd_rec param respawn "${threshold:-3600}" "${timeout:-5}" "${retry:-5}"
	fi
	_procd_rec end_instance
}
procd_add_reload_trigger() {
	local file
	for file in "$@"; do
		_procd_rec trigger config.change "$file" "/etc/init.d/$_procd_service" reload
	done
}
procd_add_interface_trigger() { _procd_rec trigger "$@"; }
procd_add_config_trigger() { _procd_rec trigger "$@"; }
procd_add_raw_trigger() { _procd_rec trigger "$@"; }
procd_kill() {
	_procd_log delete "$1" "${2:-*}"
	: >"$_procd_dir/$1.halt"
	_procd_signal_pid "$1" TERM
}
procd_send_signal() {
	# procd's default signal is SIGHUP.
	local signal="${3:-HUP}"
	_procd_log signal "$1" "${2:-*}" "$signal"
	_procd_signal_pid "$1" "$signal"
}
procd_running() { _procd_signal_pid "$1" 0; }
