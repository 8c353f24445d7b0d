/* SPDX-License-Identifier: MIT OR GPL-2.0-only */
/*
 * relay.h: what relay.bpf.c shares with userspace (the map layouts and the
 * maps, mirrored byte for byte by crates/offload/src/wire.rs) and its
 * checksum arithmetic.
 */
#ifndef SWITCHBOARD_RELAY_H
#define SWITCHBOARD_RELAY_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define AF_INET 2
#define AF_INET6 10
#define CD_HLEN 4
/* The TURN core accepts 0x4000-0x7FFF (RFC 5766's range, still used). */
#define CHANNEL_FIRST 0x4000
#define CHANNEL_LAST 0x7FFF
/* `ports` holds two 65536-bit sets: listen ports, then relay ports. */
#define PORT_WORDS 1024
#define LISTEN_SET 0
#define RELAY_SET PORT_WORDS
#define UNLIMITED (~0ULL)
/* Headers a TC program needs in the linear area (Ethernet, IPv6, UDP, CD). */
#define PULL_LEN (ETH_HLEN + 40 + 8 + CD_HLEN)

/* to_peer key: what a ChannelData datagram names. IPv4 as ::ffff:a.b.c.d. */
struct chan_key {
	__u8 client[16];
	__u8 server[16];
	__be16 client_port;
	__be16 server_port;
	__be16 channel;
	__u8 family;
	__u8 pad;
};

struct chan_route {
	__u8 relay[16];
	__u8 peer[16];
	__be16 relay_port;
	__be16 peer_port;
	__u32 slot;
};

/* to_client key: a peer's datagram to a relay address. */
struct peer_key {
	__u8 peer[16];
	__u8 relay[16];
	__be16 peer_port;
	__be16 relay_port;
	__u8 family;
	__u8 pad[3];
};

struct peer_route {
	__u8 client[16];
	__u8 server[16];
	__be16 client_port;
	__be16 server_port;
	__be16 channel;
	__u16 pad;
	__u32 slot;
};

/* One entry's counters; only this program writes them, atomically. */
struct counters {
	__u64 to_peer_packets;
	__u64 to_peer_bytes;
	__u64 to_client_packets;
	__u64 to_client_bytes;
	/* Bytes charged against the grant (both directions). */
	__u64 charged;
};

/* Why a datagram for a TURN port was forwarded or left to the stack. */
enum stat {
	STAT_FORWARDED,
	STAT_NO_ENTRY,
	STAT_BAD_LENGTH,
	STAT_OVER_BUDGET,
	STAT_NO_ROUTE,
	STAT_UNSUPPORTED,
	STAT_COUNT,
};

enum hook { HOOK_XDP, HOOK_TC };

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct chan_key);
	__type(value, struct chan_route);
} to_peer SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct peer_key);
	__type(value, struct peer_route);
} to_client SEC(".maps");

/* Indexed by an entry's slot; userspace zeroes a slot before using it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct counters);
} counters SEC(".maps");

/* Bytes an entry may relay in total (UNLIMITED: no limit); only
 * userspace writes them, so a refill never races the counters. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} grants SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * PORT_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} ports SEC(".maps");

/* Interfaces running this program in native XDP: the only ones XDP may
 * transmit on. Other egress interfaces are left to the TC hook. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} xdp_egress SEC(".maps");

/* [hook * STAT_COUNT + stat] */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");


/* Ones' complement sums over 16-bit words in memory order (RFC 1071):
 * byte order does not matter as long as every term is in memory order. */
static __always_inline __u32 sum_words(const void *p, const int words)
{
	const __u16 *w = p;
	__u32 s = 0;

#pragma unroll
	for (int i = 0; i < words; i++)
		s += w[i];
	return s;
}

static __always_inline __u32 neg_words(const void *p, const int words)
{
	const __u16 *w = p;
	__u32 s = 0;

#pragma unroll
	for (int i = 0; i < words; i++)
		s += (__u16)~w[i];
	return s;
}

static __always_inline __u16 fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

static __always_inline __u16 neg16(__u16 v)
{
	return (__u16)~v;
}

/* The checksum field's new value (RFC 1624 eqn. 3); 0 stays 0 on IPv4. */
static __always_inline __u16 udp_csum(__u16 old, __u32 delta)
{
	__u16 c = ~fold((__u16)~old + delta);

	return c ? c : 0xffff;
}

#endif
