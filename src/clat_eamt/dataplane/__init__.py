"""The dataplane shells (SPEC section 5): what makes a decision real in the kernel.

- ``translator``  the interface every translator backend implements, and its errors
- ``jool``        Jool SIIT (kernel module; its own network namespace), driven by jool_siit
- ``tayga``       tayga (user space), run by the daemon as the CLAT
- ``nft``         the daemon's own nftables table: DNAT map D -> P, excluded hosts
- ``conntrack``   the flow oracle: which (D, P) pairs still carry connections
- ``neighbours``  host classification from the neighbour tables
"""
