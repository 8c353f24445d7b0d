// SPDX-License-Identifier: MIT OR GPL-2.0-only
/*
 * relay.bpf.c: Switchboard's kernel fast path for established TURN
 * channels (RFC 8656 §12, ChannelData over UDP).
 *
 * client -> peer: a ChannelData datagram to a TURN listen port whose
 *   (client, server, channel) is in `to_peer` loses its 4-byte header and
 *   padding and leaves from the relay address to the peer.
 * peer -> client: a datagram from a peer to a relay port whose
 *   (peer, relay) is in `to_client` gains the header and leaves from the
 *   listen address to the client.
 * Anything else, and anything this program cannot do exactly (IPv4
 * options, fragments, pending checksums, TTL 1, no route, exhausted
 * budget), goes up the stack unchanged: userspace stays the authority.
 *
 * Kernel interfaces: XDP (native mode, bpf_link) and TCX ingress
 * (sched_cls, bpf_link); bpf_fib_lookup for the next hop; XDP_TX,
 * bpf_redirect_map (DEVMAP_HASH), bpf_redirect and bpf_redirect_neigh to
 * forward; bpf_xdp_adjust_head/tail, bpf_skb_adjust_room/change_tail to
 * resize; hash, array and per-CPU array maps shared with userspace.
 * The map layouts (relay.h) are mirrored byte for byte by
 * crates/offload/src/wire.rs.
 */
#include "relay.h"

/* The rewrite decided before the packet is touched. */
struct plan {
	struct bpf_fib_lookup fib;
	union {
		struct iphdr v4;
		struct ipv6hdr v6;
	} ip;
	struct udphdr udp;
	__be16 cd[2];
	__u32 frame_len; /* bytes after the rewrite */
	__u32 payload;   /* application bytes */
	__u8 neigh;      /* TC: let bpf_redirect_neigh resolve the next hop */
};

static __always_inline int pass(const enum hook hook)
{
	return hook == HOOK_XDP ? XDP_PASS : TC_ACT_OK;
}

static __always_inline int count(const enum hook hook, enum stat s)
{
	__u32 i = (__u32)hook * STAT_COUNT + s;
	__u64 *v = bpf_map_lookup_elem(&stats, &i);

	if (v)
		*v += 1;
	return pass(hook);
}

static __always_inline int port_in(__u32 set, __u16 port)
{
	__u32 i = set + (port >> 6);
	__u64 *w = bpf_map_lookup_elem(&ports, &i);

	return w && ((*w >> (port & 63)) & 1);
}


static __always_inline void map4(__u8 out[16], const void *v4)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, v4, 4);
}

/* Copies an address from key form into a header. */
static __always_inline void put_addr(void *to, const __u8 from[16], const bool v6)
{
	if (v6)
		__builtin_memcpy(to, from, 16);
	else
		__builtin_memcpy(to, from + 12, 4);
}

static __always_inline void fib_init(struct plan *p, const bool v6, __u32 ifindex)
{
	struct bpf_fib_lookup *f = &p->fib;

	__builtin_memset(f, 0, sizeof(*f));
	f->l4_protocol = IPPROTO_UDP;
	f->sport = p->udp.source;
	f->dport = p->udp.dest;
	f->ifindex = ifindex;
	if (v6) {
		f->family = AF_INET6;
		f->tot_len = sizeof(struct ipv6hdr) + bpf_ntohs(p->ip.v6.payload_len);
		f->flowinfo = *(__be32 *)&p->ip.v6 & bpf_htonl(0x0fffffff);
		__builtin_memcpy(f->ipv6_src, &p->ip.v6.saddr, 16);
		__builtin_memcpy(f->ipv6_dst, &p->ip.v6.daddr, 16);
	} else {
		f->family = AF_INET;
		f->tot_len = bpf_ntohs(p->ip.v4.tot_len);
		f->tos = p->ip.v4.tos;
		f->ipv4_src = p->ip.v4.saddr;
		f->ipv4_dst = p->ip.v4.daddr;
	}
}

/* Next hop for the rewritten datagram: a forwarding lookup, or, where
 * forwarding is off, an output lookup bound to the ingress interface
 * (the one-NIC server). */
