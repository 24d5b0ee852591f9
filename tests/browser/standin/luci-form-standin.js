'use strict';

/*
 * A STAND-IN for LuCI's `form` and `uci` modules (form.js, uci.js), for the browser test of the
 * settings view only.  It is not LuCI: the LuCI runtime is not available on the test machine.
 * It renders what the settings view builds, read-only, with LuCI's class names (cbi-map,
 * cbi-section, cbi-tabmenu, cbi-value, cbi-section-table) so that a test can find the parts:
 *
 * - uci.load(config) fetches /uci?config=NAME from the test's bridge, which answers with the
 *   config file parsed into uci.js's shape ({ sid: { '.name', '.type', '.anonymous',
 *   '.index', option: 'value' or [ 'list', ... ] } }); uci.get, uci.sections, uci.add;
 * - form.Map(config, title, description): an <h2>, the description as HTML, its sections;
 * - form.NamedSection(name, type) with tab()/taboption(): a tab menu (li[data-tab]) and one
 *   div.cbi-tabcontainer[data-tab] per tab, the first shown, a click on a tab shows its own;
 * - form.GridSection / TypedSection(type, title, description) with option(): a table with one
 *   row (tr[data-sid]) per section of that type, a cell (td[data-name]) per option showing its
 *   value as text, as LuCI's grid does when the option is not `editable`;
 * - options Flag (checkbox), Value (text input), ListValue (select of value()s), DynamicList
 *   (one div.item[data-value] per value and an input), DummyValue (text): each shows
 *   cfgvalue(sid) (by default uci.get), or `default` when that is empty; `placeholder`,
 *   `datatype` (only shown as data-datatype, not checked), the description as HTML;
 *   depends(key, value) hides an option (class "hidden") whose conditions no sibling meets.
 *
 * Not covered: editing and saving (no Save & Apply, no uci.set/save/apply), datatype
 * validation, add/remove of sections, modal dialogs.
 */
