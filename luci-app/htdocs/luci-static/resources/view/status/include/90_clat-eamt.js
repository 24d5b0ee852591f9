'use strict';
'require baseclass';
'require rpc';

/*
 * A few lines on LuCI's Status > Overview: is the daemon up, how many mappings, and the live
 * flows native vs through the NAT64.  The full picture is Services > CLAT EAMT > Status.
 *
 * LuCI's status index does not guard its includes: an exception here would take the whole
 * Overview page down.  So load() never rejects and render() never throws, whatever the object
 * answers (rpc.declare resolves with the bare ubus status number when a call fails, the object
 * answers {"error": ...} when the daemon is stopped, a newer daemon may change fields): what
 * cannot be read is shown as a line saying what to do.
 */

var callStatus = rpc.declare({ object: 'clat-eamt', method: 'status' });

function isObject(v) {
	return v != null && typeof v == 'object' && !Array.isArray(v);
}

function number(v) {
	return typeof v == 'number' && isFinite(v) ? v : 0;
}

// [label, text] rows for one reply of `status`.
function rows(st) {
	if (typeof st == 'number')
		return [ [ _('Daemon'), _('cannot ask the daemon (ubus status %d): see Services > CLAT EAMT > Status').format(st) ] ];
	if (!isObject(st))
		return [ [ _('Daemon'), _('cannot ask the daemon: see Services > CLAT EAMT > Status') ] ];
	if (st.error != null) {
		if (isObject(st.error) && st.error.code == 'not-running')
			return [ [ _('Daemon'), _('not running') ] ];
		return [ [ _('Daemon'), _('cannot ask the daemon: %s').format(isObject(st.error) ? String(st.error.message) : String(st.error)) ] ];
	}
	var dp = isObject(st.dataplane) ? st.dataplane : {};
	var flows = isObject(st.flows) ? st.flows : null;
	return [
		[ _('Daemon'), (dp.error ? _('running, translator failing: %s') : _('running, translator %s ok'))
			.format(String(dp.error ? (isObject(dp.error) ? JSON.stringify(dp.error) : dp.error) : (dp.name || '?'))) ],
		[ _('Mappings'), String(number(st.mappings)) ],
		[ _('Live flows'), flows ? _('%d native (EAM), %d through the NAT64').format(number(flows.native), number(flows.nat64))
			: _('unknown') ]
	];
}

return baseclass.extend({
	title: _('CLAT EAMT'),

	load: function() {
		// A rejected call (rpc.js: a JSON-RPC error of uhttpd, -32000 "Object not found" or
		// -32002 "Access denied") is shown as such, never passed on.
		return callStatus().catch(function(err) {
			return { rejected: String(err && err.message || err) };
		});
	},

	render: function(st) {
		var lines;
		try {
			lines = rows(st);
		}
		catch (err) {
			lines = [ [ _('Daemon'), _('cannot show its status: %s').format(String(err && err.message || err)) ] ];
		}
		if (isObject(st) && st.rejected != null)
			lines = [ [ _('Daemon'), /Access denied/.test(st.rejected)
				? _('this login may not read clat-eamt: it needs read access of the access group luci-app-clat-eamt')
				: /Object not found/.test(st.rejected)
				? _('cannot ask the daemon: there is no ubus object clat-eamt (is the clat-eamt package installed? then: service rpcd restart)')
				: _('cannot ask the daemon: %s').format(st.rejected) ] ];
		return E('table', { 'class': 'table', 'id': 'clat-eamt-overview' }, lines.map(function(row) {
			return E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td left', 'width': '33%' }, [ row[0] ]),
				E('td', { 'class': 'td left' }, [ row[1] ])
			]);
		}));
	}
});
