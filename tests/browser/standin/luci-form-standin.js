'use strict';

/*
 * A STAND-IN for LuCI's `form` and `uci` modules (form.js, uci.js) and the parts of ui.js and
 * validation.js their widgets use, for the browser test of the settings view only.  It is not
 * LuCI: the LuCI runtime is not available on the test machine.  It renders what the settings
 * view builds with LuCI's class names (cbi-map, cbi-section, cbi-tabmenu, cbi-value,
 * cbi-section-table, cbi-dynlist, cbi-input-invalid), lets a user (or standin/user.js) edit the
 * fields and Save, and models these rules of the real parts (openwrt/luci, luci-base
 * htdocs/luci-static/resources; line numbers of LuCI 46cd823, 2026-06), each from its source:
 *
 * - uci.load(config) fetches /uci?config=NAME from the test's bridge, which answers with the
 *   config file parsed into uci.js's shape ({ sid: { '.name', '.type', '.anonymous',
 *   '.index', option: 'value' or [ 'list', ... ] } }); uci.get / set / unset keep changes
 *   apart from the loaded values and get() reads through them (uci.js get: a removed option is
 *   null); uci.sections merges the changes into each section (uci.js sections); uci.add makes a
 *   new section and uci.remove drops it; uci.save() sends them to rpcd's `uci` object, an `add`
 *   per new section (with its values; no name for an anonymous one), one `set` (values) and one
 *   `delete` (options) call per changed section (uci.js save: callAdd / callSet / callDelete),
 *   and rejects when one fails;
 * - validation.js Validator.validate (validation.js:209-210, 227-228): an empty field passes
 *   its own check only when it is optional ("non-empty value" else); then the option's
 *   validate() (the vfunc) runs on every value that passed, the empty one included; a refusal
 *   marks the field cbi-input-invalid with the message in data-tooltip; ui.js addValidator
 *   (ui.js:5623-5639) runs it at once (a field not yet in the document passes) and on blur and
 *   keyup: here once the page is in the document, then on blur and keyup;
 * - form.js CBIValue.renderWidget: a Value's field is optional when the option is optional or
 *   rmempty (true unless set false);
 * - ui.js UIDynamicList: one div.item per value (a hidden input holds it) and an "add" field
 *   (input.cbi-input-text in div.add-item) with the "+" button (div.cbi-button-add); render
 *   (ui.js:2415-2417; form.js:4598-4614 passes the option's validator) gives the add field
 *   addValidator(input, datatype, true, validate): optional, validate()
 *   runs on it empty too; "+" or Enter adds the field's value as an item only when it is not
 *   empty and not invalid (handleClick / handleKeydown); getValue: the items, plus the add
 *   field's value when it holds a non-blank, valid value that is not an item yet;
 * - ui.js UIElement.isValid (form.js:2055-2057 asks it): a Value is invalid while its field is;
 *   a DynamicList has a second validator on the list's own node (UIDynamicList.bind,
 *   ui.js:2530-2538 -> setUpdateEvents, ui.js:241-257: addValidator(list, datatype, optional,
 *   validate)); a node has no value, so validate('') decides (validation.js:204), and that
 *   verdict is the list's at Save: Map.save's checkDepends (form.js:621, 1328-1329) re-runs it
 *   (triggerValidation, ui.js:184-192), whatever the add field holds;
 * - form.js AbstractValue.parse (Save; LuCI 46cd823 form.js:2137-2170): an active option whose
 *   widget is invalid rejects with TypeError 'Option "TITLE" contains an invalid input value.'
 *   and the field's message; an empty value, or one equal to `default` when the option is
 *   optional or rmempty, is removed (remove: uci.unset; uci.js records nothing for an option
 *   the section does not have), else rejected 'Option "TITLE" must not be empty.'; another
 *   value is written (write: uci.set) when it differs from the loaded one (isEqual); an
 *   inactive option (depends not met) is removed unless it is `retain`; Map.parse runs every
 *   section's options (Promise.all);
 * - form.js Map.save (form.js:620-639): checkDepends (see above), parse(), then uci.save(); a
 *   rejection shows LuCI's
 *   "Save error" modal ("An error occurred while saving the form:" and the message) and
 *   nothing is sent;
 * - luci.js view: a view whose handleSave is not null gets the footer div.cbi-page-actions with
 *   "Save & Apply" (handleSaveApply, luci.js:2107-2110: handleSave, then ui.changes.apply:
 *   rpcd `uci apply`), "Save" (handleSave, luci.js:2061-2069: save() of every form.Map on the
 *   page) and "Reset".
 * - form.js GridSection: a table with one row (tr[data-sid]) per section of its type and a cell
 *   (td[data-name]) per option showing its value as text, as LuCI's grid shows an option that
 *   is not `editable`; depends(key, value) hides an option (class "hidden") whose conditions no
 *   sibling meets (LuCI re-checks on every change: here on change too).
 *
 * The page records each save on <html>: data-save="saved" or "failed", data-apply="applied"
 * or "failed".
 *
 * Not covered: editing static sections (the grid's modal), adding or removing sections,
 * LuCI's own datatypes (the settings view's typed fields have none), rollback of an apply.
 */
