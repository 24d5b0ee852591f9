'use strict';
'require view';
'require rpc';
'require poll';
'require ui';

/*
 * Services > CLAT EAMT > Status: a thin client of the daemon's ubus object `clat-eamt`.
 * Every figure on the page comes from its methods (status, mappings, hosts, history), so the
 * page shows what `clat-eamt status` shows on the router's shell; nothing is computed here
 * beyond formatting, sorting and filtering.
 *
 * Anything can come back: LuCI's rpc.declare resolves with the bare ubus status number when a
 * call fails (no `reject`), the object answers {"error": ...} when the daemon refuses or is not
 * running, and a newer daemon may add or change fields.  So each reply is checked (replyProblem)
 * before it is used, every field is read with a default (field, text), and what cannot be shown
 * becomes a note saying what to do, never an exception.
 */

// The ubus object clat-eamt (the clat-eamt package's rpcd plugin, in front of the daemon).
// One call per refresh: overview holds everything the page shows (status, a page of the
// mapping table, the LAN hosts, the flow history).
var callOverview = rpc.declare({ object: 'clat-eamt', method: 'overview', params: [ 'limit' ] });
var callDel = rpc.declare({ object: 'clat-eamt', method: 'del', params: [ 'ipv4' ] });
var callFlush = rpc.declare({ object: 'clat-eamt', method: 'flush' });
var callRcList = rpc.declare({ object: 'rc', method: 'list', params: [ 'name' ], expect: { '': {} } });
// rpcd's answer whether this login's session may call a method (session.c rpc_handle_access),
// the check form.js makes for UCI: buttons a login cannot use are not shown.
var callAccess = rpc.declare({ object: 'session', method: 'access', params: [ 'scope', 'object', 'function' ], expect: { access: false } });
// ubus status codes (libubus ubusmsg.h), as rpc.declare resolves them when a call fails
var UBUS_STATUS = { 1: 'invalid command', 2: 'invalid argument', 3: 'method not found', 4: 'not found',
	5: 'no data', 6: 'permission denied', 7: 'timeout', 8: 'not supported', 9: 'unknown error', 10: 'connection failed' };
// Mapping rows one refresh asks for; the page says how many there are beyond them.
var ROWS = 200;
var callRcInit = rpc.declare({ object: 'rc', method: 'init', params: [ 'name', 'action' ] });

var POLL_SECONDS = 5;
// The parts of `status` this page shows in their own rows.
var KNOWN_STATUS = [ 'version', 'uptime', 'listen', 'enabled', 'dataplane', 'pref64', 'upstreams', 'hosts', 'flows',
	'summary', 'counters', 'mappings', 'restart_needed', 'ubus', 'control', 'memory', 'provider', 'ipv6_only',
	'safety' ];
var CHART_W = 1000, CHART_H = 180, PAD_L = 36, PAD_B = 20, SPAN = 3600;

// The columns of the mappings table: the row field each sorts on, and how a row shows it.
var COLUMNS = [
	{ key: 'fqdn', title: _('FQDN'), show: function(r) { return L.toArray(r.fqdns).length ? L.toArray(r.fqdns).join(', ') : (r.comment || '-'); } },
	{ key: 'ipv4', title: _('IPv4'), addr: true },
	{ key: 'ipv6', title: _('IPv6'), addr: true },
	{ key: 'state', title: _('State'), show: function(r) { var why = r.stale_reason || (r.suspended ? _('suspended: %s').format(r.suspended) : null); return why ? '%s (%s)'.format(r.state, why) : r.state; } },
	{ key: 'origin', title: _('Origin') },
	{ key: 'expires_in', title: _('TTL left'), num: true, show: function(r) { return r.expires_in == null ? '-' : _('%d s').format(Math.round(r.expires_in)); } },
	{ key: 'flows', title: _('Live flows'), num: true }
];

function duration(seconds) {
	var s = Math.floor(seconds), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
	if (d)
		return _('%dd %dh').format(d, h);
	if (h)
		return _('%dh %dm').format(h, m);
	return m ? _('%dm %ds').format(m, s % 60) : _('%ds').format(s);
}

// Addresses sort by their numbers, not as text (192.0.2.9 before 192.0.2.10).
function addrKey(a) {
	return String(a || '').replace(/(?:^|[.:])([0-9a-fA-F]{1,4})/g, function(m0, m1) {
		return ('000' + m1.toLowerCase()).substr(-4);
	});
}

