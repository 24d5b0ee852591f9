'use strict';
'require view';
'require form';
'require uci';
'require clat-eamt.schema as schema';
'require clat-eamt.validate as validate';

/*
 * Services > CLAT EAMT > Settings: a form.Map on /etc/config/clat-eamt.
 *
 * Every option comes from clat-eamt/schema.js, which `make docs` generates from the daemon's
 * own option schema: its widget, datatype, check, default and help. A flag or a choice takes
 * its LuCI datatype (the widget offers only words the daemon accepts); every typed field is
 * checked by clat-eamt/validate.js with the option's rule, which does what the daemon's parser
 * does, so the form accepts exactly what the daemon accepts and cannot drift from it
 * (tests/unit/test_luci_validate.py runs one table of values through both). This file only says where each
 * option goes (tab and label) and which options matter for one translator only;
 * tests/unit/test_luci_settings.py runs it against a stand-in of LuCI's form and checks that
 * every schema option appears exactly once, with the schema's datatype.
 *
 * Rules between options (tayga needs clat_ipv6 and a Pref64, a static IPv4 prefix needs as many
 * host bits as its IPv6 prefix, ...) are not repeated here: the daemon checks them when Save &
 * Apply makes it reload, refuses a file with problems and keeps running as it was, so the page
 * tells the user where to look.
 */

var CONFIG = 'clat-eamt';

// Tab name, tab title, and the options of the globals section it shows, in order, with their
// labels.
var TABS = [
	[ 'general', _('General'), {
		enabled: _('Enable'),
		listen: _('Listen address'),
		port: _('Listen port'),
		state_dir: _('State directory'),
		control_socket: _('Control socket')
	} ],
	[ 'translator', _('Translator'), {
		translator: _('Translator'),
		clat_device: _('CLAT device'),
		pref64: _('Pref64 prefixes'),
		pool: _('Mapping pool'),
		tun: _('tayga tun device'),
		clat_ipv4: _('CLAT IPv4 address'),
		clat_ipv6: _('CLAT IPv6 address'),
		tayga_ipv4: _('tayga IPv4 address'),
		tayga_ipv6: _('tayga IPv6 address'),
		jool_instance: _('Jool instance'),
		jool_netns: _('Jool network namespace')
	} ],
	[ 'dns', _('DNS'), {
		upstream: _('Upstream resolvers'),
		resolv_file: _('WAN resolv.conf file'),
		require_dnssec: _('Require DNSSEC'),
		hold_ms: _('AAAA hold time (ms)'),
		apply_timeout_ms: _('Mapping install timeout (ms)'),
		upstream_timeout_ms: _('Resolver timeout (ms)'),
		ttl_min: _('TTL floor (s)'),
		ttl_max: _('TTL ceiling (s)'),
		stale_linger: _('Stale linger (s)')
	} ],
	[ 'hosts', _('Hosts'), {
		host_mode: _('Host detection mode'),
		host_observe: _('Observation time (s)'),
		lan_interface: _('LAN interfaces'),
		client_identity: _('Client identity from dnsmasq')
	} ],
	[ 'limits', _('Limits'), {
		max_entries: _('Learned mappings at most'),
		create_rate: _('Creation rate (per s)'),
		create_burst: _('Creation burst'),
		host_create_rate: _('Creation rate per host (per s)'),
		host_create_burst: _('Creation burst per host')
	} ],
	[ 'names', _('Names and prefixes'), {
		allow_name: _('Allowed names'),
		deny_name: _('Denied names'),
		allow_prefix: _('Allowed prefixes'),
		deny_prefix: _('Denied prefixes'),
		allow_documentation: _('Allow documentation ranges')
	} ],
	[ 'provider', _('Operator\'s table'), {
		provider_url: _('Table URL'),
		provider_key: _('Signing key (usign)'),
		provider_ca: _('Extra CA certificate'),
		provider_max_entries: _('Table entries at most')
	} ]
];

// The columns of the static entries grid.
var STATIC_COLUMNS = {
	ipv4: _('IPv4 destination'),
	ipv6: _('IPv6 target'),
	comment: _('Comment')
};

// Options that only matter for some translators: hidden for the others, but kept in the file
// (retain), so that trying another translator loses nothing.
var TRANSLATOR_ONLY = {
	clat_device: [ 'auto', 'external' ],
	tun: 'tayga', clat_ipv4: 'tayga', clat_ipv6: 'tayga', tayga_ipv4: 'tayga', tayga_ipv6: 'tayga',
	jool_instance: 'jool', jool_netns: 'jool'
};

var WIDGETS = {
	flag: form.Flag,
	choice: form.ListValue,
	list: form.DynamicList,
	value: form.Value
};