static __always_inline int route(void *ctx, struct plan *p, const bool v6, __u32 ifindex)
{
	int rc;

	fib_init(p, v6, ifindex);
	rc = bpf_fib_lookup(ctx, &p->fib, sizeof(p->fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FWD_DISABLED) {
		fib_init(p, v6, ifindex);
		rc = bpf_fib_lookup(ctx, &p->fib, sizeof(p->fib), BPF_FIB_LOOKUP_OUTPUT);
	}
	return rc;
}

/* Reserves `bytes` of the slot's grant: CHARGED, FREE (no limit) or
 * OVER (the stack decides, and userspace refills the grant). */
enum charge { OVER, CHARGED, FREE };

static __always_inline enum charge charge(struct counters *c, const __u64 *grant, __u64 bytes)
{
	__u64 limit = *(volatile const __u64 *)grant;

	if (limit == UNLIMITED)
		return FREE;
	if (__sync_fetch_and_add(&c->charged, bytes) + bytes <= limit)
		return CHARGED;
	__sync_fetch_and_add(&c->charged, -bytes);
	return OVER;
}

static __always_inline int load(void *ctx, const enum hook hook, __u32 off, void *to, __u32 len)
{
	if (hook == HOOK_XDP)
		return bpf_xdp_load_bytes(ctx, off, to, len);
	return bpf_skb_load_bytes(ctx, off, to, len);
}

/* 1: nothing changed (pass), 0: done, -1: failed half way (drop). */
static __always_inline int xdp_apply(struct xdp_md *ctx, struct plan *p, const bool v6,
				     const bool to_peer)
{
	const __u32 hdr = ETH_HLEN + (v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr)) +
			  sizeof(struct udphdr);
	struct ethhdr *eth;
	void *data, *end;
	__u32 len;

	/* The headers are rebuilt from the plan at the new start. */
	if (bpf_xdp_adjust_head(ctx, to_peer ? CD_HLEN : -CD_HLEN))
		return 1;
	len = ctx->data_end - ctx->data;
	if (len > p->frame_len && bpf_xdp_adjust_tail(ctx, (int)p->frame_len - (int)len))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + hdr + (to_peer ? 0 : CD_HLEN) > end)
		return -1;
	eth = data;
	__builtin_memcpy(eth->h_dest, p->fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, p->fib.smac, ETH_ALEN);
	eth->h_proto = bpf_htons(v6 ? ETH_P_IPV6 : ETH_P_IP);
	if (v6)
		__builtin_memcpy(data + ETH_HLEN, &p->ip.v6, sizeof(struct ipv6hdr));
	else
		__builtin_memcpy(data + ETH_HLEN, &p->ip.v4, sizeof(struct iphdr));
	__builtin_memcpy(data + hdr - sizeof(struct udphdr), &p->udp, sizeof(struct udphdr));
	if (!to_peer)
		__builtin_memcpy(data + hdr, p->cd, CD_HLEN);
	return 0;
}

/* 1: nothing changed (pass), 0: done, -1: failed half way (drop). */
static __always_inline int tc_apply(struct __sk_buff *skb, struct plan *p, const bool v6,
				    const bool to_peer)
{
	const __u32 iph = v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
	const __u64 csum = BPF_F_RECOMPUTE_CSUM;

	if (bpf_skb_adjust_room(skb, to_peer ? -CD_HLEN : CD_HLEN, BPF_ADJ_ROOM_NET, 0))
		return 1;
	if (skb->len > p->frame_len && bpf_skb_change_tail(skb, p->frame_len, 0))
		return -1;
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &p->ip, iph, csum) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + iph, &p->udp, sizeof(p->udp), csum))
		return -1;
	if (!to_peer &&
	    bpf_skb_store_bytes(skb, ETH_HLEN + iph + sizeof(p->udp), p->cd, CD_HLEN, csum))
		return -1;
	if (!p->neigh && (bpf_skb_store_bytes(skb, 0, p->fib.dmac, ETH_ALEN, 0) ||
			  bpf_skb_store_bytes(skb, ETH_ALEN, p->fib.smac, ETH_ALEN, 0)))
		return -1;
	return 0;
}

