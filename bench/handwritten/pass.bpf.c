// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
// The floor: a tc program that hands every packet on (TCX_NEXT) and does nothing else.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#ifndef TCX_NEXT
#define TCX_NEXT -1
#endif

SEC("tc")
int bench_pass(struct __sk_buff *skb)
{
	return TCX_NEXT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
