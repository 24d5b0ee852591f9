"""The DNS shell: the proxy dnsmasq forwards to (SPEC section 3).

- ``wire``       the DNS wire format as far as the proxy touches it (pure)
- ``records``    an answer's records, read strictly; TTL clamping (pure)
- ``identity``   which LAN client asked, from dnsmasq's EDNS options (pure)
- ``answers``    addresses, TTLs and CNAME chains of answers -> the core's Observation (pure)
- ``remembered`` the AAAA answers asked beside A queries, kept for their own TTL (pure)
- ``repeated``   A answers read once per name while they repeat but for ID and TTLs (pure)
- ``datagram``   UDP sockets read until empty at each wake-up of the loop
- ``transport``  UDP socket pool (RFC 5452) and reused TCP connections (RFC 7766)
- ``upstream``   exchanges with the resolvers, failover between them, identical ones coalesced
- ``resolvconf`` the WAN's resolvers from a resolv.conf file, re-read when it changes
- ``discovery``  Pref64 from ipv4only.arpa (RFC 7050)
- ``synthesize`` the A answer made for an IPv6-only name, and when one may be made (pure)
- ``proxy``      the resolver seam: one message in, one out; the A + AAAA hold
- ``server``     UDP and TCP listeners
"""
