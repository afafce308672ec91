// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * xdpstack's XDP program: send to the receiving queue's AF_XDP socket only
 * what belongs to the stack, pass everything else to the kernel.
 *
 * Modelled on Knot DNS's program (src/libknot/xdp/bpf-kernel.c): an XSKMAP
 * indexed by rx queue, VLAN and IPv6 extension headers parsed, XDP_PASS for
 * anything not ours. Written against linux/bpf.h and libbpf's bpf_helpers.h
 * only (no vmlinux.h), built by libbpf-cargo from nic/build.rs.
 *
 * Modes (cfg.mode):
 *   STEER_ALL    every frame to the XSK (a whole interface: pktgen, reflect,
 *                the baseline of the filter-cost benchmark)
 *   STEER_ADDR   IPv4/IPv6 to the stack's addresses, ARP whose target is one
 *                of its IPv4 addresses, NDP solicitations whose target is
 *                one of its IPv6 addresses (solicited-node multicast
 *                included); the rest passes
 *   STEER_PORTS  only TCP/UDP to the stack's addresses on its listening
 *                ports; ARP, NDP, ICMP and other ports pass (the kernel
 *                holds the same address, as with Knot's XDP)
 *
 * VLAN (cfg.vlan != 0): only frames tagged with that VID are considered;
 * the tag is popped before the redirect (the stack's L2 sees untagged
 * frames and the port pushes the tag back on transmit). Untagged frames and
 * other VLANs pass. With cfg.vlan == 0 tagged frames pass.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_QUEUES 256
#define MAX_ADDRS 64
#define MAX_PORTS 1024

enum steer_mode { STEER_ALL = 0, STEER_ADDR = 1, STEER_PORTS = 2 };

/* Counter indexes: keep in step with nic/src/steer.rs (COUNTERS). */
enum counter {
	C_STEERED_IP = 0,   /* IPv4/IPv6 to a stack address */
	C_STEERED_ARP,      /* ARP for a stack IPv4 address */
	C_STEERED_NDP,      /* NDP solicitation for a stack IPv6 address */
	C_STEERED_ALL,      /* STEER_ALL mode */
	C_PASS_NOT_OURS,    /* IP/ARP/NDP for another address */
	C_PASS_PORT,        /* ours, but no listener on that port (ports mode) */
	C_PASS_OTHER,       /* not IP, ARP (other ethertypes) */
	C_PASS_VLAN,        /* untagged or another VLAN (vlan set), tagged (not set) */
	C_PASS_NO_XSK,      /* ours, but no socket on this queue */
	C_PASS_TRUNCATED,   /* headers cut short: let the kernel count it */
	C_DROP_VLAN_POP,    /* popping the VLAN tag failed */
	C_COUNT,
};

struct config {
	__u32 mode;
	__u16 vlan; /* 0: untagged only */
	__u16 pad;
	/* Ports mode: TCP to a port in tcp_lo..=tcp_hi (host order) is steered
	 * whatever the ports map says: the local ports of the stack's outgoing
	 * connections (0, 0: none). */
	__u16 tcp_lo;
	__u16 tcp_hi;
};

struct port_key {
	__u8 proto; /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 pad;
	__u16 port; /* network order */
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ADDRS);
	__type(key, __u32); /* network order */
	__type(value, __u8);
} addrs4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ADDRS);
	__type(key, struct in6_addr);
	__type(value, __u8);
} addrs6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PORTS);
	__type(key, struct port_key);
	__type(value, __u8);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct arp_eth_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[ETH_ALEN];
	__u8 spa[4];
	__u8 tha[ETH_ALEN];
	__u8 tpa[4];
} __attribute__((packed));

static __always_inline int count(__u32 idx, int action)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);
	if (c)
		*c += 1;
	return action;
}

static __always_inline int redirect(struct xdp_md *ctx, __u32 idx)
{
	__u32 q = ctx->rx_queue_index;
	if (!bpf_map_lookup_elem(&xsks, &q))
		return count(C_PASS_NO_XSK, XDP_PASS);
	count(idx, 0);
	return bpf_redirect_map(&xsks, q, XDP_PASS);
}

