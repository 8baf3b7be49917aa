// rawsend: sends one fixed UDP/IPv4 frame as fast as it can for a bounded time, from a raw AF_PACKET
// socket (PACKET_QDISC_BYPASS, sendmmsg batches), and prints what it sent. The forwarding benchmark
// (section 3 of bench/run) compiles it at run time and runs it inside the lab's client namespace.
//
//   rawsend IFNAME SRC_MAC DST_MAC SRC_IP DST_IP DST_PORT FRAME_BYTES SECONDS
//   prints: "sent PACKETS in SECONDS s" (SECONDS as measured, CLOCK_MONOTONIC)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static int parse_mac(const char *text, uint8_t mac[6])
{
	unsigned int b[6];
	if (sscanf(text, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	return 0;
}

static uint16_t checksum(const void *data, size_t len)
{
	const uint16_t *p = data;
	uint32_t sum = 0;
	for (; len > 1; len -= 2)
		sum += *p++;
	if (len)
		sum += *(const uint8_t *)p;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 9) {
		fprintf(stderr, "usage: rawsend IFNAME SRC_MAC DST_MAC SRC_IP DST_IP DST_PORT FRAME_BYTES SECONDS\n");
		return 2;
	}
	const char *ifname = argv[1];
	int frame_len = atoi(argv[7]);
	double seconds = atof(argv[8]);
	if (frame_len < 60 || frame_len > 1514 || seconds <= 0 || seconds > 60) {
		fprintf(stderr, "rawsend: frame bytes must be 60-1514 and seconds 0-60\n");
		return 2;
	}

	uint8_t frame[1514] = { 0 };
	struct ether_header *eth = (struct ether_header *)frame;
	struct iphdr *ip = (struct iphdr *)(eth + 1);
	struct udphdr *udp = (struct udphdr *)(ip + 1);
	if (parse_mac(argv[2], eth->ether_shost) || parse_mac(argv[3], eth->ether_dhost)) {
		fprintf(stderr, "rawsend: bad MAC address\n");
		return 2;
	}
	eth->ether_type = htons(ETHERTYPE_IP);
	int ip_len = frame_len - (int)sizeof(*eth);
	ip->version = 4;
	ip->ihl = 5;
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->tot_len = htons((uint16_t)ip_len);
	if (inet_pton(AF_INET, argv[4], &ip->saddr) != 1 || inet_pton(AF_INET, argv[5], &ip->daddr) != 1) {
		fprintf(stderr, "rawsend: bad IPv4 address\n");
		return 2;
	}
	ip->check = checksum(ip, sizeof(*ip));
	udp->source = htons(40000);
	udp->dest = htons((uint16_t)atoi(argv[6]));
	udp->len = htons((uint16_t)(ip_len - sizeof(*ip)));
	udp->check = 0; // optional over IPv4

	int fd = socket(AF_PACKET, SOCK_RAW, 0); // protocol 0: send only, receive nothing
	if (fd < 0) {
		perror("rawsend: socket");
		return 1;
	}
	int one = 1;
	if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) < 0) {
		perror("rawsend: PACKET_QDISC_BYPASS");
		return 1;
	}
	struct sockaddr_ll addr = { 0 };
	addr.sll_family = AF_PACKET;
	addr.sll_ifindex = (int)if_nametoindex(ifname);
	addr.sll_halen = ETH_ALEN;
	memcpy(addr.sll_addr, eth->ether_dhost, ETH_ALEN);
	if (addr.sll_ifindex == 0) {
		fprintf(stderr, "rawsend: no interface %s\n", ifname);
		return 1;
	}
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		perror("rawsend: bind");
		return 1;
	}

	struct iovec iov = { .iov_base = frame, .iov_len = (size_t)frame_len };
	struct mmsghdr msgs[BATCH];
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_name = &addr;
		msgs[i].msg_hdr.msg_namelen = sizeof(addr);
	}

	unsigned long long sent = 0, failed = 0;
	double start = now(), end = start + seconds, t = start;
	while (t < end) {
		for (int k = 0; k < 16; k++) {
			int n = sendmmsg(fd, msgs, BATCH, 0);
			if (n > 0)
				sent += (unsigned)n;
			else if (errno == ENOBUFS || errno == EAGAIN)
				failed++;
			else {
				perror("rawsend: sendmmsg");
				return 1;
			}
		}
		t = now();
	}
	printf("sent %llu in %.6f s (%llu failed batches)\n", sent, now() - start, failed);
	close(fd);
	return 0;
}
