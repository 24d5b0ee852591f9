"""The dataplane shells (SPEC section 5): what makes a decision real in the kernel.

- ``process``     running the tools it drives (argv in, result out), the seam tests replace
- ``translator``  the interface of an EAM translator (Jool), and its errors
- ``jool``        Jool SIIT (kernel module; its own network namespace), driven by jool_siit
- ``tayga``       tayga (user space), run by the daemon as the CLAT
- ``clat``        which CLAT the router runs (netifd's 464xlat, the IPv4 default route), its Pref64
- ``nftlib``      nft commands in process through libnftables (ctypes); the binary as fallback
- ``nft``         the daemon's own nftables table: both legs of every mapping, host sets
- ``kernel``      the CLAT sources + nft table + flow oracle as one dataplane
- ``build``       the dataplane the configuration asks for
- ``conntrack``   the flow oracle: which (D, P) pairs still carry connections
- ``guard``       the safety net's nft rules: marks, refusals held back, MSS clamp, brake
- ``ctevents``    conntrack events of steered flows only (a BPF filter on the mark); deletion
- ``neighbours``  the neighbour tables read for host classification (``core.hosts`` decides)
- ``rtnl``        links, addresses and neighbours from rtnetlink (its own small codec)
- ``interfaces``  the router's own prefixes (never mapped; the pool must avoid them)
- ``routeradv``   router advertisements of the WAN, heard for their PREF64 (RFC 8781)
- ``netns``       work inside another network namespace (sockets, the nft context)
"""
