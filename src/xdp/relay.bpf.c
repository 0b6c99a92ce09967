// SPDX-License-Identifier: MIT OR Apache-2.0
//
// ringturn's kernel fast path (issue 11): relays ChannelData <-> UDP for
// channels the workers have bound, in the driver, before the socket layer.
//
//  client -> peer: a UDP datagram to a listening address whose payload is
//    ChannelData (first two bits 01, RFC 8656 §12) on a channel bound for
//    that client's 5-tuple: the 4-byte header (and any stream padding) goes,
//    addresses and ports become relayed address -> peer.
//  peer -> client: a UDP datagram to a relayed address from a peer with a
//    channel: a 4-byte ChannelData header is written in front of the
//    payload, addresses and ports become listening address -> client.
//
// The workers are the only authority: an entry exists only while the
// channel and its peer's permission live (userspace removes it on expiry,
// Refresh 0, deletion, policy change). Anything else, or anything uncertain
// (no route or neighbour yet, a frame the parser does not fully vouch for),
// is XDP_PASS, untouched: the socket path handles it as before.
//
// Built by build.rs with `clang -O2 -g -target bpf`; loaded by src/xdp (aya).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define CHANNEL_HEADER 4
#define FRESH_TTL 64
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

// One side of a relayed flow. Addresses are 16 bytes (IPv4 as ::ffff:a.b.c.d),
// ports and the channel number in network byte order. The same layout is the
// key of both maps and the destination in their values; src/xdp/flow.rs mirrors it.
struct flow {
	__u8 src[16];
	__u8 dst[16];
	__be16 sport;
	__be16 dport;
	__be16 channel; // 0 in p2c keys and c2p values
	__u16 family;   // AF_INET or AF_INET6
};

// Where a matched packet goes, and until when: past `until_ns`
// (CLOCK_MONOTONIC, as bpf_ktime_get_ns) the channel, its permission or its
// allocation has expired and the packet passes to the socket path, which
// refuses it — the kernel never relays later than the workers would, even
// before their timer has withdrawn the entry.
struct target {
	struct flow to;
	__u64 until_ns;
};

// client -> peer: key {client -> listening address, channel}, value {relayed address -> peer}.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct flow);
	__type(value, struct target);
} C2P SEC(".maps");

// peer -> client: key {peer -> relayed address}, value {listening address -> client, channel}.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct flow);
	__type(value, struct target);
} P2C SEC(".maps");

struct mac {
	__u8 addr[ETH_ALEN];
	__u16 pad;
};

struct counter {
	__u64 packets;
	__u64 bytes; // payload bytes, as the socket path counts them
};

// Slot 0: client -> peer, slot 1: peer -> client.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct counter);
} STATS SEC(".maps");

// Per offloaded channel, keyed like C2P (client -> listening address,
// channel): [0] client -> peer, [1] peer -> client. Userspace creates the
// entry when it offloads the channel and reads and deletes it when it
// withdraws it (session accounting); per CPU, so no atomics here.
struct channel_counters {
	struct counter dir[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct flow);
	__type(value, struct channel_counters);
} CHANNELS SEC(".maps");

// Interfaces a relayed frame may leave through when it is not the one it came in on.
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} EGRESS SEC(".maps");

// The MAC address of each interface the program serves: a frame not
// addressed to it would be dropped by the stack (PACKET_OTHERHOST), so the
// program must not relay it either.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct mac);
} IFMAC SEC(".maps");

// Everything the rewrite needs, gathered before a byte of the frame changes.
struct parsed {
	struct ethhdr eth;
	union {
		struct iphdr v4;
		struct ipv6hdr v6;
	} ip;
	struct udphdr udp;
	__u32 ip_len;       // 20 or 40
	__u32 payload_len;  // UDP payload bytes
	__u16 family;
};

static __always_inline __u16 fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

static __always_inline void map_v4(__u8 out[16], __be32 addr)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &addr, 4);
}