function isObject(v) {
	return v != null && typeof v == 'object' && !Array.isArray(v);
}

// obj.a.b..., or `def` when a step is missing or the value is of another type than `def`.
function field(obj, path, def) {
	var v = obj;
	for (var i = 0; i < path.length; i++)
		v = isObject(v) ? v[path[i]] : undefined;
	if (v == null || (def != null && typeof v != typeof def) || (Array.isArray(def) && !Array.isArray(v)))
		return def;
	return v;
}

// Any value as a short text: a string or number as it is, an object by its error, reason,
// state or name, or its fields.
function text(v) {
	if (v == null)
		return '-';
	if (!isObject(v))
		return Array.isArray(v) ? v.map(text).join(', ') : String(v);
	var pick = v.error || v.reason || v.state || v.name;
	if (pick != null && !isObject(pick))
		return String(pick);
	return Object.keys(v).map(function(k) { return k + ': ' + text(v[k]); }).join(', ');
}

// Why a reply of the object is not an answer, as { kind, message }; null when it is one.
// kind 'stopped': the daemon is not running (the object says so); 'error': anything else.
function replyProblem(reply) {
	if (typeof reply == 'number')
		return { kind: 'error', message: _('the ubus object clat-eamt answered with ubus status %d (%s)').format(reply, UBUS_STATUS[reply] || _('unknown')) };
	if (!isObject(reply))
		return { kind: 'error', message: _('the ubus object clat-eamt gave an answer that is not an object: %s').format(JSON.stringify(reply)) };
	if (reply.error != null) {
		var code = field(reply, [ 'error', 'code' ], ''), message = field(reply, [ 'error', 'message' ], text(reply.error));
		return { kind: code == 'not-running' ? 'stopped' : 'error', message: message };
	}
	return null;
}

// A rejected call: a JSON-RPC error from uhttpd (rpc.js rejects with its message: -32000
// "Object not found", -32002 "Access denied", uhttpd ubus.c json_errors), or the network.
// `access` says which part of the app's access group the call needs: 'read' or 'write'.
function rejectProblem(access, err) {
	var message = String(err && err.message || err);
	if (/Object not found/.test(message))
		return { kind: 'error', message: _('there is no ubus object clat-eamt: rpcd has not loaded the plugin of the clat-eamt package (run service rpcd restart, or reinstall clat-eamt)') };
	if (/Access denied/.test(message))
		return { kind: 'error', message: access == 'write'
			? _('your login may read clat-eamt but not change it: it needs write access of the access group luci-app-clat-eamt')
			: _('your login may not read clat-eamt: it needs read access of the access group luci-app-clat-eamt') };
	return { kind: 'error', message: message };
}

// Everything one refresh needs, in one call.  When there is no answer, rc tells whether the
// service exists and is enabled.
function fetchAll() {
	return callOverview(String(ROWS)).then(function(reply) {
		var problem = replyProblem(reply);
		if (problem)
			return problem;
		return {
			status: field(reply, [ 'status' ], {}),
			mappings: field(reply, [ 'mappings', 'rows' ], []),
			mappingsTotal: field(reply, [ 'mappings', 'total' ], 0),
			hosts: field(reply, [ 'hosts', 'rows' ], []),
			history: field(reply, [ 'history' ], {})
		};
	}, L.bind(rejectProblem, null, 'read')).then(function(data) {
		if (!data.kind)
			return data;
		return L.resolveDefault(callRcList('clat-eamt'), {}).then(function(rc) {
			return { problem: data, service: isObject(rc) && isObject(rc['clat-eamt']) ? rc['clat-eamt'] : null };
		});
	});
}

// Only a static entry that is still in force can be deleted: a deleted one stays in the table,
// stale, until its last connection ends, and a second delete would be refused.
function deletable(row) {
	return row.origin == 'static' && row.state == 'valid';
}

