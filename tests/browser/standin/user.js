'use strict';

/*
 * A user of the stand-in page, for the browser test: ?steps=JSON is a list of steps played in
 * order once the view has rendered, each as a person would do it in the browser:
 *
 *   {"set": ID, "value": TEXT}   type TEXT into the field #ID, or the one a CSS selector names
 *                                (input, keyup, blur, change)
 *   {"add": ID, "value": TEXT}   type TEXT into the add field of the list #ID, press "+"
 *   {"toggle": ID}               click the checkbox #ID
 *   {"click": ACTION}            click the button [data-action=ACTION] and wait for its work
 *
 * When all have run, <html> gets data-steps="done" (or "failed" and the error in
 * #standin-errors).  Without ?steps it does nothing.
 */
(function() {
	var steps = JSON.parse(new URLSearchParams(location.search).get('steps') || 'null');
	var root = document.documentElement;
	if (!steps)
		return;

	function type(field, text) {
		field.focus();
		field.value = text;
		[ 'input', 'keyup', 'blur', 'change' ].forEach(function(kind) {
			field.dispatchEvent(new Event(kind, { bubbles: true }));
		});
	}

	function settle() {  // let the page's promises and fetches run
		return new Promise(function(resolve) { window.setTimeout(resolve, 300); });
	}

	function find(id) {  // an element id, or a CSS selector
		var node = document.getElementById(id) || document.querySelector(id);
		if (!node)
			throw new Error('nothing is ' + id);
		return node;
	}

	function play(step) {
		if (step.set != null) {
			type(find(step.set), step.value);
			return settle();
		}
		if (step.toggle != null) {
			document.getElementById(step.toggle).click();
			return settle();
		}
		if (step.add != null) {
			var list = document.getElementById(step.add);
			type(list.querySelector('.add-item > input'), step.value);
			list.querySelector('.cbi-button-add').click();
			return settle();
		}
		var button = document.querySelector('[data-action="' + step.click + '"]');
		if (!button)
			throw new Error('no button ' + step.click);
		button.click();
		return settle().then(settle);
	}

	function waitRendered() {
		return new Promise(function(resolve, reject) {
			var n = 0, t = window.setInterval(function() {
				if (root.getAttribute('data-standin') == 'rendered' || ++n > 100) {
					window.clearInterval(t);
					return root.getAttribute('data-standin') == 'rendered' ? resolve() : reject(new Error('not rendered'));
				}
			}, 50);
		});
	}

	document.addEventListener('DOMContentLoaded', function() {
		waitRendered().then(settle).then(function() {
			return steps.reduce(function(p, step) { return p.then(function() { return play(step); }); }, Promise.resolve());
		}).then(function() {
			root.setAttribute('data-steps', 'done');
		}, function(err) {
			root.setAttribute('data-steps', 'failed');
			L.standin.fail(err);
		});
	});
})();
