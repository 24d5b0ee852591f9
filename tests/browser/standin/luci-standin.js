'use strict';

/*
 * A STAND-IN for the part of LuCI's JavaScript runtime that the clat-eamt views use, for the
 * browser test only.  It is not LuCI: the LuCI runtime (luci.js, rpc.js, ui.js behind uhttpd,
 * rpcd and ubus) is not available on the test machine.  What it keeps of LuCI is what the
 * views depend on:
 *
 * - loading a view file unchanged: the leading 'require NAME' strings name the modules handed
 *   to the file's body, which runs as a function of (window, document, L, modules...) and
 *   returns a class; a view's constructor runs load() then render() and puts the nodes in
 *   #view; a baseclass module (an overview include) gets load()/render() called by the page;
 * - E() / L.dom.content: a bare string child is HTML (innerHTML), strings inside an array
 *   are text nodes, a first argument starting with '<' is parsed as HTML (inline <svg>),
 *   function attributes are event listeners;
 * - rpc.declare: a JSON-RPC 'call' to /ubus as LuCI sends it, and the reply handling of
 *   rpc.js (luci-base, rpc.js handleCallReply), rule by rule:
 *   a JSON-RPC error with a code and a message rejects ("RPC call to OBJ/METHOD failed with
 *   error CODE: MESSAGE", e.g. -32000 "Object not found", -32002 "Access denied");
 *   a result array [status] or [status, data]: with `reject: true` a status other than 0
 *   rejects ("... failed with ubus code N: TEXT"); without it the call RESOLVES with data
 *   when there is some, else with the bare status number (so a failed call gives a number,
 *   e.g. 2 for UBUS_STATUS_INVALID_ARGUMENT);
 *   then `expect` (its one key selects a part, '' the whole; a missing part or one of
 *   another type is replaced by the expect value) and `filter(ret, params)`;
 * - a 'require NAME' that is not one of the stand-in's modules loads the app's own file
 *   (clat-eamt.schema: /luci-static/resources/clat-eamt/schema.js) the same way, and a class
 *   derived from baseclass that it returns is instantiated, as LuCI's require() does;
 * - an overview include (view/status/include/*) is loaded and rendered as LuCI's status index
 *   does it (luci-mod-status, view/status/index.js), without a guard: an exception in its
 *   load() or render() fails the whole page, as it takes the router's Overview down;
 * - poll.add(fn, seconds) as LuCI's Poll (luci.js, Poll.add/start/step): the poll is running
 *   once the page is set up, so a function added runs at the next step, right away (tick 0
 *   is a multiple of every interval), then every `seconds`; it is not run again while its
 *   previous run is still pending; ui.addNotification, ui.createHandlerFn, ui.showModal and
 *   hideModal (one dialog in #modal_overlay, its content replaced by the next);
 *   L.bind, L.resolveDefault, L.toArray, L.url; _() returns its argument;
 *   String.prototype.format for %s %d %%.
 *
 * LuCI's form and uci (the settings view) are in luci-form-standin.js, which registers them
 * in L.standin.modules, with view.js's footer actions (L.standin.viewActions).  standin/user.js
 * plays a user's steps on a page (?steps=...): typing, adding to a list, clicking.
 *
 * The page records its outcome on <html>: data-standin="rendered" or "failed", and
 * data-polls (refreshes that ran); errors (also unhandled rejections) go to #standin-errors.
 */
