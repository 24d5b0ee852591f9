'use strict';
'require baseclass';

/*
 * The daemon's checks of one option value, for the settings form: check(rule, value) is true
 * when the daemon accepts `value`, else a message saying what is expected.  The rules are data
 * generated from the daemon's option schema (clat-eamt/schema.js, `rule` of each option); each
 * kind below does what the daemon's value type does (src/clat_eamt/config/types.py and
 * nettypes.py, with Python's ipaddress rules), so that the form accepts exactly the words the
 * daemon accepts.  LuCI's own datatypes (validation.js) differ in details the daemon cares
 * about: blanks around a value, leading zeros, host bits, netmask notation, '*' in a name.
 * tests/unit/test_luci_validate.py runs one table of values through both.
 */

var HEX = /^[0-9A-Fa-f]{1,4}$/;

// Python's str.strip() for the blanks a form field can hold
function strip(s) {
	return s.replace(/^[\s\x1c-\x1f\x85]+|[\s\x1c-\x1f\x85]+$/g, '');
}

// ipaddress.IPv4Address: four decimal octets 0-255, no leading zeros; a BigInt or null
function ipv4(s) {
	var parts = s.split('.');
	if (parts.length != 4)
		return null;
	var n = 0n;
	for (var i = 0; i < 4; i++) {
		var p = parts[i];
		if (!/^[0-9]{1,3}$/.test(p) || (p.length > 1 && p[0] == '0') || +p > 255)
			return null;
		n = (n << 8n) | BigInt(+p);
	}
	return n;
}

// ipaddress.IPv6Address (no scope id): hextets of 1-4 hex digits, one '::' for at least one
// zero hextet, an IPv4 address as the last 32 bits; a BigInt or null
function ipv6(s) {
	var parts = s.split(':');
	if (parts.length < 3)
		return null;
	if (parts[parts.length - 1].indexOf('.') != -1) {
		var v4 = ipv4(parts.pop());
		if (v4 == null)
			return null;
		parts.push((v4 >> 16n).toString(16), (v4 & 0xffffn).toString(16));
	}
	if (parts.length > 9)
		return null;
	var skip = -1, i;
	for (i = 1; i < parts.length - 1; i++)
		if (!parts[i]) {
			if (skip != -1)
				return null;
			skip = i;
		}
	var hi, lo, skipped;
	if (skip != -1) {
		hi = skip;
		lo = parts.length - skip - 1;
		if (!parts[0] && --hi)
			return null;
		if (!parts[parts.length - 1] && --lo)
			return null;
		skipped = 8 - (hi + lo);
		if (skipped < 1)
			return null;
	}
	else {
		if (parts.length != 8 || !parts[0] || !parts[7])
			return null;
		hi = 8, lo = 0, skipped = 0;
	}
	var n = 0n;
	for (i = 0; i < hi; i++) {
		if (!HEX.test(parts[i]))
			return null;
		n = (n << 16n) | BigInt(parseInt(parts[i], 16));
	}
	n <<= 16n * BigInt(skipped);
	for (i = parts.length - lo; i < parts.length; i++) {
		if (!HEX.test(parts[i]))
			return null;
		n = (n << 16n) | BigInt(parseInt(parts[i], 16));
	}
	return n;
}

// address of `family` (0: either) -> [family, BigInt] or null
function address(s, family) {
	var v;
	if (family != 6 && (v = ipv4(s)) != null)
		return [ 4, v ];
	if (family != 4 && (v = ipv6(s)) != null)
		return [ 6, v ];
	return null;
}