/* Routes, charges and rewrites a planned datagram. */
static __always_inline int forward(void *ctx, const enum hook hook, const bool v6,
				   const bool to_peer, struct plan *p, __u32 slot, __u32 ifindex)
{
	struct counters *c = bpf_map_lookup_elem(&counters, &slot);
	__u64 *grant = bpf_map_lookup_elem(&grants, &slot);
	enum charge charged;
	int rc;

	if (!c || !grant)
		return count(hook, STAT_NO_ENTRY);
	rc = route(ctx, p, v6, ifindex);
	if (hook == HOOK_XDP) {
		if (rc != BPF_FIB_LKUP_RET_SUCCESS || !bpf_map_lookup_elem(&xdp_egress, &p->fib.ifindex))
			return count(hook, STAT_NO_ROUTE);
	} else if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		p->neigh = 1;
	} else if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		return count(hook, STAT_NO_ROUTE);
	}
	charged = charge(c, grant, p->payload);
	if (charged == OVER)
		return count(hook, STAT_OVER_BUDGET);

	rc = hook == HOOK_XDP ? xdp_apply(ctx, p, v6, to_peer) : tc_apply(ctx, p, v6, to_peer);
	if (rc) {
		if (charged == CHARGED)
			__sync_fetch_and_add(&c->charged, -(__u64)p->payload);
		if (rc > 0)
			return count(hook, STAT_UNSUPPORTED);
		return hook == HOOK_XDP ? XDP_ABORTED : TC_ACT_SHOT;
	}
	if (to_peer) {
		__sync_fetch_and_add(&c->to_peer_packets, 1);
		__sync_fetch_and_add(&c->to_peer_bytes, p->payload);
	} else {
		__sync_fetch_and_add(&c->to_client_packets, 1);
		__sync_fetch_and_add(&c->to_client_bytes, p->payload);
	}
	count(hook, STAT_FORWARDED);

	if (hook == HOOK_XDP)
		return p->fib.ifindex == ifindex ? XDP_TX
						 : bpf_redirect_map(&xdp_egress, p->fib.ifindex, 0);
	if (p->neigh) {
		struct bpf_redir_neigh nh = { .nh_family = p->fib.family };

		__builtin_memcpy(nh.ipv6_nh, p->fib.ipv6_dst, 16);
		return bpf_redirect_neigh(p->fib.ifindex, &nh, sizeof(nh), 0);
	}
	return bpf_redirect(p->fib.ifindex, 0);
}

/* What both directions check once the ports matched; true: go on. */
static __always_inline bool relayable(void *ctx, const enum hook hook, const bool v6,
				      const void *ip, const struct udphdr *udp)
{
	__u32 psum;
	__u8 ttl;

	if (v6) {
		const struct ipv6hdr *h = ip;

		/* A zero checksum is invalid on IPv6: let the stack drop it. */
		if (!udp->check)
			return false;
		psum = sum_words(&h->saddr, 16);
		ttl = h->hop_limit;
	} else {
		const struct iphdr *h = ip;

		if (h->frag_off & bpf_htons(0x3fff))
			return false;
		psum = udp->check ? sum_words(&h->saddr, 4) : 0;
		ttl = h->ttl;
	}
	if (ttl <= 1)
		return false;
	if (hook == HOOK_TC && ((struct __sk_buff *)ctx)->gso_size)
		return false;
	/* A checksum still to be completed by a device (CHECKSUM_PARTIAL: a
	 * sender on this host) holds just the pseudo-header sum; moving the
	 * headers would break it. */
	if (udp->check) {
		psum += bpf_htons(IPPROTO_UDP) + udp->len;
		if (udp->check == fold(psum))
			return false;
	}
	return true;
}

/* New IP header: `src`/`dst` from the entry, TTL - 1, DSCP/ECN, DF and
 * flow label kept (RFC 8656 §14 preferred behaviour). */
static __always_inline void new_ip(struct plan *p, const bool v6, const void *ip,
				   const __u8 src[16], const __u8 dst[16], __u16 udp_len)
{
	if (v6) {
		__builtin_memcpy(&p->ip.v6, ip, sizeof(struct ipv6hdr));
		p->ip.v6.payload_len = bpf_htons(udp_len);
		p->ip.v6.hop_limit -= 1;
		put_addr(&p->ip.v6.saddr, src, true);
		put_addr(&p->ip.v6.daddr, dst, true);
	} else {
		__builtin_memcpy(&p->ip.v4, ip, sizeof(struct iphdr));
		p->ip.v4.tot_len = bpf_htons(sizeof(struct iphdr) + udp_len);
		p->ip.v4.ttl -= 1;
		put_addr(&p->ip.v4.saddr, src, false);
		put_addr(&p->ip.v4.daddr, dst, false);
		p->ip.v4.check = 0;
		p->ip.v4.check = ~fold(sum_words(&p->ip.v4, 10));
	}
}