// The operator's table on one line, as `clat-eamt status` says it (control/views.py
// provider_text): where from, what is in place, the last fetch or push, the next fetch.
function providerText(p) {
	var last = field(p, [ 'last' ], null), serial = field(p, [ 'serial' ], null), when = field(p, [ 'next_fetch_in' ], null);
	var held = serial == null ? _('no table yet')
		: _('serial %d, %d entries (%d installed)').format(serial, field(p, [ 'entries' ], 0), field(p, [ 'installed' ], 0));
	var said = !isObject(last) ? _('not fetched yet')
		: _('last %s %s').format(text(last.via), text(last.result)) + (last.error ? ': ' + text(last.error) : '');
	return '%s%s: %s; %s%s'.format(field(p, [ 'url' ], '') || _('pushed only'), field(p, [ 'signed' ], false) ? ', ' + _('signed') : '',
		held, said, when == null ? '' : '; ' + _('next fetch in %s').format(duration(when)));
}

// How full the daemon's bounded memories are (README, Security): the answers seen in full,
// the others as "used of capacity".
function memoryText(m) {
	var seen = field(m, [ 'answers_seen' ], null), parts = [];
	if (isObject(seen)) {
		parts.push(_('answers seen %d of %d (IPv4, name) pairs, %d of %d KB of names').format(field(seen, [ 'pairs' ], 0),
			field(seen, [ 'capacity' ], 0), Math.floor(field(seen, [ 'bytes' ], 0) / 1024), Math.floor(field(seen, [ 'max_bytes' ], 0) / 1024))
			+ (field(seen, [ 'blind_for' ], 0) ? '; ' + _('FULL: new mappings refused for %d s more').format(seen.blind_for) : ''));
	}
	var names = { aaaa_kept: _('AAAA kept'), answers_read: _('answers read'), decisions: _('decisions') };
	Object.keys(m).filter(function(k) { return k != 'answers_seen'; }).sort().forEach(function(k) {
		var v = m[k];
		parts.push(Array.isArray(v) && v.length == 2 ? _('%s %d of %d').format(names[k] || k, v[0], v[1]) : k + ' ' + text(v));
	});
	return parts.join(', ');
}

function note(kind, children) {
	return E('div', { 'class': 'alert-message ' + kind }, children);
}

function keyValueTable(rows) {
	return E('table', { 'class': 'table' }, rows.map(function(row) {
		// Values go in as text nodes (arrays): names and messages come from DNS and the daemon.
		return E('tr', { 'class': 'tr' }, [
			E('td', { 'class': 'td left', 'width': '33%' }, [ row[0] ]),
			E('td', { 'class': 'td left' }, [ row[1] ])
		]);
	}));
}