// The schema's help is plain text with `code` in backticks; LuCI shows descriptions as HTML.
function describe(text) {
	var html = text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
	return html.replace(/`([^`]*)`/g, '<code>$1</code>');
}

// One form option from one schema entry, on `tab` (null: the grid's columns).
function addOption(s, tab, opt, title) {
	var widget = WIDGETS[opt.widget],
	    help = describe(opt.help),
	    o = tab ? s.taboption(tab, widget, opt.name, title, help)
	            : s.option(widget, opt.name, title, help);

	if (opt.widget == 'flag' || opt.widget == 'choice')
		o.datatype = opt.datatype;
	else
		// LuCI calls it per value (per item of a list) after the empty check
		o.validate = function(section_id, value) {
			return validate.check(opt.rule, value);
		};

	if (opt.widget == 'flag') {
		o.enabled = '1';
		o.disabled = '0';
		// write '0' instead of removing the option: a removed option is the daemon's default,
		// which is '1' for enabled
		o.rmempty = false;
	}
	else if (opt.widget == 'choice') {
		opt.values.forEach(function(value) { o.value(value); });
	}

	if (opt.widget != 'list') {
		o.default = opt.default;
		o.placeholder = opt.default || opt.example;
	}
	else {
		o.placeholder = opt.example;
	}

	if (opt.required) {
		o.optional = false;
		o.rmempty = false;
	}

	return o;
}

// Pref64: discovered from DNS when the list is empty, else the list. A choice that lives only
// in the form (it has no option of its own) shows which, and "auto" empties the list on save.
function addPref64Mode(s) {
	var o = s.taboption('translator', form.ListValue, '_pref64_mode', _('NAT64 prefix (Pref64)'),
		_('Discovered from DNS (RFC 7050), or your ISP\'s prefixes set by hand. tayga needs them set by hand.'));

	o.value('auto', _('Discover from DNS'));
	o.value('manual', _('Set by hand'));
	o.cfgvalue = function(section_id) {
		return L.toArray(uci.get(CONFIG, section_id, 'pref64')).length ? 'manual' : 'auto';
	};
	o.write = o.remove = function() {};
}

return view.extend({
	load: function() {
		return uci.load(CONFIG).then(function() {
			// No globals section means every option at its default: create it, so that the
			// form has a section to show and to write.
			if (!uci.get(CONFIG, 'globals'))
				uci.add(CONFIG, 'globals', 'globals');
		});
	},

	render: function() {
		var m, s, o, byName = {}, placed = {};

		schema.options.forEach(function(opt) { byName[opt.name] = opt; });

		m = new form.Map(CONFIG, _('CLAT EAMT'),
			_('Each value is checked here as the daemon checks it. Rules between options (tayga needs a CLAT IPv6 address and a Pref64, a static entry needs prefixes of equal suffix length) are checked by the daemon when Save & Apply reloads it: it refuses a file with problems and keeps running with its previous configuration. After applying, look at the %sStatus%s page, or run %s on the router.')
				.format('<a href="%s">'.format(L.url('admin', 'services', 'clat-eamt', 'status')), '</a>',
					'<code>clat-eamt config check /etc/config/clat-eamt</code>'));

		s = m.section(form.NamedSection, 'globals', 'globals');
		s.addremove = false;

		TABS.forEach(function(tab) {
			s.tab(tab[0], tab[1]);
		});

		TABS.forEach(function(tab) {
			Object.keys(tab[2]).forEach(function(name) {
				var opt = byName[name];

				if (!opt || opt.section != 'globals')
					return;

				if (name == 'pref64')
					addPref64Mode(s);

				o = addOption(s, tab[0], opt, tab[2][name]);
				placed[name] = true;

				if (name == 'pref64')
					o.depends('_pref64_mode', 'manual');

				if (TRANSLATOR_ONLY[name]) {
					[].concat(TRANSLATOR_ONLY[name]).forEach(function(t) {
						o.depends('translator', t);  // several depends: any of them
					});
					o.retain = true;
				}
			});
		});

		// An option the tabs above do not name yet still gets a field, under its own name.
		schema.options.forEach(function(opt) {
			if (opt.section == 'globals' && !placed[opt.name])
				addOption(s, 'general', opt, opt.name);
		});

		s = m.section(form.GridSection, 'static', _('Static mappings'), describe(schema.sections['static']));
		s.anonymous = true;
		s.addremove = true;

		schema.options.forEach(function(opt) {
			if (opt.section == 'static')
				addOption(s, null, opt, STATIC_COLUMNS[opt.name] || opt.name);
		});

		return m.render();
	}
});
