"""Packet capture for sniff.py, run as its own process (as root, often inside a namespace).

Standard library only, started by file path: `python _capture.py --iface lo --port 5353
--out FILE`.  Opens an AF_PACKET socket on the interface and appends one line per UDP datagram
whose destination port matches (also the source port with --both):

    <unix time> <src addr> <src port> <dst addr> <dst port> <payload hex>

Each line is flushed at once, so the test can read the file while the capture runs.  On
loopback every packet passes twice (outgoing, then incoming); only the incoming copy counts.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
ETH_HLEN = 14
IPPROTO_UDP = 17


def udp_of(frame: bytes) -> tuple[str, int, str, int, bytes] | None:
    """(src, sport, dst, dport, payload) of an Ethernet frame carrying UDP, else None."""
    if len(frame) < ETH_HLEN:
        return None
    (ethertype,) = struct.unpack("!H", frame[12:14])
    packet = frame[ETH_HLEN:]
    if ethertype == 0x0800 and len(packet) >= 20:
        ihl = (packet[0] & 0x0F) * 4
        frag = struct.unpack("!H", packet[6:8])[0] & 0x1FFF
        if packet[9] != IPPROTO_UDP or frag:
            return None
        src, dst = ipaddress.ip_address(packet[12:16]), ipaddress.ip_address(packet[16:20])
        udp = packet[ihl:]
    elif ethertype == 0x86DD and len(packet) >= 40:
        if packet[6] != IPPROTO_UDP:  # extension headers are not followed
            return None
        src, dst = ipaddress.ip_address(packet[8:24]), ipaddress.ip_address(packet[24:40])
        udp = packet[40:]
    else:
        return None
    if len(udp) < 8:
        return None
    sport, dport, length = struct.unpack("!HHH", udp[:6])
    return str(src), sport, str(dst), dport, udp[8:length]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iface", default="lo")
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("--both", action="store_true", help="match the source port too")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    ports = set(args.port)

    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((args.iface, 0))
    with open(args.out, "a", encoding="ascii") as out:
        print(f"ready: capturing UDP port(s) {sorted(ports)} on {args.iface}", flush=True)
        while True:
            frame, addr = sock.recvfrom(65535)
            if addr[2] == PACKET_OUTGOING:
                continue
            udp = udp_of(frame)
            if udp is None:
                continue
            src, sport, dst, dport, payload = udp
            if dport in ports or (args.both and sport in ports):
                out.write(f"{time.time():.6f} {src} {sport} {dst} {dport} {payload.hex()}\n")
                out.flush()


if __name__ == "__main__":
    sys.exit(main())