/* Is this port one of the stack's listeners? */
static __always_inline int port_open(__u8 proto, __u16 port)
{
	struct port_key k = { .proto = proto, .pad = 0, .port = port };
	return bpf_map_lookup_elem(&ports, &k) != 0;
}

/* Is this TCP port one of the stack's outgoing connections' (the range in
 * the config)? */
static __always_inline int outgoing_port(__u8 proto, __u16 port)
{
	__u32 k = 0;
	struct config *c = bpf_map_lookup_elem(&cfg, &k);
	if (!c || proto != IPPROTO_TCP)
		return 0;
	__u16 p = bpf_ntohs(port);
	return c->tcp_lo != 0 && p >= c->tcp_lo && p <= c->tcp_hi;
}

/* Ports mode: steer TCP/UDP to a listening port (or TCP to a port of the
 * outgoing range), pass the rest. Headers
 * past the fixed ones sit at a variable offset: they are read with
 * bpf_xdp_load_bytes at a scalar offset, never through pointer arithmetic
 * with a variable (which the verifier refuses without CAP_PERFMON, and the
 * stack runs with CAP_BPF and CAP_NET_ADMIN only). */
static __always_inline int by_port(struct xdp_md *ctx, __u32 off, __u8 proto)
{
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return count(C_PASS_PORT, XDP_PASS);
	/* Both headers start with the source and destination ports. */
	__be16 ports[2];
	if (bpf_xdp_load_bytes(ctx, off, ports, sizeof(ports)))
		return count(C_PASS_TRUNCATED, XDP_PASS);
	if (!port_open(proto, ports[1]) && !outgoing_port(proto, ports[1]))
		return count(C_PASS_PORT, XDP_PASS);
	return redirect(ctx, C_STEERED_IP);
}

static __always_inline int ipv4(struct xdp_md *ctx, void *l3, __u32 l3off, void *end, __u32 mode)
{
	struct iphdr *ip = l3;
	if ((void *)(ip + 1) > end)
		return count(C_PASS_TRUNCATED, XDP_PASS);
	__u32 dst = ip->daddr;
	if (!bpf_map_lookup_elem(&addrs4, &dst))
		return count(C_PASS_NOT_OURS, XDP_PASS);
	if (mode != STEER_PORTS)
		return redirect(ctx, C_STEERED_IP);
	/* Fragments (MF or an offset): the kernel reassembles them; the stack
	 * would drop them. */
	if (ip->frag_off & bpf_htons(0x3fff))
		return count(C_PASS_PORT, XDP_PASS);
	__u32 ihl = ip->ihl * 4;
	if (ihl < sizeof(*ip))
		return count(C_PASS_TRUNCATED, XDP_PASS);
	return by_port(ctx, l3off + ihl, ip->protocol);
}

static __always_inline int is_ext_hdr(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS;
}