// Parses Ethernet, IPv4 (no options, no fragments) or IPv6 (UDP as next
// header: no extension headers) and UDP, with every length agreeing.
// Returns 0 when the frame is one this program may touch.
static __always_inline int parse(struct xdp_md *ctx, struct parsed *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 frame = (__u64)(end - data);
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return -1;
	__u32 ifindex = ctx->ingress_ifindex;
	struct mac *ours = bpf_map_lookup_elem(&IFMAC, &ifindex);
	if (!ours)
		return -1;
	for (int i = 0; i < ETH_ALEN; i++)
		if (eth->h_dest[i] != ours->addr[i])
			return -1;
	p->eth = *eth;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return -1;
		if (ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
			return -1;
		if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return -1;
		if (bpf_ntohs(ip->tot_len) != frame - sizeof(*eth))
			return -1;
		p->ip.v4 = *ip;
		// The stack drops a header whose checksum is wrong; so do we (the
		// rewrite computes a fresh one and would otherwise hide the damage).
		if (fold(bpf_csum_diff(0, 0, (__be32 *)&p->ip.v4, sizeof(p->ip.v4), 0)) != 0xffff)
			return -1;
		p->ip_len = sizeof(*ip);
		p->family = AF_INET;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return -1;
		if (ip6->version != 6 || ip6->nexthdr != IPPROTO_UDP)
			return -1;
		if (bpf_ntohs(ip6->payload_len) != frame - sizeof(*eth) - sizeof(*ip6))
			return -1;
		p->ip.v6 = *ip6;
		p->ip_len = sizeof(*ip6);
		p->family = AF_INET6;
	} else {
		return -1; // ARP, VLAN tags, anything else
	}
	struct udphdr *udp = data + sizeof(struct ethhdr) + p->ip_len;
	if ((void *)(udp + 1) > end)
		return -1;
	__u32 udp_len = bpf_ntohs(udp->len);
	if (udp_len != frame - sizeof(struct ethhdr) - p->ip_len || udp_len < sizeof(*udp))
		return -1;
	if (p->family == AF_INET6 && udp->check == 0)
		return -1; // RFC 8200 §8.1: IPv6 UDP needs a checksum
	p->udp = *udp;
	p->payload_len = udp_len - sizeof(*udp);
	return 0;
}

static __always_inline void addresses(const struct parsed *p, struct flow *f)
{
	if (p->family == AF_INET) {
		map_v4(f->src, p->ip.v4.saddr);
		map_v4(f->dst, p->ip.v4.daddr);
	} else {
		__builtin_memcpy(f->src, &p->ip.v6.saddr, 16);
		__builtin_memcpy(f->dst, &p->ip.v6.daddr, 16);
	}
	f->sport = p->udp.source;
	f->dport = p->udp.dest;
	f->family = p->family;
}

// The route for the rewritten packet: egress interface and MACs. Returns
// the egress ifindex, or 0 when the kernel cannot vouch for it yet (no
// neighbour entry, needs fragmenting, blackhole...): the caller passes.
static __always_inline __u32 route(struct xdp_md *ctx, const struct flow *out, __u32 tot_len,
				   struct ethhdr *eth)
{
	struct bpf_fib_lookup fib = {};
	fib.family = out->family;
	fib.l4_protocol = IPPROTO_UDP;
	fib.sport = out->sport;
	fib.dport = out->dport;
	fib.tot_len = tot_len;
	fib.ifindex = ctx->ingress_ifindex;
	if (out->family == AF_INET) {
		__builtin_memcpy(&fib.ipv4_src, out->src + 12, 4);
		__builtin_memcpy(&fib.ipv4_dst, out->dst + 12, 4);
	} else {
		__builtin_memcpy(fib.ipv6_src, out->src, 16);
		__builtin_memcpy(fib.ipv6_dst, out->dst, 16);
	}
	// The kernel answers only where forwarding is on for the ingress
	// interface (net.ipv4.conf.IF.forwarding, net.ipv6.conf.IF.forwarding);
	// elsewhere it says FWD_DISABLED and the socket path relays.
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return 0;
	if (fib.ifindex != ctx->ingress_ifindex && !bpf_map_lookup_elem(&EGRESS, &fib.ifindex))
		return 0; // leaves through an interface without the program: socket path
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	return fib.ifindex;
}

static __always_inline void count(__u32 slot, __u32 bytes, const struct flow *channel_key)
{
	struct counter *c = bpf_map_lookup_elem(&STATS, &slot);
	if (c) {
		c->packets += 1;
		c->bytes += bytes;
	}
	struct channel_counters *ch = bpf_map_lookup_elem(&CHANNELS, channel_key);
	if (ch && slot < 2) {
		ch->dir[slot].packets += 1;
		ch->dir[slot].bytes += bytes;
	}
}

static __always_inline void fill_udp(struct udphdr *udp, const struct flow *out, __u32 udp_len,
				     __u16 check)
{
	udp->source = out->sport;
	udp->dest = out->dport;
	udp->len = bpf_htons(udp_len);
	udp->check = check;
}