(function() {
	var S = L.standin, Class = L.Class, dom = L.dom;
	var data = {};

	function byIndex(a, b) { return a['.index'] - b['.index']; }

	var uci = {
		load: function(config) {
			var url = '/uci?config=' + encodeURIComponent(config);
			return fetch(url).then(function(res) {
				if (!res.ok)
					throw new Error('HTTP ' + res.status + ' for ' + url);
				return res.json();
			}).then(function(values) {
				data[config] = values;
				return [ config ];
			});
		},
		get: function(config, sid, option) {
			var section = (data[config] || {})[sid];
			if (section == null)
				return null;
			return option == null ? section : section[option];
		},
		sections: function(config, type) {
			return Object.keys(data[config] || {}).map(function(sid) { return data[config][sid]; })
				.filter(function(s) { return type == null || s['.type'] == type; }).sort(byIndex);
		},
		add: function(config, type, name) {
			var values = data[config] = data[config] || {};
			var sid = name || 'new' + Object.keys(values).length;
			values[sid] = { '.name': sid, '.type': type, '.anonymous': !name, '.index': Object.keys(values).length };
			return sid;
		}
	};

	function isEmpty(v) {
		return v == null || v === '' || (Array.isArray(v) && !v.length);
	}

	var AbstractValue = Class.extend({
		__init__: function(map, section, option, title, description) {
			this.map = map;
			this.section = section;
			this.option = option;
			this.title = title;
			this.description = description;
			this.deps = [];
			this.keylist = [];
			this.vallist = [];
		},
		depends: function(key, value) {
			var dep = key;
			if (typeof key != 'object') {
				dep = {};
				dep[key] = value;
			}
			this.deps.push(dep);
		},
		value: function(key, label) {
			this.keylist.push(key);
			this.vallist.push(label != null ? label : key);
		},
		cfgvalue: function(sid) {
			return uci.get(this.map.config, sid, this.option);
		},
		formvalue: function(sid) {
			var v = this.cfgvalue(sid);
			return isEmpty(v) ? this.default : v;
		},
		textvalue: function(sid) {
			var v = this.formvalue(sid), i = this.keylist.indexOf(v);
			return i >= 0 ? String(this.vallist[i]) : L.toArray(v).join(', ');
		},
		active: function(sid) {
			var section = this.section;
			return !this.deps.length || this.deps.some(function(dep) {
				return Object.keys(dep).every(function(key) {
					var other = section.children.filter(function(o) { return o.option == key; })[0];
					return other != null && String(other.formvalue(sid)) == String(dep[key]);
				});
			});
		},
		id: function(sid) {
			return 'cbid.' + this.map.config + '.' + sid + '.' + this.option;
		},
		renderWidget: function(sid, value) {
			return E('input', { 'type': 'text', 'class': 'cbi-input-text', 'id': this.id(sid),
				'value': value == null ? '' : value, 'placeholder': this.placeholder });
		},
		render: function(sid) {
			return E('div', { 'class': 'cbi-value' + (this.active(sid) ? '' : ' hidden'),
				'data-name': this.option, 'data-widget': this.widget, 'data-datatype': this.datatype }, [
				E('label', { 'class': 'cbi-value-title', 'for': this.id(sid) }, [ this.title ]),
				E('div', { 'class': 'cbi-value-field' }, [
					this.renderWidget(sid, this.formvalue(sid)),
					this.description ? E('div', { 'class': 'cbi-value-description' }, this.description) : ''
				])
			]);
		}
	});

	var Value = AbstractValue.extend({ widget: 'Value' });
	var DummyValue = AbstractValue.extend({
		widget: 'DummyValue',
		renderWidget: function(sid) { return E('div', { 'id': this.id(sid) }, [ this.textvalue(sid) ]); }
	});
	var Flag = AbstractValue.extend({
		widget: 'Flag', enabled: '1', disabled: '0',
		renderWidget: function(sid, value) {
			return E('input', { 'type': 'checkbox', 'id': this.id(sid),
				'checked': String(value) == this.enabled ? 'checked' : null });
		},
		textvalue: function(sid) {
			return String(this.formvalue(sid)) == this.enabled ? _('yes') : _('no');
		}
	});
	var ListValue = AbstractValue.extend({
		widget: 'ListValue',
		renderWidget: function(sid, value) {
			var self = this;
			return E('select', { 'class': 'cbi-input-select', 'id': this.id(sid) }, this.keylist.map(function(key, i) {
				return E('option', { 'value': key, 'selected': String(key) == String(value) ? 'selected' : null }, [ self.vallist[i] ]);
			}));
		}
	});
	var DynamicList = AbstractValue.extend({
		widget: 'DynamicList',
		renderWidget: function(sid, value) {
			var items = L.toArray(value).map(function(v) {
				return E('div', { 'class': 'item', 'data-value': v }, [ E('span', [ v ]) ]);
			});
			return E('div', { 'class': 'cbi-dynlist', 'id': this.id(sid) }, items.concat([
				E('div', { 'class': 'add-item' }, [
					E('input', { 'type': 'text', 'class': 'cbi-input-text', 'placeholder': this.placeholder })
				])
			]));
		}
	});

	var AbstractSection = Class.extend({
		__init__: function(map, type, title, description) {
			this.map = map;
			this.sectiontype = type;
			this.title = title;
			this.description = description;
			this.children = [];
			this.tabs = [];
		},
		tab: function(name, title) {
			this.tabs.push({ name: name, title: title });
		},
		taboption: function(tab, Cls, option, title, description) {
			var o = new Cls(this.map, this, option, title, description);
			o.tab = tab;
			this.children.push(o);
			return o;
		},
		option: function(Cls, option, title, description) {
			return this.taboption(null, Cls, option, title, description);
		},
		head: function() {
			return [
				this.title ? E('h3', [ this.title ]) : '',
				this.description ? E('div', { 'class': 'cbi-section-descr' }, this.description) : ''
			];
		}
	});

	var NamedSection = AbstractSection.extend({
		__init__: function(map, name, type, title, description) {
			AbstractSection.prototype.__init__.call(this, map, type, title, description);
			this.section = name;
		},
		render: function() {
			var self = this, sid = this.section, node;
			if (uci.get(this.map.config, sid) == null)
				return E('div');
			if (!this.tabs.length)
				return E('div', { 'class': 'cbi-section', 'data-section': sid }, this.head().concat(
					this.children.map(function(o) { return o.render(sid); })));
			var menu = E('ul', { 'class': 'cbi-tabmenu' }), panes = [];
			this.tabs.forEach(function(tab, i) {
				var pane = E('div', { 'class': 'cbi-tabcontainer' + (i ? ' hidden' : ''), 'data-tab': tab.name,
					'data-tab-title': tab.title }, self.children.filter(function(o) { return o.tab == tab.name; })
					.map(function(o) { return o.render(sid); }));
				panes.push(pane);
				menu.appendChild(E('li', { 'class': i ? 'cbi-tab-disabled' : 'cbi-tab', 'data-tab': tab.name,
					'click': function(ev) {
						ev.preventDefault();
						panes.forEach(function(p) { p.classList.toggle('hidden', p !== pane); });
						Array.prototype.forEach.call(menu.children, function(li) {
							li.className = li.getAttribute('data-tab') == tab.name ? 'cbi-tab' : 'cbi-tab-disabled';
						});
					} }, [ E('a', { 'href': '#' }, [ tab.title ]) ]));
			});
			node = E('div', { 'class': 'cbi-section', 'data-section': sid }, this.head().concat([ menu ], panes));
			return node;
		}
	});

	var TypedSection = AbstractSection.extend({
		render: function() {
			var self = this, sections = uci.sections(this.map.config, this.sectiontype);
			var rows = sections.map(function(s) {
				var sid = s['.name'];
				return E('tr', { 'class': 'tr cbi-section-table-row', 'data-sid': sid }, self.children.map(function(o) {
					return E('td', { 'class': 'td', 'data-name': o.option, 'data-title': o.title }, [ o.textvalue(sid) ]);
				}));
			});
			if (!rows.length)
				rows.push(E('tr', { 'class': 'tr placeholder' }, [
					E('td', { 'class': 'td', 'colspan': this.children.length }, [ _('This section contains no values yet') ])
				]));
			var head = E('tr', { 'class': 'tr table-titles' }, this.children.map(function(o) {
				return E('th', { 'class': 'th', 'data-name': o.option }, [ o.title ]);
			}));
			return E('div', { 'class': 'cbi-section', 'data-section-type': this.sectiontype }, this.head().concat([
				E('table', { 'class': 'table cbi-section-table' }, [ head ].concat(rows))
			]));
		}
	});
	var GridSection = TypedSection.extend({});

	var FormMap = Class.extend({
		__init__: function(config, title, description) {
			this.config = config;
			this.title = title;
			this.description = description;
			this.children = [];
		},
		section: function(Cls) {
			var args = [ this ].concat(Array.prototype.slice.call(arguments, 1));
			var s = new (Function.prototype.bind.apply(Cls, [ null ].concat(args)))();
			this.children.push(s);
			return s;
		},
		render: function() {
			var self = this;
			return Promise.resolve(E('div', { 'class': 'cbi-map', 'id': 'cbi-' + this.config }, [
				this.title ? E('h2', [ this.title ]) : '',
				this.description ? E('div', { 'class': 'cbi-map-descr' }, this.description) : ''
			].concat(this.children.map(function(s) { return s.render(self); }))));
		}
	});

	S.modules.uci = uci;
	S.modules.form = {
		Map: FormMap, NamedSection: NamedSection, TypedSection: TypedSection, GridSection: GridSection,
		Value: Value, Flag: Flag, ListValue: ListValue, DynamicList: DynamicList, DummyValue: DummyValue
	};
})();