return view.extend({
	sortKey: 'ipv4',
	sortDesc: false,
	filterText: '',
	data: null,
	may: { del: false, flush: false, init: false },  // what this login may do (load())

	load: function() {
		var may = function(obj, fn) { return L.resolveDefault(callAccess('ubus', obj, fn), false); };
		return Promise.all([ fetchAll(), may('clat-eamt', 'del'), may('clat-eamt', 'flush'), may('rc', 'init') ]).then(L.bind(function(r) {
			this.may = { del: r[1] === true, flush: r[2] === true, init: r[3] === true };
			return r[0];
		}, this));
	},

	handleServiceAction: function(action) {
		return callRcInit('clat-eamt', action).then(L.bind(function(res) {
			if (typeof res == 'number' && res != 0)
				throw new Error(_('rc init answered ubus status %d (%s)').format(res, UBUS_STATUS[res] || _('unknown')));
			// procd starts the daemon in the background: give it a moment to register on ubus.
			return new Promise(function(resolve) { window.setTimeout(resolve, 2000); });
		}, this)).then(L.bind(this.refresh, this)).catch(function(err) {
			ui.addNotification(null, E('p', [ _('Could not %s clat-eamt: %s').format(action, err.message || err) ]), 'error');
		});
	},

	handleDelete: function(ipv4) {
		return callDel(ipv4).then(replyProblem, L.bind(rejectProblem, null, 'write')).then(L.bind(function(problem) {
			if (problem)
				ui.addNotification(null, E('p', [ _('Not deleted: %s').format(problem.message) ]), 'error');
			else  // the daemon revives a configured entry on its next reload (runtime/settings)
				ui.addNotification(null, E('p', { 'class': 'clat-eamt-deleted' }, [ _('%s deleted: new connections take the NAT64, running ones keep their path. An entry of the configuration comes back when it is next applied or reloaded (on every WAN event): remove it on the Settings page to delete it for good.').format(ipv4) ]), 'info');
			return this.refresh();
		}, this));
	},

	handleFlush: function() {
		return callFlush().then(function(res) {
			return replyProblem(res) || res;
		}, L.bind(rejectProblem, null, 'write')).then(L.bind(function(res) {
			if (res.kind)
				ui.addNotification(null, E('p', [ _('Not flushed: %s').format(res.message) ]), 'error');
			else
				ui.addNotification(null, E('p', [ _('%d learned entries retired; running connections keep their path.').format(field(res, [ 'flushed' ], 0)) ]), 'info');
			return this.refresh();
		}, this));
	},

	handleSort: function(key) {
		this.sortDesc = (this.sortKey == key) ? !this.sortDesc : false;
		this.sortKey = key;
		this.renderMappings();
	},

	refresh: function() {
		return fetchAll().then(L.bind(this.update, this));
	},

	// The poll's first run comes right after render (LuCI's Poll runs a new function at once),
	// when load() has just fetched: skip it, so a page load asks once.
	poll: function() {
		if (this.fresh) {
			this.fresh = false;
			return Promise.resolve();
		}
		return this.refresh();
	},

	renderNotes: function(data) {
		var notes = [];
		if (data.problem) {
			if (data.problem.kind == 'stopped')
				notes.push(note('warning', [
					E('p', [ _('Nothing to show: %s').format(data.problem.message) ]),
					(data.service && !data.service.enabled) ? E('p', [ _('It is also disabled at boot: enable it on System > Startup.') ]) : '',
					!this.may.init ? E('p', [ _('Your login may not start it (it needs write access of the access group luci-app-clat-eamt).') ]) : E('button', { 'class': 'btn cbi-button cbi-button-apply', 'data-action': 'start',
						'click': ui.createHandlerFn(this, 'handleServiceAction', 'start') }, [ _('Start clat-eamt') ])
				]));
			else
				notes.push(note('error', [
					E('p', { 'class': 'clat-eamt-cannot-ask' }, [ _('Cannot ask the clat-eamt daemon: %s').format(data.problem.message) ]),
					E('p', [ _('On the router, %s shows what the daemon answers and %s why it does not.').format('ubus call clat-eamt status', 'logread -e clat-eamt') ]),
					(this.may.init && data.service && !data.service.running) ? E('button', { 'class': 'btn cbi-button cbi-button-apply', 'data-action': 'restart',
						'click': ui.createHandlerFn(this, 'handleServiceAction', 'restart') }, [ _('Restart clat-eamt') ]) : ''
				]));
			return notes;
		}
		var st = data.status, dpError = field(st, [ 'dataplane', 'error' ], null);
		if (dpError) {
			dpError = text(dpError);
			var fix = /tayga is not installed/.test(dpError) ? 'opkg install tayga'
				: /jool/i.test(dpError) && /not installed|kmod/.test(dpError) ? 'opkg install jool-tools-netfilter kmod-jool-netfilter' : null;
			if (/ClatNotFound/.test(dpError))  // translator auto/external: nothing to steer on
				notes.push(note('warning', [
					E('p', [ _('No CLAT to steer on, so nothing is mapped (DNS works as before): %s').format(dpError) ]),
					E('p', [ _('clat-eamt uses the CLAT the router runs: an interface with protocol 464xlat (package 464xlat), or the device named in Settings > CLAT device.') ])
				]));
			else
				notes.push(note('error', [
					E('p', [ _('The translator is not working: %s').format(dpError) ]),
					E('p', [ fix ? _('Install it on the router, then restart clat-eamt: %s').format(fix)
						: _('The system log says more: logread -e clat-eamt') ])
				]));
		}
		var restart = field(st, [ 'restart_needed' ], []);
		if (restart.length)
			notes.push(note('warning', [
				E('p', [ _('Saved options that take effect only after a restart: %s').format(restart.map(text).join(', ')) ]),
				!this.may.init ? '' : E('button', { 'class': 'btn cbi-button cbi-button-apply', 'data-action': 'restart',
					'click': ui.createHandlerFn(this, 'handleServiceAction', 'restart') }, [ _('Restart clat-eamt') ])
			]));
		if (field(st, [ 'enabled' ], true) === false)
			notes.push(note('notice', [ E('p', [ _('Optimization is disabled (option enabled 0): the daemon forwards DNS and maps nothing.') ]) ]));
		return notes;
	},

	renderHealth: function(st) {
		var dp = field(st, [ 'dataplane' ], {}), up = field(st, [ 'upstreams' ], {});
		var servers = field(up, [ 'servers' ], []).map(function(u) {
			return text(field(u, [ 'server' ], '?')) + ' ' + text(field(u, [ 'state' ], '')) + (field(u, [ 'preferred' ], false) ? ' ' + _('(preferred)') : '');
		}).join(', ') || _('none');
		var flows = isObject(st.flows) ? _('%d native (EAM), %d through the NAT64').format(field(st, [ 'flows', 'native' ], 0), field(st, [ 'flows', 'nat64' ], 0))
			: _('unknown (conntrack unreadable)');
		var prefixes = field(st, [ 'pref64', 'prefixes' ], []).map(text).join(', ');
		var rows = [
			[ _('Daemon'), _('clat-eamt %s, up %s, DNS on %s').format(text(st.version), duration(field(st, [ 'uptime' ], 0)), text(st.listen)) ],
			[ _('Translator'), '%s: %s'.format(text(dp.name), dp.error ? text(dp.error) : dp.last_error ? text(dp.last_error) : _('ok')) ],
			[ _('CLAT'), isObject(dp.clat) && dp.clat.device
				? _('%s (%s, %s), Pref64 %s, nft via %s').format(text(dp.clat.device), text(dp.clat.kind), text(dp.clat.found_by), text(dp.clat.pref64), text(dp.nft))
				: isObject(dp.clat) ? _('Jool instance %s (EAM), nft via %s').format(text(dp.clat.instance), text(dp.nft)) : _('none in use') ],
			[ _('Pref64'), _('%s (source: %s)').format(prefixes || _('none yet: nothing is mapped until one is known'), text(field(st, [ 'pref64', 'source' ], '-'))) ],
			[ _('Upstreams'), _('%s (from %s)').format(servers, text(up.source)) + (up.problem ? '; ' + text(up.problem) : '') ],
			[ _('LAN hosts'), _('%d IPv4-only, %d dual-stack').format(field(st, [ 'hosts', 'ipv4_only' ], 0), field(st, [ 'hosts', 'dual_stack' ], 0)) ],
			[ _('Live flows'), flows ]
		];
		if (isObject(st.memory))
			rows.push([ _('Memory'), memoryText(st.memory) ]);
		// Like `clat-eamt status`: shown once a table is configured or has been offered.
		if (isObject(st.provider) && (st.provider.url || st.provider.last))
			rows.push([ _('Operator\'s table'), providerText(st.provider) ]);
		// Parts a newer daemon reports that this page does not know yet (the CLAT found, or
		// why none): shown as text, so that they need no change here.
		Object.keys(st).filter(function(k) { return KNOWN_STATUS.indexOf(k) == -1 && isObject(st[k]); }).forEach(function(k) {
			rows.push([ k, text(st[k]) ]);
		});
		return keyValueTable(rows);
	},

	renderCounters: function(st) {
		var sum = field(st, [ 'summary' ], {}), maps = field(sum, [ 'mappings' ], {}), refused = field(maps, [ 'refused' ], {});
		var refusedText = Object.keys(refused).map(function(k) { return k + ' ' + text(refused[k]); }).join(', ') || _('none');
		return keyValueTable([
			[ _('DNS queries'), _('%d queries, %d A, %d A with AAAA').format(sum.queries || 0, sum.a_queries || 0, sum.a_with_aaaa || 0) ],
			[ _('Mappings'), _('%d now; created %d, refreshed %d, stale %d (expired %d), deleted %d').format(
				field(st, [ 'mappings' ], 0), maps.created || 0, maps.refreshed || 0, maps.stale || 0, maps.expired || 0, maps.deleted || 0) ],
			[ _('Refused'), refusedText ]
		].concat(field(st, [ 'ipv6_only', 'enabled' ], false) ? [
			[ _('IPv6-only names'), _('%d mappings now, %d A answers made, %d pool addresses in quarantine').format(
				field(st, [ 'ipv6_only', 'mappings' ], 0), field(st, [ 'ipv6_only', 'answers' ], 0), field(st, [ 'ipv6_only', 'quarantined' ], 0)) ]
		] : [], [
			[ _('Dataplane'), _('%d apply failures, %d answers released unmapped').format(sum.apply_failures || 0, sum.released_unmapped || 0) ],
			[ _('Safety net'), this.safetyText(field(st, [ 'safety' ], null), field(sum, [ 'safety' ], {})) ]
		]));
	},

	// The safety net (issue 25): the brake first (steering suspended router-wide shows here),
	// then what it rescued and learnt, as `clat-eamt status` says it.
	safetyText: function(net, n) {
		if (isObject(net) && !net.enabled)
			return _('off');
		var brake = isObject(net) ? field(net, [ 'brake', 'state' ], '-') : '-';
		var retry = isObject(net) ? field(net, [ 'brake', 'retry_in_s' ], null) : null;
		var head = brake == 'engaged'
			? _('BRAKE ENGAGED: steering suspended (trial in %s s)').format(text(retry))
			: _('brake %s').format(text(brake));
		return _('%s; rescued %d (%d conntrack entries deleted), stale by broken %d, suspended %d, verdicts working %d broken %d, probes %d, brake engaged %d released %d').format(
			head, n.rescued || 0, n.flows_deleted || 0, n.stale_by_broken || 0, n.suspended || 0, n.verdicts_working || 0, n.verdicts_broken || 0, n.probes || 0,
			n.brake_engaged || 0, n.brake_released || 0) + this.brokenText(net) + (isObject(net) && net.error ? '; ' + text(net.error) : '');
	},

	// The destinations left to the NAT64 for now, with their age (at most three named).
	brokenText: function(net) {
		var broken = (isObject(net) ? L.toArray(net.verdicts) : []).filter(function(v) { return isObject(v) && v.verdict == 'broken'; });
		if (!broken.length)
			return '';
		var named = broken.slice(0, 3).map(function(v) {
			return _('%s (for %s s, retry in %s s)').format(text(v.target), text(v.age_s), text(v.retry_in_s));
		}).join(', ');
		return '; ' + _('broken now: %s').format(named) + (broken.length > 3 ? ' ' + _('and %d more').format(broken.length - 3) : '');
	},

	// Every counter the daemon keeps, by its name, as `status` has them: a counter a newer
	// daemon adds shows here without a change to this page.
	renderAllCounters: function(st) {
		var counters = field(st, [ 'counters' ], {});
		var rows = Object.keys(counters).sort().map(function(k) { return [ k, text(counters[k]) ]; });
		return rows.length ? keyValueTable(rows) : E('p', [ _('No counters yet.') ]);
	},

	// The last hour of flows as two lines.  Built as SVG markup from numbers only (E() parses
	// a string starting with '<' as HTML, which puts <svg> in the SVG namespace).
	renderChart: function(history) {
		var points = field(history, [ 'points' ], []).filter(function(p) {
			return isObject(p) && typeof p.time == 'number' && typeof p.native == 'number' && typeof p.nat64 == 'number';
		});
		if (!points.length)
			return E('p', { 'class': 'clat-eamt-chart-empty' }, [ _('No samples yet: the daemon counts live flows every %d s.').format(field(history, [ 'interval' ], 30)) ]);
		var end = Math.max.apply(null, points.map(function(p) { return p.time; }));
		var top = Math.max(1, Math.max.apply(null, points.map(function(p) { return Math.max(p.native, p.nat64); })));
		var x = function(t) { return (PAD_L + (CHART_W - PAD_L - 4) * (1 - (end - t) / SPAN)).toFixed(1); };
		var y = function(v) { return (4 + (CHART_H - PAD_B - 8) * (1 - v / top)).toFixed(1); };
		// NAT64 is drawn first and wider, so equal counts still show both lines.
		var series = function(field, color, width) {
			var xy = points.map(function(p) { return x(p.time) + ',' + y(p[field]); });
			var last = xy[xy.length - 1].split(',');
			return '<polyline class="%s" fill="none" stroke="%s" stroke-width="%d" points="%s"/>'.format(field, color, width, xy.join(' '))
				+ '<circle class="%s" cx="%s" cy="%s" r="%d" fill="%s"/>'.format(field, last[0], last[1], width + 1, color);
		};
		var base = CHART_H - PAD_B - 4;
		return E('<svg class="clat-eamt-chart" xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 ' + CHART_W + ' ' + CHART_H + '">'
			+ '<g font-size="11" fill="#666">'
			+ '<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#ccc"/>'.format(PAD_L, base, CHART_W - 4, base)
			+ '<line x1="%d" y1="4" x2="%d" y2="4" stroke="#eee"/>'.format(PAD_L, CHART_W - 4)
			+ '<text x="%d" y="12" text-anchor="end">%d</text>'.format(PAD_L - 4, top)
			+ '<text x="%d" y="%s" text-anchor="end">0</text>'.format(PAD_L - 4, base)
			+ '<text x="%d" y="%d">-60 min</text>'.format(PAD_L, CHART_H - 4)
			+ '<text x="%d" y="%d" text-anchor="middle">-30 min</text>'.format((PAD_L + CHART_W) / 2, CHART_H - 4)
			+ '<text x="%d" y="%d" text-anchor="end">now</text>'.format(CHART_W - 4, CHART_H - 4)
			+ '</g>' + series('nat64', '#e08a00', 5) + series('native', '#2a8c3c', 2) + '</svg>');
	},

	renderMappings: function() {
		var rows = ((this.data && this.data.mappings) || []).filter(isObject), filter = this.filterText.toLowerCase();
		var col = COLUMNS.filter(L.bind(function(c) { return c.key == this.sortKey; }, this))[0] || COLUMNS[1];
		var value = function(r) { return col.num ? (r[col.key] == null ? Infinity : +r[col.key]) : col.addr ? addrKey(r[col.key]) : String(col.show ? col.show(r) : r[col.key]); };
		var sign = this.sortDesc ? -1 : 1;
		rows = rows.filter(function(r) {
			return !filter || [ L.toArray(r.fqdns).join(' '), r.ipv4, r.ipv6, r.state, r.origin, r.comment ].join(' ').toLowerCase().indexOf(filter) != -1;
		}).sort(function(a, b) { var va = value(a), vb = value(b); return va < vb ? -sign : va > vb ? sign : 0; });

		var head = E('tr', { 'class': 'tr table-titles' }, COLUMNS.map(L.bind(function(c) {
			var mark = (c.key == this.sortKey) ? (this.sortDesc ? ' \u25bc' : ' \u25b2') : '';
			return E('th', { 'class': 'th', 'style': 'cursor:pointer', 'title': _('Sort by this column'),
				'data-sort': c.key, 'click': L.bind(this.handleSort, this, c.key) }, [ c.title + mark ]);
		}, this)).concat([ E('th', { 'class': 'th' }, [ _('Action') ]) ]));

		var body = rows.map(L.bind(function(r) {
			return E('tr', { 'class': 'tr', 'data-ipv4': r.ipv4 }, COLUMNS.map(function(c) {
				return E('td', { 'class': 'td', 'data-title': c.title }, [ String(c.show ? c.show(r) : r[c.key]) ]);
			}).concat([ E('td', { 'class': 'td' }, (this.may.del && deletable(r)) ? [
				E('button', { 'class': 'btn cbi-button cbi-button-remove', 'data-action': 'del',
					'click': ui.createHandlerFn(this, 'handleDelete', r.ipv4) }, [ _('Delete') ])
			] : []) ]));
		}, this));
		if (!body.length)
			body = [ E('tr', { 'class': 'tr placeholder' }, [ E('td', { 'class': 'td', 'colspan': COLUMNS.length + 1 }, [
				this.data && this.data.mappings && this.data.mappings.length ? _('No mapping matches the filter.')
					: _('No mappings yet: they appear when an IPv4-only LAN host asks DNS for a name that also has an IPv6 address.') ]) ]) ];
		var total = (this.data && this.data.mappingsTotal) || 0, shown = ((this.data && this.data.mappings) || []).length;
		L.dom.content(this.mappingsNode, [
			E('table', { 'class': 'table', 'id': 'clat-eamt-mappings' }, [ head ].concat(body)),
			total > shown ? E('p', { 'class': 'cbi-section-descr', 'id': 'clat-eamt-mappings-capped' }, [
				_('The first %d of %d mappings (in address order); the whole table: %s').format(shown, total, 'clat-eamt mappings') ]) : ''
		]);
	},

	renderHosts: function(hosts) {
		var rows = L.toArray(hosts).filter(isObject).map(function(h) {
			return E('tr', { 'class': 'tr', 'data-mac': h.mac }, [ h.ipv4 || '-', h.mac,
				{ 'ipv4-only': _('IPv4-only'), 'dual-stack': _('dual-stack') }[h['class']] || _('unknown'),
				text(h.why), _('%ds ago').format(Math.round(field(h, [ 'last_seen' ], 0))) ].map(function(cell) {
				return E('td', { 'class': 'td' }, [ cell ]);
			}));
		});
		if (!rows.length)
			rows = [ E('tr', { 'class': 'tr placeholder' }, [ E('td', { 'class': 'td', 'colspan': 5 }, [ _('No LAN hosts seen yet in the neighbour tables.') ]) ]) ];
		return E('table', { 'class': 'table', 'id': 'clat-eamt-hosts' }, [
			E('tr', { 'class': 'tr table-titles' }, [ _('IPv4'), _('MAC'), _('Class'), _('Why'), _('Last seen') ].map(function(t) {
				return E('th', { 'class': 'th' }, [ t ]);
			}))
		].concat(rows));
	},

	update: function(data) {
		this.data = data;
		L.dom.content(this.notesNode, this.renderNotes(data));
		// Without an answer there is nothing to show below the note that says what to do.
		this.liveNode.style.display = data.problem ? 'none' : '';
		if (data.problem)
			return;
		L.dom.content(this.healthNode, this.renderHealth(data.status));
		L.dom.content(this.countersNode, this.renderCounters(data.status));
		L.dom.content(this.allCountersNode, this.renderAllCounters(data.status));
		L.dom.content(this.chartNode, this.renderChart(data.history));
		L.dom.content(this.hostsNode, this.renderHosts(data.hosts));
		this.renderMappings();
	},

	render: function(data) {
		this.notesNode = E('div', { 'id': 'clat-eamt-notes' });
		this.healthNode = E('div', { 'id': 'clat-eamt-health' });
		this.countersNode = E('div', { 'id': 'clat-eamt-counters' });
		this.allCountersNode = E('div', { 'id': 'clat-eamt-all-counters' });
		this.chartNode = E('div', { 'id': 'clat-eamt-chart' });
		this.mappingsNode = E('div');
		this.hostsNode = E('div');
		var filter = E('input', { 'type': 'search', 'class': 'cbi-input-text', 'id': 'clat-eamt-filter',
			'placeholder': _('Filter: name, address, state'),
			'input': L.bind(function(ev) { this.filterText = ev.target.value; this.renderMappings(); }, this) });

		this.liveNode = E('div', [
			E('h3', [ _('Health') ]), this.healthNode,
			E('h3', [ _('Counters') ]), this.countersNode,
			E('details', [ E('summary', [ _('All counters') ]), this.allCountersNode ]),
			E('h3', [ _('Live flows, last hour') ]),
			E('p', { 'class': 'cbi-section-descr' }, [
				E('span', { 'style': 'color:#2a8c3c' }, [ '\u25a0 ' + _('native (EAM)') ]), '   ',
				E('span', { 'style': 'color:#e08a00' }, [ '\u25a0 ' + _('through the NAT64') ])
			]),
			this.chartNode,
			E('h3', [ _('Mappings') ]),
			E('div', { 'class': 'cbi-section-actions', 'style': 'display:flex;gap:1em;margin-bottom:.5em' }, [
				filter,
				!this.may.flush ? '' : E('button', { 'class': 'btn cbi-button cbi-button-reset', 'data-action': 'flush',
					'title': _('Retire every entry learned from DNS; static entries stay and running connections keep their path'),
					'click': ui.createHandlerFn(this, 'handleFlush') }, [ _('Flush learned entries') ])
			]),
			this.mappingsNode,
			E('h3', [ _('LAN hosts') ]),
			E('p', { 'class': 'cbi-section-descr' }, [ _('Only IPv4-only hosts get mapped answers; dual-stack hosts reach IPv6 servers directly.') ]),
			this.hostsNode
		]);
		this.update(data);
		this.fresh = true;
		poll.add(L.bind(this.poll, this), POLL_SECONDS);

		// No 'cbi-map' class: that would give the page LuCI's Save/Apply footer, and there is no form.
		return E('div', { 'id': 'clat-eamt-status' }, [
			E('h2', [ _('CLAT EAMT: status') ]),
			E('div', { 'class': 'cbi-map-descr' }, [ _('What the daemon reports now, refreshed every %d seconds.').format(POLL_SECONDS) ]),
			this.notesNode,
			this.liveNode
		]);
	},

	handleSave: null,
	handleSaveApply: null,
	handleReset: null
});