/* Checksum delta for the pseudo header and UDP header change. */
static __always_inline __u32 header_delta(const struct plan *p, const bool v6, const void *ip,
					  const struct udphdr *old)
{
	const int aw = v6 ? 16 : 4; /* address words, source and destination */
	const void *old_addrs = v6 ? (const void *)&((const struct ipv6hdr *)ip)->saddr
				   : (const void *)&((const struct iphdr *)ip)->saddr;
	const void *new_addrs = v6 ? (const void *)&p->ip.v6.saddr : (const void *)&p->ip.v4.saddr;

	return neg_words(old_addrs, aw) + sum_words(new_addrs, aw) + neg16(old->source) +
	       neg16(old->dest) + 2 * (__u32)neg16(old->len) + p->udp.source + p->udp.dest +
	       2 * (__u32)p->udp.len;
}

/* Checksum term removing the i-th last byte of `tail` (the last four bytes
 * of a UDP datagram, starting at UDP offset `at`): a byte counts in the
 * half of its 16-bit word that its offset gives it. */
static __always_inline __u32 pad_neg(const __u8 tail[4], __u32 at, int i)
{
	__u16 b = tail[4 - i];
	bool second = (at + 4 - i) & 1;

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return neg16(second ? b << 8 : b);
#else
	return neg16(second ? b : b << 8);
#endif
}

static __always_inline int from_client(void *ctx, const enum hook hook, const bool v6,
				       void *end, const void *ip, const struct udphdr *udp,
				       __u32 ifindex)
{
	const __u32 l4 = ETH_HLEN + (v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr));
	const __be16 *cd = (const void *)(udp + 1);
	struct chan_key key;
	struct chan_route *r;
	struct plan p;
	__u16 udp_len = bpf_ntohs(udp->len), len, pad, channel;
	__u32 delta;

	if (udp_len < sizeof(*udp) + CD_HLEN || (void *)(cd + 2) > end)
		return count(hook, STAT_BAD_LENGTH);
	channel = bpf_ntohs(cd[0]);
	if (channel < CHANNEL_FIRST || channel > CHANNEL_LAST)
		return pass(hook); /* STUN, or not TURN at all */
	len = bpf_ntohs(cd[1]);
	pad = udp_len - sizeof(*udp) - CD_HLEN - len;
	if (len > udp_len - sizeof(*udp) - CD_HLEN || pad > 3 || ((len + pad) & 3 && pad))
		return count(hook, STAT_BAD_LENGTH);

	__builtin_memset(&key, 0, sizeof(key));
	if (v6) {
		__builtin_memcpy(key.client, &((const struct ipv6hdr *)ip)->saddr, 16);
		__builtin_memcpy(key.server, &((const struct ipv6hdr *)ip)->daddr, 16);
	} else {
		map4(key.client, &((const struct iphdr *)ip)->saddr);
		map4(key.server, &((const struct iphdr *)ip)->daddr);
	}
	key.client_port = udp->source;
	key.server_port = udp->dest;
	key.channel = cd[0];
	key.family = v6 ? AF_INET6 : AF_INET;
	r = bpf_map_lookup_elem(&to_peer, &key);
	if (!r)
		return count(hook, STAT_NO_ENTRY);
	if (!relayable(ctx, hook, v6, ip, udp))
		return count(hook, STAT_UNSUPPORTED);

	__builtin_memset(&p, 0, sizeof(p));
	p.payload = len;
	p.frame_len = l4 + sizeof(*udp) + len;
	new_ip(&p, v6, ip, r->relay, r->peer, sizeof(*udp) + len);
	p.udp.source = r->relay_port;
	p.udp.dest = r->peer_port;
	p.udp.len = bpf_htons(sizeof(*udp) + len);
	if (udp->check) {
		delta = header_delta(&p, v6, ip, udp) + neg16(cd[0]) + neg16(cd[1]);
		if (pad) {
			__u8 tail[4] = {};
			__u32 at = udp_len - 4;

			if (load(ctx, hook, l4 + at, tail, 4))
				return count(hook, STAT_BAD_LENGTH);
			delta += pad_neg(tail, at, 1);
			if (pad > 1)
				delta += pad_neg(tail, at, 2);
			if (pad > 2)
				delta += pad_neg(tail, at, 3);
		}
		p.udp.check = udp_csum(udp->check, delta);
	}
	return forward(ctx, hook, v6, true, &p, r->slot, ifindex);
}

