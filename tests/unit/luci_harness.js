'use strict';
/*
 * A stand-in for the parts of LuCI the settings view uses, enough to run a LuCI module in node
 * (no browser, no LuCI) and print what it built as JSON, for test_luci_settings.py:
 *
 *   node luci_harness.js RESOURCES module clat-eamt.schema   the module's exported data
 *   node luci_harness.js RESOURCES view clat-eamt.settings   load() and render(): the form
 *   node luci_harness.js RESOURCES widgets TABLE   each value through the settings form's
 *       widget path, as LuCI runs it (rules below, each with its source): TABLE is {option:
 *       [value, ...]}; prints {option: {verdicts: [true or the message, ...], saved: [the UCI
 *       text Save sends to the daemon's check, or null when a field refused it, ...],
 *       add_field: true or the message}}; add_field is a DynamicList's empty "add" field
 *
 * The widget path (openwrt/luci, luci-base htdocs/luci-static/resources, 2026-03):
 * - validation.js Validator.validate: an empty value passes the field's own check only when
 *   the field is optional, else "non-empty value"; then the option's validate() (the vfunc)
 *   runs on every value that passed, the empty one included;
 * - form.js CBIValue.renderWidget: a Value's field is optional when the option is optional
 *   or rmempty (rmempty is true unless the view sets it false);
 * - ui.js UIDynamicList.render: the "add" field gets addValidator(input, datatype, true,
 *   validate): optional, and the option's validate() runs on it when it is empty too (on
 *   render, blur and keyup); an item is added only when that field is valid, so every item of
 *   a list passed validate() as the add field's value;
 * - form.js AbstractValue.parse (Save): an option whose widget is invalid (its add field
 *   included) rejects with 'Option "TITLE" contains an invalid input value.'; else a value
 *   is written (uci.set; a list as an array) or, empty, removed (uci.unset); then Map.save
 *   calls uci.save, where settings.js asks the daemon's check of the UCI text it renders.
 *
 * Modules are loaded the way LuCI's require() does: the leading 'require NAME [as ALIAS]'
 * directives become the parameters of a function whose body is the file. Names that are not
 * stubbed here are files under RESOURCES (dots are directories).
 */

const fs = require('fs');
const path = require('path');

const [resources, mode, name] = process.argv.slice(2);

// The UCI config the view sees: empty, so that load() has to create the globals section.
const uciData = {};
const uci = {
	load: (config) => { uciData[config] = uciData[config] || {}; return Promise.resolve(); },
	get: (config, sid, option) => {
		const section = (uciData[config] || {})[sid];
		return section && option ? section[option] : section;
	},
	add: (config, type, sid) => {
		const values = uciData[config], name = sid || 'cfg' + Object.keys(values).length;
		values[name] = { '.type': type, '.name': name, '.anonymous': !sid, '.index': Object.keys(values).length };
		return name;
	},
	set: (config, sid, option, value) => { uciData[config][sid][option] = value; },
	unset: (config, sid, option) => { delete uciData[config][sid][option]; },
	save: () => Promise.resolve(),  // what the view wraps: its check runs first
	sections: (config) => Object.values(uciData[config] || {}).sort((a, b) => a['.index'] - b['.index'])
};

// rpc.declare: each call is recorded with its arguments and answered from `replies`.
const rpcCalls = [], replies = {};
const rpc = {
	declare: (d) => (...args) => {
		const named = {};
		(d.params || []).forEach((p, i) => { named[p] = args[i]; });
		rpcCalls.push({ object: d.object, method: d.method, args: named });
		return Promise.resolve(replies[d.object + '.' + d.method] ?? {});
	}
};
const notifications = [];

function option(kind, section, tab, name, title, description) {
	return {
		kind, section: section.type, tab, name, title, description, values: [], depends_on: [],
		value(key) { this.values.push(key); },
		depends(key, value) { this.depends_on.push(typeof key == 'object' ? key : { [key]: value }); }
	};
}

class FormMap {
	constructor(config, title, description) {
		Object.assign(this, { config, title, description, sections: [] });
	}

	// form.NamedSection takes (name, type), the others (type, title, description)
	section(cls, ...args) {
		const section = {
			kind: cls.kind, args, type: cls.kind == 'NamedSection' ? args[1] : args[0], tabs: [],
			options: [],
			tab(tabName, title) { this.tabs.push({ name: tabName, title }); },
			taboption(tab, cls, optName, title, description) {
				const o = option(cls.kind, this, tab, optName, title, description);
				this.options.push(o);
				return o;
			},
			option(cls, optName, title, description) {
				return this.taboption(null, cls, optName, title, description);
			}
		};
		this.sections.push(section);
		return section;
	}

	render() {
		return Promise.resolve(this);
	}

	// form.js Map.parse: the options' own parse (done by the caller here), then what the view adds
	parse() {
		return Promise.resolve();
	}

	// form.js Map.findElements: no rendered fields here (the add fields are checked by value)
	findElements() {
		return [];
	}
}

const form = { Map: FormMap };
for (const kind of ['NamedSection', 'GridSection', 'TypedSection', 'Flag', 'Value', 'ListValue',
	'DynamicList', 'DummyValue'])
	form[kind] = { kind };