(function() {
	var root = document.documentElement;

	function fail(err) {
		root.setAttribute('data-standin', 'failed');
		var pre = document.getElementById('standin-errors');
		pre.appendChild(document.createTextNode(String(err && err.stack || err) + '\n'));
	}
	window.addEventListener('error', function(ev) { fail(ev.error || ev.message); });
	window.addEventListener('unhandledrejection', function(ev) { fail(ev.reason); });

	String.prototype.format = function() {
		var args = arguments, i = 0;
		return this.replace(/%([sd%])/g, function(m, c) {
			if (c == '%')
				return '%';
			var v = args[i++];
			return c == 'd' ? String(Math.floor(+v)) : String(v);
		});
	};
	window._ = function(s) { return s; };

	var Class = function() {};
	Class.extend = function(props) {
		var Parent = this;
		var Ctor = function() {
			if (typeof this.__init__ == 'function')
				this.__init__.apply(this, arguments);
		};
		Ctor.prototype = Object.assign(Object.create(Parent.prototype), props);
		Ctor.prototype.constructor = Ctor;
		Ctor.extend = Class.extend;
		return Ctor;
	};

	var dom = {
		elem: function(e) { return e != null && typeof e == 'object' && 'nodeType' in e; },
		parse: function(s) {
			return new DOMParser().parseFromString(s, 'text/html').body.firstChild;
		},
		append: function(node, children) {
			if (Array.isArray(children)) {
				children.forEach(function(c) {
					if (dom.elem(c))
						node.appendChild(c);
					else if (c !== null && c !== undefined)
						node.appendChild(document.createTextNode('' + c));
				});
			}
			else if (typeof children == 'function')
				dom.append(node, children(node));
			else if (dom.elem(children))
				node.appendChild(children);
			else if (children !== null && children !== undefined)
				node.innerHTML = '' + children;
		},
		content: function(node, children) {
			while (node.firstChild)
				node.removeChild(node.firstChild);
			dom.append(node, children);
		},
		attr: function(node, attrs) {
			Object.keys(attrs || {}).forEach(function(k) {
				var v = attrs[k];
				if (v == null)
					return;
				if (typeof v == 'function')
					node.addEventListener(k, v);
				else
					node.setAttribute(k, typeof v == 'object' ? JSON.stringify(v) : v);
			});
		},
		create: function(html, attrs, data) {
			if (!(attrs instanceof Object) || Array.isArray(attrs))
				data = attrs, attrs = null;
			var elem;
			if (Array.isArray(html)) {
				elem = document.createDocumentFragment();
				html.forEach(function(h) { elem.appendChild(dom.create(h)); });
			}
			else
				elem = dom.elem(html) ? html : html.charAt(0) == '<' ? dom.parse(html) : document.createElement(html);
			dom.attr(elem, attrs);
			dom.append(elem, data);
			return elem;
		}
	};
	window.E = function() { return dom.create.apply(dom, arguments); };

	var L = window.L = {
		env: { pollinterval: 5 },
		dom: dom,
		Class: Class,
		bind: function(fn, self) {
			return Function.prototype.bind.apply(fn, [ self ].concat(Array.prototype.slice.call(arguments, 2)));
		},
		resolveDefault: function(p, def) {
			return Promise.resolve(p).catch(function() { return def; });
		},
		toArray: function(v) {
			return v == null ? [] : Array.isArray(v) ? v : [ v ];
		},
		url: function() {
			return '/cgi-bin/luci/' + Array.prototype.slice.call(arguments).join('/');
		}
	};

	var rpcId = 1;
	var rpc = {
		declare: function(opts) {
			return function() {
				var params = {}, args = arguments;
				(opts.params || []).forEach(function(name, i) { params[name] = args[i]; });
				var body = { jsonrpc: '2.0', id: rpcId++, method: 'call',
					params: [ '00000000000000000000000000000000', opts.object, opts.method, params ] };
				return fetch('/ubus', { method: 'POST', body: JSON.stringify(body),
					headers: { 'Content-Type': 'application/json' } }).then(function(res) {
					return res.json();
				}).then(function(res) {
					if (res.error && res.error.code && res.error.message)
						throw new Error('RPC call to %s/%s failed with error %d: %s'.format(opts.object, opts.method, res.error.code, res.error.message));
					var ret = null;
					if (Array.isArray(res.result)) {
						if (opts.reject && res.result[0] !== 0)
							throw new Error('RPC call to %s/%s failed with ubus code %d'.format(opts.object, opts.method, res.result[0]));
						ret = res.result.length > 1 ? res.result[1] : res.result[0];
					}
					for (var key in opts.expect || {}) {
						if (ret != null && key != '')
							ret = ret[key];
						var want = opts.expect[key];
						if (ret == null || Object.prototype.toString.call(ret) != Object.prototype.toString.call(want))
							ret = want;
						break;
					}
					return typeof opts.filter == 'function' ? opts.filter(ret, params) : ret;
				});
			};
		}
	};

	var poll = {
		add: function(fn, seconds) {
			var pending = false;
			var step = function() {
				if (pending)
					return;
				pending = true;
				Promise.resolve(fn()).then(function() {
					root.setAttribute('data-polls', +(root.getAttribute('data-polls') || 0) + 1);
				}).catch(fail).finally(function() { pending = false; });
			};
			window.setTimeout(step, 0);
			window.setInterval(step, (seconds || L.env.pollinterval) * 1000);
			return true;
		}
	};

	var ui = {
		// ui.js showModal / hideModal: one dialog, div.modal in #modal_overlay, whose content a
		// new showModal replaces; body gets modal-overlay-active while it is open
		showModal: function(title, children) {
			var overlay = document.getElementById('modal_overlay');
			if (!overlay) {
				overlay = E('div', { 'id': 'modal_overlay' }, [ E('div', { 'class': 'modal', 'id': 'modal' }) ]);
				document.getElementById('maincontent').appendChild(overlay);
			}
			var dialog = overlay.firstChild;
			dom.content(dialog, [ title ? E('h4', [ title ]) : '' ].concat(children));
			document.body.classList.add('modal-overlay-active');
			return dialog;
		},
		hideModal: function() {
			document.body.classList.remove('modal-overlay-active');
			var overlay = document.getElementById('modal_overlay');
			if (overlay)
				overlay.remove();
		},
		// ui.js addNotification: the children go in with dom.append (a node, a string or an
		// array), not as E()'s second argument, where a lone node would be taken for attributes.
		addNotification: function(title, children, cls) {
			var body = E('div');
			dom.append(body, children);
			var n = E('div', { 'class': 'alert-message ' + (cls || '') }, [ title ? E('h4', [ title ]) : '', body ]);
			document.getElementById('notifications').appendChild(n);
			return n;
		},
		createHandlerFn: function(ctx, fn) {
			var args = Array.prototype.slice.call(arguments, 2);
			fn = typeof fn == 'string' ? ctx[fn] : fn;
			return function(ev) {
				var button = ev.currentTarget;
				button.disabled = true;
				return Promise.resolve(fn.apply(ctx, args.concat([ ev ]))).finally(function() { button.disabled = false; });
			};
		}
	};

	var baseclass = Class.extend({});
	// view.js: a view's nodes, and the footer with Save & Apply / Save / Reset unless the view
	// sets handleSave (and handleSaveApply) to null; the form stand-in does the saving.
	var view = Class.extend({
		__init__: function() {
			var vp = document.getElementById('view'), self = this;
			return Promise.resolve(this.load()).then(L.bind(this.render, this)).then(function(nodes) {
				dom.content(vp, nodes);
				if (self.handleSave)
					vp.appendChild(E('div', { 'class': 'cbi-page-actions' }, [
						E('button', { 'class': 'btn cbi-button cbi-button-apply', 'data-action': 'save-apply',
							'click': function(ev) { return self.handleSaveApply(ev).catch(function() {}); } }, [ _('Save & Apply') ]), ' ',
						E('button', { 'class': 'btn cbi-button cbi-button-save', 'data-action': 'save',
							'click': function(ev) { return self.handleSave(ev).catch(function() {}); } }, [ _('Save') ]), ' ',
						E('button', { 'class': 'btn cbi-button cbi-button-reset', 'data-action': 'reset',
							'click': function() { location.reload(); } }, [ _('Reset') ])
					]));
				root.setAttribute('data-standin', 'rendered');
			}).catch(fail);
		},
		load: function() {},
		render: function() {},
		handleSave: function(ev) { return L.standin.viewActions.handleSave(ev); },
		handleSaveApply: function(ev) { return L.standin.viewActions.handleSaveApply(ev); },
		handleReset: function() {}
	});
	var modules = { baseclass: baseclass, view: view, rpc: rpc, poll: poll, ui: ui };
	L.standin = { modules: modules, fail: fail };

	// A required module: the stand-in's, or the app's file (an instance if it is a class).
	function require(name) {
		if (modules[name])
			return Promise.resolve(modules[name]);
		return load(name.replace(/\./g, '/')).then(function(Cls) {
			modules[name] = (typeof Cls == 'function' && Cls.prototype instanceof baseclass) ? new Cls() : Cls;
			return modules[name];
		});
	}

	function requireFor(dep, name) {
		return require(dep).catch(function(err) {
			throw new Error('the stand-in has no module "' + dep + '" (required by ' + name + '): ' + err.message);
		});
	}

	// Load one module file as luci.js does: its leading 'require X [as Y]' strings name the
	// modules passed to the body.
	function load(name) {
		var url = '/luci-static/resources/' + name + '.js';
		return fetch(url).then(function(res) {
			if (!res.ok)
				throw new Error('HTTP ' + res.status + ' for ' + url);
			return res.text();
		}).then(function(source) {
			var names = [], deps = [], re = /^\s*(?:\/\*[\s\S]*?\*\/\s*|\/\/[^\n]*\n\s*)*'(use strict|require\s+(\S+?)(?:\s+as\s+(\w+))?)';/, m, rest = source;
			while ((m = re.exec(rest)) != null) {
				if (m[2]) {
					names.push(m[3] || m[2].replace(/[^a-zA-Z0-9_]/g, '_'));
					deps.push(requireFor(m[2], name));
				}
				rest = rest.substr(m[0].length);
			}
			return Promise.all(deps).then(function(values) {
				var factory = new Function([ 'window', 'document', 'L' ].concat(names).join(', '), source + '\n//# sourceURL=' + url);
				return factory.apply(null, [ window, document, L ].concat(values));
			});
		});
	}

	var module = new URLSearchParams(location.search).get('module');
	document.addEventListener('DOMContentLoaded', function() {
		load(module).then(function(Cls) {
			if (Cls.prototype instanceof view) {
				new Cls();
				return;
			}
			var inst = new Cls();
			return Promise.resolve(inst.load()).then(L.bind(inst.render, inst)).then(function(node) {
				dom.content(document.getElementById('view'), E('div', { 'class': 'cbi-section' }, [ E('h3', [ inst.title ]), node ]));
				root.setAttribute('data-standin', 'rendered');
			});
		}).catch(fail);
	});
})();
