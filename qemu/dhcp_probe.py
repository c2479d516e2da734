#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A DHCP client for the lab's checks of dhcpd.conf's branches that no QEMU firmware takes: it
sends what a given firmware sends (DISCOVER, then REQUEST for what was offered) and prints the
server's OFFER and ACK as JSON (bootp fields and options).

Run inside a lab network namespace on a veth port of its bridge (ask() sets that up):
  dhcp_probe.py --iface IFACE --mac MAC --arch N [--vendor-class TEXT] [--user-class TEXT]
With --record it prints every DHCP request and answer it sees on IFACE instead (one JSON line
each: what each client said and what the server answered), until it is stopped; the lab runs it
on the bridge next to dhcpd (harness.Dhcpd.packets()).

Python standard library only: raw AF_PACKET frames, because the client has no address yet and
must send from 0.0.0.0:68 to the broadcast address with its own MAC (the MAC dhcpd.conf's host
statements match).
"""

import argparse
import json
import os
import random
import socket
import struct
import subprocess
import sys
import time

COOKIE = b"\x63\x82\x53\x63"
DISCOVER, OFFER, REQUEST, ACK, NAK = 1, 2, 3, 5, 6
ETH_P_IP, ETH_P_ALL = 0x0800, 0x0003
# What the firmware clients ask for (EDK2's PXE and HTTP Boot ask for these and more): subnet
# mask, router, DNS, host name, domain, vendor class (60), TFTP server (66), boot file (67).
PARAMS = bytes([1, 3, 6, 12, 15, 43, 54, 60, 66, 67])


def option(code, value):
    return bytes([code, len(value)]) + value


def checksum(data):
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


def frame(mac, bootp):
    """Ethernet broadcast, IPv4 0.0.0.0 -> 255.255.255.255, UDP 68 -> 67 (no UDP checksum)."""
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes(4), b"\xff" * 4)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return b"\xff" * 6 + mac + struct.pack("!H", ETH_P_IP) + ip + udp


def bootp(mac, xid, msg_type, args, extra=b""):
    head = struct.pack("!BBBBIHH4s4s4s4s", 1, 1, 6, 0, xid, 0, 0x8000,
                       bytes(4), bytes(4), bytes(4), bytes(4))
    opts = option(53, bytes([msg_type])) + option(93, struct.pack("!H", args.arch))
    opts += option(94, b"\x01\x03\x00")  # client network interface: UNDI 3.0
    if args.vendor_class:
        opts += option(60, args.vendor_class.encode())
    if args.user_class:
        opts += option(77, args.user_class.encode())
    opts += option(55, PARAMS) + extra + b"\xff"
    return head + mac + bytes(10) + bytes(64) + bytes(128) + COOKIE + opts


def parse(packet):
    """A received Ethernet frame -> the BOOTP reply as a dict, or None."""
    ip = packet[14:]
    if packet[12:14] != b"\x08\x00" or len(ip) < 28 or ip[9] != 17:
        return None
    ihl = (ip[0] & 0x0F) * 4
    sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
    b = ip[ihl + 8:]
    if (b[:1], dport) not in ((b"\x01", 67), (b"\x02", 68)) or len(b) < 240 or b[236:240] != COOKIE:
        return None
    opts, i = {}, 240
    while i < len(b) and b[i] != 255:
        if b[i] == 0:
            i += 1
            continue
        code, n = b[i], b[i + 1]
        opts[code] = b[i + 2:i + 2 + n]
        i += 2 + n
    text = lambda v: v.split(b"\0", 1)[0].decode("latin-1")  # noqa: E731
    return {
        "op": b[0], "xid": struct.unpack("!I", b[4:8])[0],
        "yiaddr": socket.inet_ntoa(b[16:20]), "siaddr": socket.inet_ntoa(b[20:24]),
        "chaddr": ":".join(f"{x:02x}" for x in b[28:34]),
        "sname": text(b[44:108]), "file": text(b[108:236]),
        "type": opts.get(53, b"\0")[0],
        "options": {str(k): (v.decode("latin-1") if k in (60, 66, 67, 77, 12, 15) else v.hex())
                    for k, v in sorted(opts.items())},
    }


def exchange(sock, mac, xid, packet, want, timeout):
    sock.send(frame(mac, packet))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            reply = parse(sock.recv(4096))
        except socket.timeout:
            break
        if reply and reply["op"] == 2 and reply["xid"] == xid and reply["type"] in (want, NAK):
            return reply
    return None


def record(iface):
    """Prints every DHCP request and answer seen on iface, one JSON line each, until killed.
    ETH_P_ALL: only such sockets see the frames the host itself sends (dhcpd's answers)."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as sock:
        sock.bind((iface, 0))
        print(json.dumps({"recording": iface}), flush=True)
        while True:
            got = parse(sock.recv(65536))
            if got:
                print(json.dumps(got), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iface", required=True)
    p.add_argument("--record", action="store_true",
                   help="record every DHCP packet on --iface (JSON lines) instead of asking")
    p.add_argument("--mac")
    p.add_argument("--arch", type=int, help="option 93: 0 BIOS, 7 UEFI x64, 16 UEFI x64 HTTP")
    p.add_argument("--vendor-class", help="option 60, e.g. PXEClient:Arch:00000:UNDI:002001")
    p.add_argument("--user-class", help="option 77, e.g. iPXE")
    p.add_argument("--timeout", type=float, default=15)
    args = p.parse_args()
    if args.record:
        return record(args.iface)
    if args.mac is None or args.arch is None:
        p.error("--mac and --arch are needed to ask")
    mac = bytes.fromhex(args.mac.replace(":", ""))
    xid = random.getrandbits(32)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP)) as sock:
        sock.bind((args.iface, 0))
        offer = exchange(sock, mac, xid, bootp(mac, xid, DISCOVER, args), OFFER, args.timeout)
        ack = None
        if offer and offer["type"] == OFFER:
            extra = option(50, socket.inet_aton(offer["yiaddr"])) + \
                option(54, bytes.fromhex(offer["options"].get("54", "00000000")))
            ack = exchange(sock, mac, xid, bootp(mac, xid, REQUEST, args, extra), ACK, args.timeout)
    json.dump({"offer": offer, "ack": ack}, sys.stdout, indent=1)
    print()
    return 0 if offer and ack and ack["type"] == ACK else 1


def ask(netns, mac, arch, vendor_class=None, user_class=None):
    """Runs the probe in the lab's network namespace from a veth port of its bridge whose MAC is
    `mac` (made for the probe, removed afterwards). Returns (exit code, {"offer", "ack"} or the
    output that did not parse)."""
    port, peer = "probe0", "probe0-br"
    netns.ip("link", "add", port, "address", mac, "type", "veth", "peer", "name", peer)
    try:
        netns.ip("link", "set", peer, "master", "br0")
        netns.ip("link", "set", peer, "up")
        netns.ip("link", "set", port, "up")
        cmd = netns.prefix() + [sys.executable, os.path.abspath(__file__), "--iface", port,
                                "--mac", mac, "--arch", str(arch)]
        if vendor_class:
            cmd += ["--vendor-class", vendor_class]
        if user_class:
            cmd += ["--user-class", user_class]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        try:
            return p.returncode, json.loads(p.stdout)
        except ValueError:
            return p.returncode, (p.stdout + p.stderr)[-2000:]
    finally:
        netns.ip("link", "del", port)


if __name__ == "__main__":
    sys.exit(main())
