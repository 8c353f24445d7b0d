#!/usr/bin/env python3
"""Turns a loopback pcap of real STUN/TURN traffic into fuzz seeds.

  fuzz/pcap_to_seeds.py CAPTURE.pcap SERVER_PORT PREFIX

Writes, under fuzz/seeds/:
  stun_decode/PREFIX-*     every UDP payload that carries the STUN magic cookie
  stream_framing/PREFIX-*  each TCP byte stream from a client to SERVER_PORT
  turn_server/PREFIX-*     each client's datagrams/frames in the record framing
                           of fuzz_targets/turn_server.rs
"""
import hashlib, os, struct, sys
from collections import defaultdict

def packets(path):
    with open(path, "rb") as f:
        magic = f.read(24)
        little = magic[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
        linktype = struct.unpack("<I" if little else ">I", magic[20:24])[0]
        e = "<" if little else ">"
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            _, _, incl, _ = struct.unpack(e + "IIII", h)
            data = f.read(incl)
            # DLT_EN10MB (1) on lo has a 14-byte Ethernet header; DLT_NULL (0) 4; LINUX_SLL (113) 16.
            off = {1: 14, 0: 4, 113: 16, 276: 20}.get(linktype, 14)
            yield data[off:]

def parse(ip):
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return None
    ihl = (ip[0] & 15) * 4
    proto = ip[9]
    seg = ip[ihl:struct.unpack(">H", ip[2:4])[0]]
    if proto == 17 and len(seg) >= 8:
        sp, dp = struct.unpack(">HH", seg[:4])
        return ("udp", sp, dp, seg[8:], None)
    if proto == 6 and len(seg) >= 20:
        sp, dp, seq = struct.unpack(">HHI", seg[:8])
        doff = (seg[12] >> 4) * 4
        return ("tcp", sp, dp, seg[doff:], seq)
    return None

def is_stun(b):
    return len(b) >= 20 and b[0] < 4 and b[4:8] == b"\x21\x12\xa4\x42"

def frames(stream):
    out, i = [], 0
    while i + 4 <= len(stream):
        ln = struct.unpack(">H", stream[i + 2:i + 4])[0]
        if stream[i] < 4:
            total = 20 + ln
        elif 0x40 <= stream[i] <= 0x7F:
            total = 4 + (ln + 3) // 4 * 4
        else:
            break
        if i + total > len(stream):
            break
        out.append(stream[i:i + total])
        i += total
    return out

def write(dir_, prefix, blob, limit):
    os.makedirs(dir_, exist_ok=True)
    existing = [n for n in os.listdir(dir_) if n.startswith(prefix)]
    if len(existing) >= limit:
        return
    name = f"{prefix}-{hashlib.sha1(blob).hexdigest()[:16]}"
    with open(os.path.join(dir_, name), "wb") as f:
        f.write(blob)

def main():
    path, port, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
    udp_sessions = defaultdict(list)
    tcp_streams = defaultdict(dict)
    for ip in packets(path):
        p = parse(ip)
        if not p:
            continue
        kind, sp, dp, payload, seq = p
        if kind == "udp" and payload:
            if is_stun(payload):
                write(os.path.join(root, "stun_decode"), prefix, payload, 300)
            if dp == port:
                udp_sessions[sp].append(payload)
        elif kind == "tcp" and dp == port and payload:
            tcp_streams[sp][seq] = payload
    for i, (sp, dgrams) in enumerate(sorted(udp_sessions.items())):
        rec = b"".join(bytes([0, i % 8]) + struct.pack(">H", len(d)) + d for d in dgrams)
        write(os.path.join(root, "turn_server"), prefix, rec, 100)
    for i, (sp, segs) in enumerate(sorted(tcp_streams.items())):
        stream = b"".join(segs[s] for s in sorted(segs))
        write(os.path.join(root, "stream_framing"), prefix, stream, 100)
        rec = b"".join(bytes([1, i % 8]) + struct.pack(">H", len(fr)) + fr for fr in frames(stream))
        write(os.path.join(root, "turn_server"), prefix, rec, 100)

if __name__ == "__main__":
    main()