// LuCI's String.prototype.format, as far as '%s', '%d' and '%%' go.
String.prototype.format = function(...args) {
	return this.replace(/%([%sd])/g, (m, c) => c == '%' ? '%' : c == 'd' ? String(Math.trunc(+args.shift())) : String(args.shift()));
};

const stubs = {
	baseclass: { extend: (props) => props },
	view: { extend: (props) => props },
	form,
	uci,
	rpc,
	ui: { addNotification: (title, body, kind) => notifications.push(kind) },
	'clat-eamt.validate': { check: () => true }
};
const globals = {
	_: (text) => text,
	L: {
		toArray: (v) => (v == null ? [] : Array.isArray(v) ? v : [v]),
		bind: (fn, self, ...args) => fn.bind(self, ...args),
		url: (...parts) => '/cgi-bin/luci/' + parts.join('/')
	},
	E: (tag, attrs, children) => ({ tag, attrs, children })
};

// validation.js Validator.validate for a field whose own datatype accepts any text (the typed
// fields of this view have none: their check is the option's validate()).
function fieldCheck(o, value, optional) {
	if (value.length === 0 && !optional)
		return 'non-empty value';
	return typeof o.validate == 'function' ? o.validate('globals', value) : true;
}

// form.js: a Value's field is optional when the option is optional or rmempty (default true)
function optionalField(o) {
	return !!(o.optional || (o.rmempty ?? true));
}

// One value through the widget path and Save: [verdict, the UCI text the daemon's check got]
async function throughForm(map, o, value) {
	const isList = o.kind == 'DynamicList';
	const verdict = fieldCheck(o, value, isList ? true : optionalField(o));
	const addField = isList ? fieldCheck(o, '', true) : true;
	if (verdict !== true || addField !== true)
		return [ verdict !== true ? verdict : addField, null ];
	const sid = o.section == 'globals' ? 'globals' : 'cfg_static';
	uciData['clat-eamt'] = { globals: { '.type': 'globals', '.name': 'globals', '.anonymous': false, '.index': 0 } };
	if (o.section != 'globals') {
		uciData['clat-eamt'].globals.allow_documentation = '1';
		uciData['clat-eamt'][sid] = { '.type': 'static', '.name': sid, '.anonymous': true, '.index': 1,
			ipv4: '192.0.2.7', ipv6: '2001:db8:1::7' };
	}
	if (value === '')
		uci.unset('clat-eamt', sid, o.name);
	else
		uci.set('clat-eamt', sid, o.name, isList ? [ value ] : value);
	rpcCalls.length = 0;
	await map.parse();
	await uci.save();  // form.js Map.save: parse, then uci.save
	const check = rpcCalls.find((c) => c.method == 'check');
	return [ true, check ? check.args.uci : null ];
}

function load(moduleName) {
	if (stubs[moduleName])
		return stubs[moduleName];
	const file = path.join(resources, ...moduleName.split('.')) + '.js';
	const source = fs.readFileSync(file, 'utf8');
	const names = Object.keys(globals), values = Object.values(globals);
	for (const m of source.matchAll(/^'require ([\w.-]+)(?: as (\w+))?';$/gm)) {
		names.push(m[2] || m[1].split('.').pop());
		values.push(load(m[1]));
	}
	return new Function(...names, source)(...values);
}

async function main() {
	if (mode == 'widgets') {
		delete stubs['clat-eamt.validate'];  // the real one: the whole path of the form
		const view = load('view.clat-eamt.settings');
		replies['clat-eamt.check'] = { valid: true };
		await view.load();
		const map = await view.render();
		const options = {};
		for (const section of map.sections)
			for (const o of section.options)
				options[o.name] = Object.assign(o, { section: section.type });
		const table = JSON.parse(name), out = {};
		for (const [option, values] of Object.entries(table)) {
			const o = options[option], verdicts = [], saved = [];
			for (const v of values) {
				const [verdict, text] = await throughForm(map, o, v);
				verdicts.push(verdict);
				saved.push(text);
			}
			out[option] = { verdicts, saved, add_field: o.kind == 'DynamicList' ? fieldCheck(o, '', true) : true };
		}
		process.stdout.write(JSON.stringify(out));
		return;
	}
	const exported = load(name);
	if (mode == 'view') {
		await exported.load();
		const created = JSON.parse(JSON.stringify(uciData));
		const map = await exported.render();
		for (const section of map.sections)
			for (const o of section.options)
				if (typeof o.validate == 'function')
					o.validates = o.validate('globals', 'x') !== undefined;
		// the pseudo option's cfgvalue, with and without a Pref64 list
		const globalsSection = map.sections.find((s) => s.type == 'globals');
		const modeOption = globalsSection.options.find((o) => o.name == '_pref64_mode');
		const auto = modeOption.cfgvalue('globals');
		uciData['clat-eamt'].globals.pref64 = ['2001:db8:64::/96'];
		map.pref64_mode = { empty: auto, set: modeOption.cfgvalue('globals') };
		map.uci_after_load = created;
		process.stdout.write(JSON.stringify(map));
	}
	else {
		process.stdout.write(JSON.stringify(exported));
	}
}

main().catch((err) => { console.error(err); process.exit(1); });
