'use strict';
/*
 * A stand-in for the parts of LuCI the settings view uses, enough to run a LuCI module in node
 * (no browser, no LuCI) and print what it built as JSON, for test_luci_settings.py:
 *
 *   node luci_harness.js RESOURCES module clat-eamt.schema   the module's exported data
 *   node luci_harness.js RESOURCES view clat-eamt.settings   load() and render(): the form
 *   node luci_harness.js RESOURCES validate TABLE   the settings form's check of each value:
 *       TABLE is {option: [value, ...]}; prints {option: [true or the message, ...]}, each
 *       value checked as LuCI's validation.js does for a form field: an empty value passes
 *       only when the field is optional (not `required`), any other goes to the option's
 *       validate() (clat-eamt.validate with the option's rule from clat-eamt.schema)
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
	add: (config, type, sid) => { uciData[config][sid] = { '.type': type }; return sid; }
};

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
}

const form = { Map: FormMap };
for (const kind of ['NamedSection', 'GridSection', 'TypedSection', 'Flag', 'Value', 'ListValue',
	'DynamicList', 'DummyValue'])
	form[kind] = { kind };

// LuCI's String.prototype.format, as far as '%s' goes.
String.prototype.format = function(...args) {
	return this.replace(/%s/g, () => String(args.shift()));
};

const stubs = {
	baseclass: { extend: (props) => props },
	view: { extend: (props) => props },
	form,
	uci,
	'clat-eamt.validate': { check: () => true }
};
const globals = {
	_: (text) => text,
	L: {
		toArray: (v) => (v == null ? [] : Array.isArray(v) ? v : [v]),
		url: (...parts) => '/cgi-bin/luci/' + parts.join('/')
	}
};

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
	const exported = mode == 'validate' ? null : load(name);
	if (mode == 'validate') {
		delete stubs['clat-eamt.validate'];  // the real one here; the view's runs stand alone
		const schema = load('clat-eamt.schema'), validate = load('clat-eamt.validate');
		const table = JSON.parse(name), out = {};
		for (const [option, values] of Object.entries(table)) {
			const opt = schema.options.find((o) => o.name == option);
			out[option] = values.map((v) => (v.length === 0 ? !opt.required || 'non-empty value'
				: validate.check(opt.rule, v)));
		}
		process.stdout.write(JSON.stringify(out));
		return;
	}
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