static __always_inline int from_peer(void *ctx, const enum hook hook, const bool v6,
				     const void *ip, const struct udphdr *udp, __u32 ifindex)
{
	const __u32 l4 = ETH_HLEN + (v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr));
	struct peer_key key;
	struct peer_route *r;
	struct plan p;
	__u16 udp_len = bpf_ntohs(udp->len), len;

	if (udp_len < sizeof(*udp) || udp_len > 0xffff - CD_HLEN - l4)
		return count(hook, STAT_BAD_LENGTH);
	len = udp_len - sizeof(*udp);

	__builtin_memset(&key, 0, sizeof(key));
	if (v6) {
		__builtin_memcpy(key.peer, &((const struct ipv6hdr *)ip)->saddr, 16);
		__builtin_memcpy(key.relay, &((const struct ipv6hdr *)ip)->daddr, 16);
	} else {
		map4(key.peer, &((const struct iphdr *)ip)->saddr);
		map4(key.relay, &((const struct iphdr *)ip)->daddr);
	}
	key.peer_port = udp->source;
	key.relay_port = udp->dest;
	key.family = v6 ? AF_INET6 : AF_INET;
	r = bpf_map_lookup_elem(&to_client, &key);
	if (!r)
		return count(hook, STAT_NO_ENTRY);
	if (!relayable(ctx, hook, v6, ip, udp))
		return count(hook, STAT_UNSUPPORTED);

	__builtin_memset(&p, 0, sizeof(p));
	p.payload = len;
	p.frame_len = l4 + sizeof(*udp) + CD_HLEN + len;
	new_ip(&p, v6, ip, r->server, r->client, sizeof(*udp) + CD_HLEN + len);
	p.udp.source = r->server_port;
	p.udp.dest = r->client_port;
	p.udp.len = bpf_htons(sizeof(*udp) + CD_HLEN + len);
	p.cd[0] = r->channel;
	p.cd[1] = bpf_htons(len);
	if (udp->check)
		p.udp.check = udp_csum(udp->check, header_delta(&p, v6, ip, udp) + p.cd[0] + p.cd[1]);
	return forward(ctx, hook, v6, false, &p, r->slot, ifindex);
}

static __always_inline int relay_ip(void *ctx, const enum hook hook, const bool v6, void *data,
				    void *end, __u32 frame_len, __u32 ifindex)
{
	const __u32 iph = v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
	void *ip = data + ETH_HLEN;
	struct udphdr *udp = data + ETH_HLEN + iph;
	__u32 ip_len;
	__u16 dport;

	if ((void *)(udp + 1) > end)
		return pass(hook);
	if (v6) {
		struct ipv6hdr *h = ip;

		/* Extension headers and jumbograms are left to the stack. */
		if (h->version != 6 || h->nexthdr != IPPROTO_UDP || !h->payload_len)
			return pass(hook);
		ip_len = iph + bpf_ntohs(h->payload_len);
	} else {
		struct iphdr *h = ip;

		if (h->version != 4 || h->ihl != 5 || h->protocol != IPPROTO_UDP)
			return pass(hook);
		ip_len = bpf_ntohs(h->tot_len);
	}
	dport = bpf_ntohs(udp->dest);
	if (port_in(LISTEN_SET, dport)) {
		if (ip_len < iph + sizeof(*udp) || ETH_HLEN + ip_len > frame_len ||
		    bpf_ntohs(udp->len) != ip_len - iph)
			return count(hook, STAT_BAD_LENGTH);
		return from_client(ctx, hook, v6, end, ip, udp, ifindex);
	}
	if (port_in(RELAY_SET, dport)) {
		if (ip_len < iph + sizeof(*udp) || ETH_HLEN + ip_len > frame_len ||
		    bpf_ntohs(udp->len) != ip_len - iph)
			return count(hook, STAT_BAD_LENGTH);
		return from_peer(ctx, hook, v6, ip, udp, ifindex);
	}
	return pass(hook);
}

static __always_inline int relay(void *ctx, const enum hook hook, void *data, void *end,
				 __u32 frame_len, __u32 ifindex)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return pass(hook);
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return relay_ip(ctx, hook, false, data, end, frame_len, ifindex);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return relay_ip(ctx, hook, true, data, end, frame_len, ifindex);
	return pass(hook);
}

SEC("xdp")
int relay_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	return relay(ctx, HOOK_XDP, data, end, (__u32)(end - data), ctx->ingress_ifindex);
}

SEC("classifier")
int relay_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	if (data + PULL_LEN > end && skb->len > (__u32)(end - data)) {
		bpf_skb_pull_data(skb, skb->len < PULL_LEN ? skb->len : PULL_LEN);
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
	}
	return relay(skb, HOOK_TC, data, end, skb->len, skb->ingress_ifindex);
}

/* GPL-compatible: bpf_fib_lookup and the redirect helpers are GPL-only. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";