static __always_inline int ipv6(struct xdp_md *ctx, void *l3, __u32 l3off, void *end, __u32 mode)
{
	struct ipv6hdr *ip = l3;
	if ((void *)(ip + 1) > end)
		return count(C_PASS_TRUNCATED, XDP_PASS);
	__u32 off = l3off + sizeof(*ip);
	__u8 nh = ip->nexthdr;
	/* Extension headers (at most 4): hop-by-hop, routing, destination. */
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (!is_ext_hdr(nh))
			break;
		__u8 e[2];
		if (bpf_xdp_load_bytes(ctx, off, e, sizeof(e)))
			return count(C_PASS_TRUNCATED, XDP_PASS);
		nh = e[0];
		off += ((__u32)e[1] + 1) * 8;
	}
	/* Neighbour solicitation for one of our addresses (to the
	 * solicited-node multicast group or unicast). */
	if (nh == IPPROTO_ICMPV6 && mode != STEER_PORTS) {
		__u8 type;
		if (bpf_xdp_load_bytes(ctx, off, &type, 1))
			return count(C_PASS_TRUNCATED, XDP_PASS);
		if (type == 135 /* NDISC_NEIGHBOUR_SOLICITATION */) {
			struct in6_addr t;
			if (bpf_xdp_load_bytes(ctx, off + 8, &t, sizeof(t)))
				return count(C_PASS_TRUNCATED, XDP_PASS);
			if (bpf_map_lookup_elem(&addrs6, &t))
				return redirect(ctx, C_STEERED_NDP);
			return count(C_PASS_NOT_OURS, XDP_PASS);
		}
	}
	struct in6_addr dst = ip->daddr;
	if (!bpf_map_lookup_elem(&addrs6, &dst))
		return count(C_PASS_NOT_OURS, XDP_PASS);
	if (mode != STEER_PORTS)
		return redirect(ctx, C_STEERED_IP);
	if (nh == IPPROTO_FRAGMENT)
		return count(C_PASS_PORT, XDP_PASS);
	return by_port(ctx, off, nh);
}

static __always_inline int arp(struct xdp_md *ctx, void *l3, void *end, __u32 mode)
{
	struct arp_eth_ipv4 *a = l3;
	if ((void *)(a + 1) > end)
		return count(C_PASS_TRUNCATED, XDP_PASS);
	if (mode == STEER_PORTS)
		return count(C_PASS_NOT_OURS, XDP_PASS);
	__u32 tpa;
	__builtin_memcpy(&tpa, a->tpa, 4);
	if (!bpf_map_lookup_elem(&addrs4, &tpa))
		return count(C_PASS_NOT_OURS, XDP_PASS);
	return redirect(ctx, C_STEERED_ARP);
}

/* Remove the 802.1Q tag: move the MAC addresses 4 bytes up, drop 4 bytes. */
static __always_inline int pop_vlan(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (data + ETH_HLEN + sizeof(struct vlan_hdr) > end)
		return -1;
	__u8 macs[2 * ETH_ALEN];
	__builtin_memcpy(macs, data, sizeof(macs));
	__builtin_memcpy(data + 4, macs, sizeof(macs));
	return bpf_xdp_adjust_head(ctx, 4);
}

SEC("xdp")
int xdpstack_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct config *c = bpf_map_lookup_elem(&cfg, &zero);
	if (!c)
		return XDP_PASS;
	__u32 mode = c->mode;
	__u16 vlan = c->vlan;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return count(C_PASS_TRUNCATED, XDP_PASS);
	__u16 proto = eth->h_proto;
	void *l3 = (void *)(eth + 1);
	__u32 l3off = sizeof(*eth);
	int tagged = 0;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *v = l3;
		if ((void *)(v + 1) > end)
			return count(C_PASS_TRUNCATED, XDP_PASS);
		if (!vlan || (bpf_ntohs(v->tci) & 0x0fff) != vlan)
			return count(C_PASS_VLAN, XDP_PASS);
		proto = v->proto;
		l3 = (void *)(v + 1);
		l3off += sizeof(*v);
		tagged = 1;
	} else if (vlan) {
		return count(C_PASS_VLAN, XDP_PASS);
	}

	int action;
	if (mode == STEER_ALL) {
		action = redirect(ctx, C_STEERED_ALL);
	} else if (proto == bpf_htons(ETH_P_IP)) {
		action = ipv4(ctx, l3, l3off, end, mode);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		action = ipv6(ctx, l3, l3off, end, mode);
	} else if (proto == bpf_htons(ETH_P_ARP)) {
		action = arp(ctx, l3, end, mode);
	} else {
		return count(C_PASS_OTHER, XDP_PASS);
	}
	if (action == XDP_REDIRECT && tagged) {
		/* The redirect is only resolved when the program returns, so the
		 * frame can still be changed here. */
		if (pop_vlan(ctx))
			return count(C_DROP_VLAN_POP, XDP_DROP);
	}
	return action;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