(function() {
	var S = L.standin, Class = L.Class, dom = L.dom;
	var root = document.documentElement;
	var data = {}, changes = {}, deletes = {}, creates = {};
	var maps = [];  // the form.Map instances on the page (view.js handleSave saves each)

	function byIndex(a, b) { return a['.index'] - b['.index']; }

	function isEmpty(v) {
		return v == null || v === '' || (Array.isArray(v) && !v.length);
	}

	function same(a, b) {
		return JSON.stringify(L.toArray(a)) == JSON.stringify(L.toArray(b));
	}

	function ubus(object, method, params) {
		var body = { jsonrpc: '2.0', id: 1, method: 'call', params: [ '00000000000000000000000000000000', object, method, params ] };
		return fetch('/ubus', { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } })
			.then(function(res) { return res.json(); }).then(function(res) {
				if (res.error)
					throw new Error('RPC call to %s/%s failed with error %d: %s'.format(object, method, res.error.code, res.error.message));
				if (res.result[0] !== 0)
					throw new Error('RPC call to %s/%s failed with ubus code %d'.format(object, method, res.result[0]));
				return res.result[1];
			});
	}

	var uci = {
		load: function(config) {
			var url = '/uci?config=' + encodeURIComponent(config);
			return fetch(url).then(function(res) {
				if (!res.ok)
					throw new Error('HTTP ' + res.status + ' for ' + url);
				return res.json();
			}).then(function(values) {
				data[config] = values;
				changes[config] = {};
				deletes[config] = {};
				return [ config ];
			});
		},
		get: function(config, sid, option) {
			var section = (data[config] || {})[sid];
			if (section == null)
				return null;
			if (option == null)
				return section;
			if (((deletes[config] || {})[sid] || {})[option])
				return null;
			var changed = ((changes[config] || {})[sid] || {})[option];
			return changed !== undefined ? changed : section[option];
		},
		set: function(config, sid, option, value) {
			if (value == null)
				return uci.unset(config, sid, option);
			(changes[config][sid] = changes[config][sid] || {})[option] = value;
			if (deletes[config][sid])
				delete deletes[config][sid][option];
		},
		unset: function(config, sid, option) {
			(deletes[config][sid] = deletes[config][sid] || {})[option] = true;
			if (changes[config][sid])
				delete changes[config][sid][option];
		},
		sections: function(config, type) {
			return Object.keys(data[config] || {}).map(function(sid) {
				return Object.assign({}, data[config][sid], (changes[config] || {})[sid]);
			}).filter(function(s) { return type == null || s['.type'] == type; }).sort(byIndex);
		},
		add: function(config, type, name) {
			var values = data[config] = data[config] || {};
			var sid = name || 'new' + Object.keys(values).length;
			values[sid] = { '.name': sid, '.type': type, '.anonymous': !name, '.index': Object.keys(values).length };
			(creates[config] = creates[config] || {})[sid] = type;
			return sid;
		},
		remove: function(config, sid) {
			delete data[config][sid];
			delete (creates[config] || {})[sid];
			delete changes[config][sid];
			delete deletes[config][sid];
		},
		save: function() {
			var calls = [];
			Object.keys(creates).forEach(function(config) {  // uci.js save: callAdd first
				Object.keys(creates[config]).forEach(function(sid) {
					var anonymous = data[config][sid]['.anonymous'];  // rpcd names those itself
					calls.push(ubus('uci', 'add', { config: config, type: creates[config][sid],
						name: anonymous ? undefined : sid, values: changes[config][sid] || {} }));
					delete changes[config][sid];
				});
				creates[config] = {};
			});
			Object.keys(changes).forEach(function(config) {
				var sids = Object.keys(changes[config]).concat(Object.keys(deletes[config]));
				sids.filter(function(sid, i) { return sids.indexOf(sid) == i; }).forEach(function(sid) {
					var set = changes[config][sid] || {}, del = Object.keys(deletes[config][sid] || {});
					if (Object.keys(set).length)
						calls.push(ubus('uci', 'set', { config: config, section: sid, values: set }));
					if (del.length)
						calls.push(ubus('uci', 'delete', { config: config, section: sid, options: del }));
				});
			});
			return Promise.all(calls).then(function() {
				Object.keys(changes).forEach(function(config) {
					Object.keys(changes[config]).forEach(function(sid) { Object.assign(data[config][sid], changes[config][sid]); });
					Object.keys(deletes[config]).forEach(function(sid) {
						Object.keys(deletes[config][sid]).forEach(function(o) { delete data[config][sid][o]; });
					});
					changes[config] = {};
					deletes[config] = {};
				});
			});
		}
	};

	// validation.js Validator.validate (see above); `field` is an <input>.
	function validate(field, optional, vfunc) {
		if (!document.body.contains(field))
			return true;
		var value = field.value != null ? field.value : '', valid = true;
		field.classList.remove('cbi-input-invalid');
		field.removeAttribute('data-tooltip');
		if (value.length === 0 && !optional)
			valid = _('non-empty value');
		else if (typeof vfunc == 'function')
			valid = vfunc(value);
		if (valid !== true) {
			field.classList.add('cbi-input-invalid');
			field.setAttribute('data-tooltip', String(valid));
			return false;
		}
		return true;
	}

	// ui.js addValidator: at once (see above) and on blur and keyup.
	function addValidator(field, optional, vfunc) {
		var run = function() { return validate(field, optional, vfunc); };
		field.addEventListener('blur', run);
		field.addEventListener('keyup', run);
		field.validateNow = run;
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
			this.rmempty = true;
			this.optional = false;
			this.nodes = {};
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
		// the value shown: what is configured, else the default
		loadvalue: function(sid) {
			var v = this.cfgvalue(sid);
			return isEmpty(v) ? this.default : v;
		},
		// the widget's value once rendered (form.js formvalue: getUIElement().getValue())
		formvalue: function(sid) {
			var node = this.nodes[sid];
			return node ? this.widgetValue(node) : this.loadvalue(sid);
		},
		widgetValue: function(node) {
			return node.value;
		},
		textvalue: function(sid) {
			var v = this.loadvalue(sid), i = this.keylist.indexOf(v);
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
		vfunc: function(sid) {
			return typeof this.validate == 'function' ? L.bind(this.validate, this, sid) : null;
		},
		renderWidget: function(sid, value) {
			var input = E('input', { 'type': 'text', 'class': 'cbi-input-text', 'id': this.id(sid),
				'value': value == null ? '' : value, 'placeholder': this.placeholder });
			addValidator(input, this.optional || this.rmempty, this.vfunc(sid));
			return input;
		},
		isValid: function(sid) {
			var node = this.nodes[sid];
			return !node || !(node.matches('.cbi-input-invalid') || node.querySelector('.cbi-input-invalid'));
		},
		validationError: function(sid) {
			var node = this.nodes[sid], bad = node && (node.matches('.cbi-input-invalid') ? node : node.querySelector('.cbi-input-invalid'));
			return bad ? bad.getAttribute('data-tooltip') || '' : '';
		},
		write: function(sid, value) {
			uci.set(this.map.config, sid, this.option, value);
		},
		remove: function(sid) {
			uci.unset(this.map.config, sid, this.option);
		},
		// form.js AbstractValue.parse (see above)
		parse: function(sid) {
			if (!this.nodes[sid])
				return Promise.resolve();  // no widget (a grid cell): nothing was edited
			var active = this.active(sid);
			if (active && !this.isValid(sid))
				return Promise.reject(new TypeError('%s %s'.format(
					_('Option "%s" contains an invalid input value.').format(this.title || this.option), this.validationError(sid))));
			var cval = this.cfgvalue(sid), remove = L.bind(function() {
				if (!isEmpty(cval))
					this.remove(sid);
			}, this);
			if (!active) {
				if (!this.retain)
					remove();
				return Promise.resolve();
			}
			var fval = this.formvalue(sid);
			if (isEmpty(fval) || (fval == this.default && (this.optional || this.rmempty))) {
				if (!(this.rmempty || this.optional))
					return Promise.reject(new TypeError(_('Option "%s" must not be empty.').format(this.title || this.option)));
				remove();
			}
			else if (!same(cval, fval))
				this.write(sid, fval);
			return Promise.resolve();
		},
		render: function(sid) {
			var widget = this.renderWidget(sid, this.loadvalue(sid));
			this.nodes[sid] = widget;
			return E('div', { 'class': 'cbi-value' + (this.active(sid) ? '' : ' hidden'),
				'data-name': this.option, 'data-widget': this.widget, 'data-datatype': this.datatype }, [
				E('label', { 'class': 'cbi-value-title', 'for': this.id(sid) }, [ this.title ]),
				E('div', { 'class': 'cbi-value-field' }, [
					widget,
					this.description ? E('div', { 'class': 'cbi-value-description' }, this.description) : ''
				])
			]);
		}
	});

	var Value = AbstractValue.extend({ widget: 'Value' });
	var DummyValue = AbstractValue.extend({
		widget: 'DummyValue',
		renderWidget: function(sid) { return E('div', { 'id': this.id(sid) }, [ this.textvalue(sid) ]); },
		parse: function() { return Promise.resolve(); }
	});
	var Flag = AbstractValue.extend({
		widget: 'Flag', enabled: '1', disabled: '0',
		renderWidget: function(sid, value) {
			return E('input', { 'type': 'checkbox', 'id': this.id(sid),
				'checked': String(value) == this.enabled ? 'checked' : null });
		},
		widgetValue: function(node) {
			return node.checked ? this.enabled : this.disabled;
		},
		textvalue: function(sid) {
			return String(this.loadvalue(sid)) == this.enabled ? _('yes') : _('no');
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
		// the list node's validator (see above): validate('') with the list's optional flag
		isValid: function(sid) {
			var vfunc = this.vfunc(sid), optional = this.optional || this.rmempty;
			return !this.nodes[sid] || (optional && (typeof vfunc != 'function' || vfunc('') === true));
		},
		validationError: function(sid) {
			var vfunc = this.vfunc(sid), optional = this.optional || this.rmempty;
			return !optional ? _('non-empty value') : String(vfunc(''));
		},
		renderWidget: function(sid, value) {
			var self = this;
			var input = E('input', { 'type': 'text', 'class': 'cbi-input-text', 'placeholder': this.placeholder });
			var list = E('div', { 'class': 'cbi-dynlist', 'id': this.id(sid) }, [
				E('div', { 'class': 'add-item' }, [ input, E('div', { 'class': 'btn cbi-button cbi-button-add',
					'click': function() { self.addItem(list, input); } }, [ '+' ]) ])
			]);
			input.addEventListener('keydown', function(ev) {
				if (ev.keyCode == 13) {
					ev.preventDefault();
					self.addItem(list, input);
				}
			});
			addValidator(input, true, this.vfunc(sid));  // ui.js UIDynamicList.render: optional
			L.toArray(value).forEach(function(v) { self.insertItem(list, v); });
			return list;
		},
		insertItem: function(list, value) {
			var item = E('div', { 'class': 'item', 'data-value': value }, [
				E('input', { 'type': 'hidden', 'value': value }), E('span', [ value ]),
				E('span', { 'class': 'remove', 'click': function() { item.remove(); } }, [ ' \u00d7' ])
			]);
			list.insertBefore(item, list.lastElementChild);
		},
		// ui.js handleClick/handleKeydown: only a non-empty field that is not invalid
		addItem: function(list, input) {
			if (!input.value.length || input.classList.contains('cbi-input-invalid'))
				return;
			this.insertItem(list, input.value);
			input.value = '';
			input.validateNow();
		},
		widgetValue: function(node) {  // ui.js UIDynamicList.getValue
			var v = Array.prototype.map.call(node.querySelectorAll('.item > input[type="hidden"]'), function(i) { return i.value; });
			var input = node.querySelector('.add-item > input[type="text"]');
			if (input && /\S/.test(input.value) && !input.classList.contains('cbi-input-invalid') && v.indexOf(input.value) == -1)
				v.push(input.value);
			return v;
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
		parse: function() {
			var tasks = [];
			this.children.forEach(function(o) {
				Object.keys(o.nodes).forEach(function(sid) { tasks.push(o.parse(sid)); });
			});
			return Promise.all(tasks);
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
			var rendered = this.children.map(function(o) { return [ o, o.render(sid) ]; });
			var recheck = function() {  // depends: LuCI re-checks them on every change
				rendered.forEach(function(r) { r[1].classList.toggle('hidden', !r[0].active(sid)); });
			};
			if (!this.tabs.length)
				return E('div', { 'class': 'cbi-section', 'data-section': sid, 'change': recheck }, this.head().concat(
					rendered.map(function(r) { return r[1]; })));
			var menu = E('ul', { 'class': 'cbi-tabmenu' }), panes = [];
			this.tabs.forEach(function(tab, i) {
				var pane = E('div', { 'class': 'cbi-tabcontainer' + (i ? ' hidden' : ''), 'data-tab': tab.name,
					'data-tab-title': tab.title }, rendered.filter(function(r) { return r[0].tab == tab.name; })
					.map(function(r) { return r[1]; }));
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
			node = E('div', { 'class': 'cbi-section', 'data-section': sid, 'change': recheck }, this.head().concat([ menu ], panes));
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
	// form.js GridSection with addremove: an "Add" button (handleAdd, form.js:3996-4004) adds a
	// section (uci.add) and opens a dialog (renderMoreOptionsModal, form.js:3821-3844) holding
	// a form.Map of its own with the section's options for the new section; the dialog's Save
	// (handleModalSave, form.js:3622-3636) runs that map's save silently: parse, then uci.save,
	// and on a rejection the dialog stays open and the rejection is swallowed; Dismiss removes
	// the added section.
	var GridSection = TypedSection.extend({
		render: function() {
			var node = TypedSection.prototype.render.apply(this, arguments), self = this;
			if (this.addremove)
				node.appendChild(E('div', { 'class': 'cbi-section-create' }, [
					E('button', { 'class': 'btn cbi-button cbi-button-add', 'data-action': 'grid-add',
						'click': function() { self.handleAdd(); } }, [ _('Add') ]) ]));
			return node;
		},
		handleAdd: function() {
			var self = this, sid = uci.add(this.map.config, this.sectiontype);
			var options = this.children.map(function(o) { return o.render(sid); });
			showModal(_('Add'), [ E('div', { 'class': 'cbi-section', 'data-section': sid }, options),
				E('div', { 'class': 'right' }, [
					E('button', { 'class': 'btn', 'data-action': 'grid-dismiss', 'click': function() {
						uci.remove(self.map.config, sid);
						S.modules.ui.hideModal();
					} }, [ _('Dismiss') ]), ' ',
					E('button', { 'class': 'btn cbi-button-positive', 'data-action': 'grid-save', 'click': function() {
						return self.handleModalSave(sid);
					} }, [ _('Save') ]) ]) ]);
		},
		handleModalSave: function(sid) {
			var tasks = this.children.map(function(o) { return o.parse(sid); });
			return Promise.all(tasks).then(function() { return uci.save(); }).then(function() {
				root.setAttribute('data-save', 'saved');
				S.modules.ui.hideModal();
			}).catch(function() {
				root.setAttribute('data-save', 'failed');
			});
		}
	});

	function showModal(title, children) {
		return S.modules.ui.showModal(title, children);
	}

	var FormMap = Class.extend({
		__init__: function(config, title, description) {
			this.config = config;
			this.title = title;
			this.description = description;
			this.children = [];
			maps.push(this);
		},
		section: function(Cls) {
			var args = [ this ].concat(Array.prototype.slice.call(arguments, 1));
			var s = new (Function.prototype.bind.apply(Cls, [ null ].concat(args)))();
			this.children.push(s);
			return s;
		},
		parse: function() {
			return Promise.all(this.children.map(function(s) { return s.parse(); }));
		},
		// form.js Map.findElements: querySelectorAll on the rendered map
		findElements: function(selector) {
			return this.root ? this.root.querySelectorAll(selector) : [];
		},
		save: function() {
			return this.parse().then(uci.save).then(function() {
				root.setAttribute('data-save', 'saved');
			}).catch(function(e) {
				showModal(_('Save error'), [ E('p', [ _('An error occurred while saving the form:') ]),
					E('p', [ E('em', { 'style': 'white-space:pre-wrap' }, [ e.message ]) ]) ]);
				root.setAttribute('data-save', 'failed');
				return Promise.reject(e);
			});
		},
		render: function() {
			var self = this;
			var node = this.root = E('div', { 'class': 'cbi-map', 'id': 'cbi-' + this.config }, [
				this.title ? E('h2', [ this.title ]) : '',
				this.description ? E('div', { 'class': 'cbi-map-descr' }, this.description) : ''
			].concat(this.children.map(function(s) { return s.render(self); })));
			// ui.js addValidator validates at once: here once the page is in the document
			window.setTimeout(function() {
				node.querySelectorAll('input').forEach(function(i) { if (i.validateNow) i.validateNow(); });
			}, 0);
			return Promise.resolve(node);
		}
	});

	// view.js: handleSave saves every form.Map, handleSaveApply then applies (ui.changes.apply)
	S.viewActions = {
		handleSave: function() {
			return Promise.all(maps.map(function(m) { return m.save(); }));
		},
		handleSaveApply: function() {
			return S.viewActions.handleSave().then(function() {
				return ubus('uci', 'apply', { rollback: false });
			}).then(function() {
				root.setAttribute('data-apply', 'applied');
			}, function(e) {
				root.setAttribute('data-apply', 'failed');
				throw e;
			});
		}
	};

	S.modules.uci = uci;
	S.modules.form = {
		Map: FormMap, NamedSection: NamedSection, TypedSection: TypedSection, GridSection: GridSection,
		Value: Value, Flag: Flag, ListValue: ListValue, DynamicList: DynamicList, DummyValue: DummyValue
	};
})();