// Writes Ethernet, IP and UDP headers for `out` at the start of the frame,
// with a fresh TTL and both checksums. `csum_seed` is the UDP checksum's sum
// over everything that did not change (the payload), already adjusted.
static __always_inline int write_headers(struct xdp_md *ctx, const struct parsed *p,
					 const struct ethhdr *eth, const struct flow *out,
					 __u32 udp_len, __u16 udp_check)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *e = data;
	if ((void *)(e + 1) > end)
		return -1;
	*e = *eth;
	if (out->family == AF_INET) {
		struct iphdr *ip = (void *)(e + 1);
		if ((void *)(ip + 1) > end)
			return -1;
		struct iphdr h = p->ip.v4;
		__builtin_memcpy(&h.saddr, out->src + 12, 4);
		__builtin_memcpy(&h.daddr, out->dst + 12, 4);
		h.tot_len = bpf_htons(sizeof(h) + udp_len);
		h.ttl = FRESH_TTL;
		h.check = 0;
		h.check = ~fold(bpf_csum_diff(0, 0, (__be32 *)&h, sizeof(h), 0));
		*ip = h;
		struct udphdr *udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > end)
			return -1;
		fill_udp(udp, out, udp_len, udp_check);
	} else {
		struct ipv6hdr *ip6 = (void *)(e + 1);
		if ((void *)(ip6 + 1) > end)
			return -1;
		*ip6 = p->ip.v6;
		__builtin_memcpy(&ip6->saddr, out->src, 16);
		__builtin_memcpy(&ip6->daddr, out->dst, 16);
		ip6->payload_len = bpf_htons(udp_len);
		ip6->hop_limit = FRESH_TTL;
		struct udphdr *udp = (void *)(ip6 + 1);
		if ((void *)(udp + 1) > end)
			return -1;
		fill_udp(udp, out, udp_len, udp_check);
	}
	return 0;
}

// What the UDP checksum covers that changes: both addresses, both ports and
// the UDP length (twice: pseudo-header and header), as 32-bit words in
// network order, so bpf_csum_diff can take the old set out and put the new in.
struct csum_words {
	__u8 src[16];
	__u8 dst[16];
	__be16 sport;
	__be16 dport;
	__be16 len_pseudo;
	__be16 len_header;
	__be16 channel;  // the ChannelData header: number and length (zero when absent)
	__be16 cd_len;
};

// The new UDP checksum from the old one: subtract the old words, add the
// new ones. An IPv4 datagram sent without a checksum (0) stays without one.
static __always_inline __u16 csum_update(__u16 family, __be16 old_check, const struct csum_words *from,
					 const struct csum_words *to)
{
	if (family == AF_INET && old_check == 0)
		return 0;
	__s64 sum;
	if (family == AF_INET) {
		// Only the last 4 bytes of each 16-byte address are IPv4.
		__be32 f[5] = {}, t[5] = {};
		__builtin_memcpy(&f[0], from->src + 12, 4);
		__builtin_memcpy(&f[1], from->dst + 12, 4);
		__builtin_memcpy(&f[2], &from->sport, 12);
		__builtin_memcpy(&t[0], to->src + 12, 4);
		__builtin_memcpy(&t[1], to->dst + 12, 4);
		__builtin_memcpy(&t[2], &to->sport, 12);
		sum = bpf_csum_diff(f, sizeof(f), t, sizeof(t), (__u16)~old_check);
	} else {
		sum = bpf_csum_diff((__be32 *)from, sizeof(*from), (__be32 *)to, sizeof(*to),
				    (__u16)~old_check);
	}
	if (sum < 0)
		return 0xffff; // cannot happen for these sizes; a wrong checksum is dropped by the receiver
	__u16 check = ~fold((__u64)sum);
	return check ? check : 0xffff; // RFC 768: a computed 0 is sent as all ones
}

static __always_inline void csum_words_of(struct csum_words *w, const struct flow *f, __u32 udp_len,
					  __be16 channel, __be16 cd_len)
{
	__builtin_memcpy(w->src, f->src, 16);
	__builtin_memcpy(w->dst, f->dst, 16);
	w->sport = f->sport;
	w->dport = f->dport;
	w->len_pseudo = bpf_htons(udp_len);
	w->len_header = bpf_htons(udp_len);
	w->channel = channel;
	w->cd_len = cd_len;
}

