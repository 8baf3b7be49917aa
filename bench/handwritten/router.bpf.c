// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// The hand-written reference for issue 5: what a 4-stage SourcePolicy chain does, written once as one
// program, the way an expert would without a composer.
//
// - Parse once: Ethernet, up to two VLAN tags, IPv4 (version, header length, options in bounds);
//   headers outside the linear area are pulled in first, as the chain's entry program does.
// - Four LPM tries, looked up in order with the IPv4 source; the first hit wins (in the chain each
//   stage hands on what it does not match, so the same route wins).
// - On a hit: TTL <= 1 goes to the kernel (ICMP time exceeded); otherwise bpf_redirect_neigh to the
//   route's interface and next hop, then TTL - 1 with an incremental checksum fix.
// - The chain's counters, kept in one per-CPU struct behind one lookup: packets, bytes, IPv4/IPv6 and
//   pass reasons; per stage the outcomes (matched, redirected and their bytes, passed, TTL expired,
//   redirect errors). Like the chain, it does not count the packets that reach each stage: they follow
//   from the outcomes.
// - IPv6, ARP and other traffic: no IPv4 source route can match, so it goes to the kernel at once.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef TCX_NEXT
#define TCX_NEXT -1
#endif
#ifndef AF_INET
#define AF_INET 2
#endif

#define STAGES 4
#define PULL_LEN 192 // what the chain's entry pulls (ChainComposer.PullLength)

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct route_key {
	__u32 prefixlen;
	__be32 addr;
};

struct route {
	__u32 ifindex;
	__be32 nexthop; // 0: the packet's own destination
};

#define ROUTES(name)                                          \
	struct {                                              \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);          \
		__uint(max_entries, 1 << 20);                 \
		__type(key, struct route_key);                \
		__type(value, struct route);                  \
		__uint(map_flags, BPF_F_NO_PREALLOC);         \
	} name SEC(".maps")

ROUTES(routes0);
ROUTES(routes1);
ROUTES(routes2);
ROUTES(routes3);

struct stage_stats {
	__u64 redirected_bytes;
	__u64 matched;
	__u64 redirected;
	__u64 passed;
	__u64 ttl_expired;
	__u64 redirect_errors;
};

struct stats {
	__u64 packets;
	__u64 bytes;
	__u64 ipv4;
	__u64 ipv6;
	__u64 pass_arp;
	__u64 pass_non_ip;
	__u64 pass_truncated;
	__u64 pass_bad_header;
	struct stage_stats stage[STAGES];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stats);
} stats SEC(".maps");

static __always_inline int forward(struct __sk_buff *skb, struct iphdr *ip, struct stage_stats *st,
				   const struct route *route)
{
	struct bpf_redir_neigh neigh = { .nh_family = AF_INET, .ipv4_nh = route->nexthop };
	__u32 check;
	long rc;

	st->matched++;
	if ((ip->daddr & bpf_htonl(0xf0000000)) == bpf_htonl(0xe0000000) || ip->daddr == 0xffffffff) {
		st->passed++; // multicast and broadcast are the kernel's, as in the chain
		return TCX_NEXT;
	}
	if (ip->ttl <= 1) {
		st->ttl_expired++;
		st->passed++;
		return TCX_NEXT;
	}
	rc = route->nexthop ? bpf_redirect_neigh(route->ifindex, &neigh, sizeof(neigh), 0)
			    : bpf_redirect_neigh(route->ifindex, NULL, 0, 0);
	if (rc != TC_ACT_REDIRECT) {
		st->redirect_errors++;
		st->passed++;
		return TCX_NEXT;
	}
	check = (__u32)ip->check + (__u32)bpf_htons(0x0100);
	ip->check = (__sum16)(check + (check >= 0xFFFF));
	ip->ttl--;
	st->redirected++;
	st->redirected_bytes += skb->len;
	return TC_ACT_REDIRECT;
}

#define STAGE(i, map)                                                  \
	do {                                                           \
		route = bpf_map_lookup_elem(&map, &key);               \
		if (route)                                             \
			return forward(skb, ip, &st->stage[i], route); \
	} while (0)

SEC("tc")
int router(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct route_key key = { .prefixlen = 32 };
	const struct route *route;
	struct ethhdr *eth;
	struct iphdr *ip;
	struct stats *st;
	__u32 zero = 0, off = sizeof(struct ethhdr);
	__be16 proto;

	st = bpf_map_lookup_elem(&stats, &zero);
	if (!st)
		return TCX_NEXT;
	st->packets++;
	st->bytes += skb->len;

	if (data + PULL_LEN > data_end && skb->len > data_end - data) {
		bpf_skb_pull_data(skb, skb->len < PULL_LEN ? skb->len : PULL_LEN);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}
	eth = data;
	if ((void *)(eth + 1) > data_end)
		goto truncated;
	proto = eth->h_proto;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlan_hdr *vlan = data + off;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vlan + 1) > data_end)
			goto truncated;
		proto = vlan->proto;
		off += sizeof(*vlan);
	}
	if (proto != bpf_htons(ETH_P_IP)) {
		if (proto == bpf_htons(ETH_P_IPV6))
			st->ipv6++;
		else if (proto == bpf_htons(ETH_P_ARP))
			st->pass_arp++;
		else
			st->pass_non_ip++;
		return TCX_NEXT;
	}

	ip = data + off;
	if ((void *)(ip + 1) > data_end)
		goto truncated;
	if (ip->version != 4 || ip->ihl < 5) {
		st->pass_bad_header++;
		return TCX_NEXT;
	}
	if ((void *)ip + ip->ihl * 4 > data_end)
		goto truncated;
	st->ipv4++;

	key.addr = ip->saddr;
	STAGE(0, routes0);
	STAGE(1, routes1);
	STAGE(2, routes2);
	STAGE(3, routes3);
	st->stage[STAGES - 1].passed++;
	return TCX_NEXT;

truncated:
	st->pass_truncated++;
	return TCX_NEXT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
