'use strict';
'require baseclass';
'require rpc';

/*
 * A few lines on LuCI's Status > Overview: is the daemon up, how many mappings, and the live
 * flows native vs through the NAT64.  The full picture is Services > CLAT EAMT > Status.
 */

var callStatus = rpc.declare({ object: 'clat-eamt', method: 'status' });

return baseclass.extend({
	title: _('CLAT EAMT'),

	load: function() {
		// The overview page must render without the daemon: a missing object means "stopped".
		return L.resolveDefault(callStatus(), null);
	},

	render: function(st) {
		var rows;
		if (!st)
			rows = [ [ _('Daemon'), _('not running') ] ];
		else
			rows = [
				[ _('Daemon'), (st.dataplane.error ? _('running, translator failing: %s') : _('running, translator %s ok'))
					.format(st.dataplane.error || st.dataplane.name) ],
				[ _('Mappings'), String(st.mappings) ],
				[ _('Live flows'), st.flows ? _('%d native (EAM), %d through the NAT64').format(st.flows.native, st.flows.nat64)
					: _('unknown') ]
			];
		return E('table', { 'class': 'table', 'id': 'clat-eamt-overview' }, rows.map(function(row) {
			return E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td left', 'width': '33%' }, [ row[0] ]),
				E('td', { 'class': 'td left' }, [ row[1] ])
			]);
		}));
	}
});