// IPv4Prefix / IPv6Prefix / Checked(pref64_problem): a strict network, host bits zero
function prefix(rule, value) {
	var family = rule.family || (value.indexOf(':') != -1 ? 6 : 4);
	var word = strip(value);
	var what = family == 4 ? _('an IPv4 address or prefix like 192.0.2.0/24') : _('an IPv6 address or prefix like 2001:db8::/32');
	if ((family == 4) == (word.indexOf(':') != -1))
		return what;
	if (!(family == 4 ? /^[0-9.]+(\/[0-9]{1,2})?$/ : /^[0-9A-Fa-f:.]+(\/[0-9]{1,3})?$/).test(word))
		return what;
	var bits = family == 4 ? 32 : 128, m = word.split('/');
	var addr = family == 4 ? ipv4(m[0]) : ipv6(m[0]);
	var len = m.length > 1 ? +m[1] : bits;
	if (addr == null || len > bits)
		return what;
	var host = (1n << BigInt(bits - len)) - 1n;
	if (addr & host)
		return _('a prefix without host bits set');
	if (rule.lengths && rule.lengths.indexOf(len) == -1)
		return _('a NAT64 prefix of length %s (RFC 6052 section 2.2)').format(rule.lengths.map(function(n) { return '/' + n; }).join(', '));
	if (rule.zero_bits) {
		var span = BigInt(rule.zero_bits[1] - rule.zero_bits[0]);
		var mask = ((1n << span) - 1n) << BigInt(bits - rule.zero_bits[1]);
		if (addr & mask)
			return _('a NAT64 prefix with bits %d-%d zero (RFC 6052 section 2.2)').format(rule.zero_bits[0], rule.zero_bits[1] - 1);
	}
	return true;
}

var KINDS = {
	bool: function(rule, value) {
		return rule.words.indexOf(strip(value).toLowerCase()) != -1 || _('a boolean (1/0, yes/no, on/off, true/false)');
	},
	'int': function(rule, value) {
		var word = strip(value);
		return (/^-?[0-9]+$/.test(word) && +word >= rule.min && +word <= rule.max) || _('an integer %d..%d').format(rule.min, rule.max);
	},
	choice: function(rule, value) {
		return rule.values.indexOf(strip(value)) != -1 || _('one of %s').format(rule.values.join(', '));
	},
	prefix: prefix,
	address: function(rule, value) {
		var word = strip(value);
		if (rule.optional && !word)
			return true;
		var what = rule.family ? _('an IPv%d address').format(rule.family) : _('an IPv4 or IPv6 address');
		if (/[%\/]/.test(word))
			return _('%s without /length or %%zone').format(what);
		return address(word, rule.family) != null || what;
	},
	server: function(rule, value) {
		var word = strip(value), i = word.indexOf('#');
		var addr = i == -1 ? word : word.substr(0, i), port = i == -1 ? '' : word.substr(i + 1);
		var what = _('a DNS server: ADDRESS or ADDRESS#PORT');
		if (port && (!/^[0-9]{1,5}$/.test(port) || +port < 1 || +port > 65535))
			return what;
		addr = strip(addr);
		return (!/[%\/]/.test(addr) && address(addr, 0) != null) || what;
	},
	path: function(rule, value) {
		var word = strip(value);
		return (rule.optional && !word) || (word[0] == '/' && !/[\x00-\x1f]/.test(word)) || _('an absolute path like /tmp/resolv.conf.auto');
	},
	// core/provider.py url_problem
	url: function(rule, value) {
		if (!value)
			return true;
		var ok = /^https?:\/\/[^\/]/.test(value) && !/[\s\x00-\x1f\x7f]/.test(value);
		return ok || _('an https:// (or http://) URL without spaces');
	},
	// core/provider.py public_key_problem: the base64 line of a usign .pub file
	usign_key: function(rule, value) {
		if (!value)
			return true;
		var what = _('the base64 line of a usign public key (.pub file)');
		if (!/^[A-Za-z0-9+\/]*={0,2}$/.test(value) || value.length % 4)
			return what;
		var raw = atob(value);
		return (raw.length == 42 && raw.substr(0, 2) == 'Ed') || what;
	},
	name: function(rule, value) {
		var word = strip(value);
		return (rule.optional && !word) || new RegExp(rule.pattern).test(word)
			|| _('a name of letters, digits, \'_\', \'.\', \'-\' (at most 15)');
	},
	dnsname: function(rule, value) {
		var name = strip(value).replace(/\.+$/, '').toLowerCase();
		var ok = name && name.length <= 253 && name.split('.').every(function(label) {
			return /^(?!-)[a-z0-9_*-]{1,63}(?<!-)$/.test(label);
		});
		return ok || _('a DNS name of labels of letters, digits, \'-\', \'_\' and \'*\'');
	},
	text: function(rule, value) {
		return !/[\x00-\x08\x0a-\x1f\x7f]/.test(value) || _('text on one line without control characters');
	}
};

return baseclass.extend({
	check: function(rule, value) {
		var kind = KINDS[rule && rule.kind];
		return kind ? kind(rule, String(value == null ? '' : value)) : true;
	}
});