static __always_inline int finish(struct xdp_md *ctx, __u32 egress)
{
	if (egress == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect_map(&EGRESS, egress, XDP_PASS);
}

// client -> peer.
static __always_inline int client_to_peer(struct xdp_md *ctx, struct parsed *p, __be16 channel,
					  __u32 data_len)
{
	struct flow key = {};
	addresses(p, &key);
	key.channel = channel;
	struct target *target = bpf_map_lookup_elem(&C2P, &key);
	if (!target || target->to.family != p->family || bpf_ktime_get_ns() >= target->until_ns)
		return XDP_PASS;
	struct flow out = target->to;
	__u32 old_udp_len = p->payload_len + sizeof(struct udphdr);
	__u32 new_udp_len = data_len + sizeof(struct udphdr);
	struct ethhdr eth = p->eth;
	__u32 egress = route(ctx, &out, p->ip_len + new_udp_len, &eth);
	if (!egress)
		return XDP_PASS;

	struct csum_words from = {}, to = {};
	csum_words_of(&from, &key, old_udp_len, channel, bpf_htons(data_len));
	csum_words_of(&to, &out, new_udp_len, 0, 0);
	__u16 check = csum_update(p->family, p->udp.check, &from, &to);

	// Drop the stream padding (a sender may pad, RFC 8656 §12.5), then the header.
	__u32 pad = p->payload_len - CHANNEL_HEADER - data_len;
	if (pad && bpf_xdp_adjust_tail(ctx, -(int)pad))
		return XDP_PASS;
	if (bpf_xdp_adjust_head(ctx, CHANNEL_HEADER))
		return XDP_ABORTED; // frame already shortened: cannot hand it back intact
	if (write_headers(ctx, p, &eth, &out, new_udp_len, check))
		return XDP_ABORTED;
	count(0, data_len, &key);
	return finish(ctx, egress);
}

// peer -> client.
static __always_inline int peer_to_client(struct xdp_md *ctx, struct parsed *p)
{
	struct flow key = {};
	addresses(p, &key);
	struct target *target = bpf_map_lookup_elem(&P2C, &key);
	if (!target || target->to.family != p->family || bpf_ktime_get_ns() >= target->until_ns)
		return XDP_PASS;
	struct flow out = target->to;
	__u32 len = p->payload_len;
	if (len > 0xffff - CHANNEL_HEADER - sizeof(struct udphdr) - 40)
		return XDP_PASS;
	__u32 old_udp_len = len + sizeof(struct udphdr);
	__u32 new_udp_len = old_udp_len + CHANNEL_HEADER;
	struct ethhdr eth = p->eth;
	__u32 egress = route(ctx, &out, p->ip_len + new_udp_len, &eth);
	if (!egress)
		return XDP_PASS;

	struct csum_words from = {}, to = {};
	csum_words_of(&from, &key, old_udp_len, 0, 0);
	csum_words_of(&to, &out, new_udp_len, out.channel, bpf_htons(len));
	__u16 check = csum_update(p->family, p->udp.check, &from, &to);

	if (bpf_xdp_adjust_head(ctx, -CHANNEL_HEADER))
		return XDP_PASS; // no headroom: nothing changed yet
	if (write_headers(ctx, p, &eth, &out, new_udp_len, check))
		return XDP_ABORTED;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__be16 *cd;
	if (p->family == AF_INET6)
		cd = data + sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + sizeof(struct udphdr);
	else
		cd = data + sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr);
	if ((void *)(cd + 2) > end)
		return XDP_ABORTED;
	cd[0] = out.channel;
	cd[1] = bpf_htons(len);
	// The channel's C2P key is the reverse of where this packet goes.
	struct flow channel_key = {};
	__builtin_memcpy(channel_key.src, out.dst, 16);
	__builtin_memcpy(channel_key.dst, out.src, 16);
	channel_key.sport = out.dport;
	channel_key.dport = out.sport;
	channel_key.channel = out.channel;
	channel_key.family = out.family;
	count(1, len, &channel_key);
	return finish(ctx, egress);
}

SEC("xdp")
int ringturn_relay(struct xdp_md *ctx)
{
	struct parsed p = {};
	if (parse(ctx, &p))
		return XDP_PASS;
	// ChannelData? First two bits 01, header complete, length within the
	// payload and at most 3 bytes of padding after it.
	if (p.payload_len >= CHANNEL_HEADER) {
		void *data = (void *)(long)ctx->data;
		void *end = (void *)(long)ctx->data_end;
		__u8 *payload;
		if (p.family == AF_INET6)
			payload = data + sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + sizeof(struct udphdr);
		else
			payload = data + sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr);
		if ((void *)(payload + CHANNEL_HEADER) > end)
			return XDP_PASS;
		if ((payload[0] & 0xC0) == 0x40) {
			__u32 data_len = ((__u32)payload[2] << 8) | payload[3];
			__u32 room = p.payload_len - CHANNEL_HEADER;
			if (data_len <= room && room - data_len <= 3) {
				// Padding, if any, must be zeros: the rewrite drops it
				// without taking it out of the UDP checksum, so damaged
				// padding would otherwise leave with a checksum that
				// hides the damage (the stack would have dropped it).
				__u32 pad = room - data_len;
				if (pad) {
					__u8 tail[4] = {};
					__u32 at = (__u32)((void *)payload - data) + CHANNEL_HEADER + data_len;
					if (bpf_xdp_load_bytes(ctx, at, tail, pad & 3))
						return XDP_PASS;
					if (tail[0] | tail[1] | tail[2])
						return XDP_PASS;
				}
				__be16 channel;
				__builtin_memcpy(&channel, payload, 2);
				int verdict = client_to_peer(ctx, &p, channel, data_len);
				if (verdict != XDP_PASS)
					return verdict;
			}
		}
	}
	return peer_to_client(ctx, &p);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
