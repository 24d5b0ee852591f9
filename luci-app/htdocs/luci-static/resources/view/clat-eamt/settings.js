'use strict';
'require view';
'require form';
'require uci';
'require rpc';
'require ui';
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
 * Rules between options (ttl_min <= ttl_max, tayga needs clat_ipv6 and a Pref64, the pool must
 * be private and at least a /30, a static IPv4 prefix needs as many host bits as its IPv6
 * prefix, ...) are the daemon's: before anything is staged, the daemon's own check
 * (`clat-eamt config check`, the ubus method clat-eamt check) is asked about the settings as
 * they would be, and a refusal stops it with the daemon's words.  It sits in uci.save, the one
 * step every way of staging takes on this page: the page's Save, and the static entries'
 * dialog, which saves a form.Map of its own (form.js GridSection.handleAdd ->
 * renderMoreOptionsModal, handleModalSave).  Restating those rules here would be a second copy
 * to drift; the check is the one the daemon applies when it reloads.
 */

var CONFIG = 'clat-eamt';
var callCheck = rpc.declare({ object: 'clat-eamt', method: 'check', params: [ 'uci' ] });

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
		stale_linger: _('Stale linger (s)'),
		ipv6_only: _('Answer A for IPv6-only names'),
		ipv6_only_placeholder: _('Placeholder A records'),
		ipv6_only_quarantine: _('Pool address quarantine (s)')
	} ],
	[ 'hosts', _('Hosts'), {
		host_mode: _('Host detection mode'),
		host_observe: _('Observation time (s)'),
		lan_interface: _('LAN interfaces'),
		client_identity: _('Client identity from dnsmasq')
	} ],
	[ 'limits', _('Limits'), {
		max_entries: _('Learned mappings at most'),
		max_ipv4_per_ipv6: _('IPv4s per IPv6 target at most'),
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
		provider_max_entries: _('Table entries at most'),
		provider_serial_file: _('Serial file (on flash)')
	} ],
	[ 'safety', _('Safety net'), {
		safety: _('Enable the safety net'),
		rescue_window_ms: _('Rescue window (ms)'),
		broken_backoff: _('Broken destination back-off (s)'),
		brake_failures: _('Failures that stop steering'),
		brake_window: _('Failure window (s)'),
		mss_clamp: _('TCP MSS clamp')
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
		o.validate = function(section_id, value) {
			// LuCI calls this with '' too: for an empty field that may be empty (validation.js
			// Validator.validate runs it after its empty check) and for a DynamicList's empty
			// "add" field, always (ui.js UIDynamicList.render: addValidator(..., true, validate)).
			// An empty field is an absent option: the daemon's default.
			if (value == null || value === '')
				return (opt.required && opt.widget != 'list') ? _('a value') : true;
			return validate.check(opt.rule, value);
		};

	if (opt.widget == 'flag') {
		o.enabled = '1';
		o.disabled = '0';
	}
	else if (opt.widget == 'choice') {
		opt.values.forEach(function(value) { o.value(value); });
	}

	// The file keeps only what differs from the daemon's defaults, and a Save without an edit
	// changes nothing (form.js AbstractValue.parse: an empty value, or one equal to `default`,
	// is removed; another is written when it differs from the file's).  A typed field left
	// empty is the default, shown as the placeholder (with `default` set, a value the file sets
	// to its default would be removed on every Save).  A flag or a choice shows its default:
	// one set to it is removed (the same to the daemon), another written ('0' for enabled).
	if (opt.widget == 'flag' || opt.widget == 'choice')
		o.default = opt.default;
	o.placeholder = opt.default || opt.example;

	if (opt.required) {
		o.optional = false;
		o.rmempty = false;
	}

	return o;
}

// The settings as Save would stage them, as the text of a UCI file: every section of the
// config with the values uci.js holds after the form's parse (uci.get: changes included,
// removed options left out), quoted as `uci export` quotes.
function uciText() {
	var quote = function(v) { return "'" + String(v).replace(/'/g, "'\\''") + "'"; };
	return uci.sections(CONFIG).map(function(s) {
		var sid = s['.name'], lines = [ 'config ' + s['.type'] + (s['.anonymous'] ? '' : ' ' + quote(sid)) ];
		Object.keys(s).filter(function(k) { return k.charAt(0) != '.'; }).forEach(function(k) {
			var v = uci.get(CONFIG, sid, k);
			if (Array.isArray(v))
				v.forEach(function(item) { lines.push('\tlist ' + k + ' ' + quote(item)); });
			else if (v != null)
				lines.push('\toption ' + k + ' ' + quote(v));
		});
		return lines.join('\n');
	}).join('\n\n') + '\n';
}

// The daemon's check of those settings (the ubus method clat-eamt check runs `clat-eamt config
// check` on them): resolves when it accepts them, rejects with its problems, one per line.  When
// it cannot be asked (no object, no access), staging goes on: the daemon checks again when Save
// & Apply reloads it, and keeps its running configuration if it refuses.
function daemonCheck() {
	return callCheck(uciText()).then(function(reply) {
		if (reply != null && typeof reply == 'object' && Array.isArray(reply.problems) && reply.problems.length)
			throw new TypeError(_('The daemon refuses these settings (clat-eamt config check):') + '\n'
				+ reply.problems.map(function(p) {
					return p.text ? String(p.text) : (p.option ? p.option + ': ' : '') + String(p.message);
				}).join('\n'));
		if (reply == null || typeof reply != 'object' || reply.valid !== true)
			throw new Error(_('no answer (%s)').format(JSON.stringify(reply)));
	}).catch(function(err) {
		if (err instanceof TypeError)
			throw err;
		ui.addNotification(null, E('p', [ _('The settings could not be checked with clat-eamt before saving (%s); the daemon checks them when Save & Apply reloads it.').format(err.message || err) ]), 'warning');
	});
}

// uci.save with the daemon's check first (see the top).  The page's Save shows a refusal in
// LuCI's "Save error" dialog (form.js Map.save); the static entries' dialog swallows its save's
// rejection (form.js handleModalSave: .catch(function() {})), so the refusal is also put at the
// top of that dialog, which stays open.
function checkedSave(stage) {
	return function() {
		var args = arguments;
		return daemonCheck().then(function() {
			return stage.apply(uci, args);
		}, function(err) {
			var dialog = document.querySelector('body.modal-overlay-active #modal_overlay > .modal');
			if (dialog)
				dialog.insertBefore(E('div', { 'class': 'alert-message error clat-eamt-refused' }, [
					E('p', { 'style': 'white-space:pre-wrap' }, [ err.message ]) ]), dialog.firstChild);
			throw err;
		});
	};
}

// A value typed into a list's "add" field and refused there (marked with the option's message)
// would be left out of Save silently: LuCI's list counts as valid at Save (form.js Map.save ->
// checkDepends re-runs the list's own validator, which sees ''), and its getValue drops an add
// field marked invalid (ui.js UIDynamicList.getValue).  So Save stops on it with the message.
function refusedAddFields(map) {
	var bad = Array.prototype.slice.call(map.findElements('.cbi-dynlist .add-item > input.cbi-input-invalid'));
	if (!bad.length)
		return;
	throw new TypeError(bad.map(function(input) {
		var row = input.closest('.cbi-value'), label = row ? row.querySelector('.cbi-value-title') : null;
		return _('Option "%s": "%s" is not added: %s').format(label ? label.textContent.trim() : '?',
			input.value, input.getAttribute('data-tooltip') || '');
	}).join('\n'));
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
			_('Each value is checked here as the daemon checks it, and Save asks the daemon to check the settings as a whole (rules between options: the TTL floor not above the ceiling, what tayga needs, a private pool of at least a /30, static entries of equal suffix length): what it refuses is not saved, and its message says why. After applying, look at the %sStatus%s page, or run %s on the router.')
				.format('<a href="%s">'.format(L.url('admin', 'services', 'clat-eamt', 'status')), '</a>',
					'<code>clat-eamt config check /etc/config/clat-eamt</code>'));

		// form.js Map.save: parse() (each field's check, values into uci.js), then uci.save();
		// a rejection stops it there with the message in LuCI's "Save error" dialog.
		var parse = m.parse;
		m.parse = function() {
			return parse.apply(this, arguments).then(L.bind(refusedAddFields, null, this));
		};
		if (!uci.save.checked) {  // this page's uci: render may run again
			uci.save = checkedSave(uci.save);
			uci.save.checked = true;
		}

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
