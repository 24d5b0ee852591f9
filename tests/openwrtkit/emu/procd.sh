# Emulated /lib/functions/procd.sh (test kit).  Instead of sending JSON to procd over ubus it
# writes what the init script asks for, one tab-separated line per call, to
# $CLAT_EAMT_TESTROOT/var/run/procd/SERVICE.service (replaced by each start, as `ubus call
# service set` replaces the service); calls that act (kill, signal) go to procd.log and are
# carried out on the pid the test kit wrote to SERVICE.pid when it started the instance.
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
procd_open_instance() { _procd_rec instance "${1:-instance1}"; }
procd_set_param() { _procd_rec param "$@"; }
procd_append_param() { _procd_rec param "$@"; }
procd_close_instance() { _procd_rec end_instance; }
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
	_procd_signal_pid "$1" TERM
}
procd_send_signal() {
	# procd's default signal is SIGHUP.
	local signal="${3:-HUP}"
	_procd_log signal "$1" "${2:-*}" "$signal"
	_procd_signal_pid "$1" "$signal"
}
procd_running() { _procd_signal_pid "$1" 0; }
