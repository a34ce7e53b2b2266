/*
 * Redis Cluster client, pure part: key slots (CRC16, hash tags), the slot
 * map from CLUSTER SLOTS and CLUSTER SHARDS replies (fed as RESP bytes
 * through hiredis' own reader, as they come off the wire), MOVED and ASK.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis_cluster_map.h"
#include "redis_sentinel.h"

static unsigned slot(const char *k)
{
	return rcluster_key_slot(k, strlen(k));
}

/* Parses one RESP reply; the caller frees it with freeReplyObject. */
static redisReply *resp(const char *bytes)
{
	redisReader *rd = redisReaderCreate();
	void *r = NULL;

	assert_non_null(rd);
	assert_int_equal(redisReaderFeed(rd, bytes, strlen(bytes)), REDIS_OK);
	assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
	assert_non_null(r);
	redisReaderFree(rd);
	return r;
}

static void test_key_slots_match_the_cluster_spec(void **state)
{
	(void)state;
	/* CRC16-XMODEM check value of "123456789" is 0x31C3 = 12739. */
	assert_int_equal(slot("123456789"), 0x31c3 & 16383);
	/* Values redis-cli CLUSTER KEYSLOT gives. */
	assert_int_equal(slot("foo"), 12182);
	assert_int_equal(slot("bar"), 5061);
	assert_int_equal(slot(""), 0);
}

static void test_hash_tags_put_keys_in_one_slot(void **state)
{
	(void)state;
	assert_int_equal(slot("{user1000}.following"), slot("user1000"));
	assert_int_equal(slot("{user1000}.followers"), slot("user1000"));
	/* Only the first {...}; an empty tag hashes the whole key. */
	assert_int_equal(slot("foo{bar}{zap}"), slot("bar"));
	assert_int_equal(slot("foo{}{bar}"), rcluster_key_slot("foo{}{bar}", 10));
	assert_int_not_equal(slot("foo{}{bar}"), slot("bar"));
	assert_int_equal(slot("foo{{bar}}zap"), slot("{bar"));
	/* An unclosed brace is part of the key. */
	assert_int_equal(slot("foo{bar"), rcluster_key_slot("foo{bar", 7));
}

#define SLOTS3 \
	"*3\r\n" \
	"*4\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n" \
	"*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nid\r\n" \
	"*3\r\n:5461\r\n:10922\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nid\r\n" \
	"*3\r\n:10923\r\n:16383\r\n*2\r\n$0\r\n\r\n:7002\r\n"

static void test_cluster_slots_reply_maps_every_slot_to_its_master(void **state)
{
	struct rcluster_map *m = malloc(sizeof(*m));
	redisReply *r = resp(SLOTS3);

	(void)state;
	assert_int_equal(rcluster_map_from_slots(r, "10.1.1.1", m), 16384);
	assert_int_equal(m->nnodes, 3);
	assert_string_equal(m->node[m->slot[0]].host, "127.0.0.1");
	assert_int_equal(m->node[m->slot[0]].port, 7000);
	assert_int_equal(m->node[m->slot[5460]].port, 7000);
	assert_int_equal(m->node[m->slot[5461]].port, 7001);
	assert_int_equal(m->node[m->slot[16383]].port, 7002);
	/* an empty ip is the node that answered */
	assert_string_equal(m->node[m->slot[16383]].host, "10.1.1.1");
	freeReplyObject(r);
	free(m);
}

static void test_partial_cluster_slots_leaves_holes(void **state)
{
	struct rcluster_map *m = malloc(sizeof(*m));
	redisReply *r = resp("*1\r\n*3\r\n:100\r\n:199\r\n*2\r\n$3\r\n::1\r\n:7000\r\n");

	(void)state;
	assert_int_equal(rcluster_map_from_slots(r, "x", m), 100);
	assert_int_equal(m->slot[99], RCLUSTER_NO_NODE);
	assert_int_equal(m->slot[200], RCLUSTER_NO_NODE);
	assert_string_equal(m->node[m->slot[150]].host, "::1");
	freeReplyObject(r);
	free(m);
}

static void test_malformed_cluster_slots_are_refused(void **state)
{
	static const char *const bad[] = {
		"*0\r\n",                                                   /* no slot */
		"$2\r\nhi\r\n",                                             /* not an array */
		"-ERR This instance has cluster support disabled\r\n",
		"*1\r\n*2\r\n:0\r\n:1\r\n",                                 /* no node */
		"*1\r\n*3\r\n:5\r\n:1\r\n*2\r\n$1\r\na\r\n:1\r\n",          /* start > end */
		"*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\na\r\n:1\r\n",      /* end too big */
		"*1\r\n*3\r\n:-1\r\n:1\r\n*2\r\n$1\r\na\r\n:1\r\n",
		"*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n:0\r\n",          /* port 0 */
		"*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n:65536\r\n",
		"*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:1\r\n:7000\r\n",            /* ip not text */
		"*1\r\n*3\r\n$1\r\n0\r\n:1\r\n*2\r\n$1\r\na\r\n:7000\r\n",  /* start not int */
	};
	struct rcluster_map *m = malloc(sizeof(*m));
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		redisReply *r = resp(bad[i]);

		if (rcluster_map_from_slots(r, "h", m) != -1)
			fail_msg("reply %zu was accepted", i);
		assert_int_equal(m->covered, 0);
		freeReplyObject(r);
	}
	free(m);
}

/* Two shards: the first with a failed master, a healthy one and a
 * replica; the second with an empty endpoint and two slot ranges. */
static void test_cluster_shards_reply_uses_the_healthy_master(void **state)
{
	struct rcluster_map *m = malloc(sizeof(*m));
	const char *bytes =
		"*2\r\n"
		"*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:8191\r\n$5\r\nnodes\r\n*3\r\n"
		"*8\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$4\r\nport\r\n:7000\r\n"
		"$4\r\nrole\r\n$6\r\nmaster\r\n$6\r\nhealth\r\n$4\r\nfail\r\n"
		"*8\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$4\r\nport\r\n:7003\r\n"
		"$4\r\nrole\r\n$6\r\nmaster\r\n$6\r\nhealth\r\n$6\r\nonline\r\n"
		"*6\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$4\r\nport\r\n:7004\r\n"
		"$4\r\nrole\r\n$7\r\nreplica\r\n"
		"*4\r\n$5\r\nslots\r\n*4\r\n:8192\r\n:9000\r\n:9001\r\n:16383\r\n"
		"$5\r\nnodes\r\n*1\r\n"
		"*6\r\n$8\r\nendpoint\r\n$0\r\n\r\n$4\r\nport\r\n:7001\r\n"
		"$4\r\nrole\r\n$6\r\nmaster\r\n";
	redisReply *r = resp(bytes);

	(void)state;
	assert_int_equal(rcluster_map_from_shards(r, "10.0.0.9", m), 16384);
	assert_int_equal(m->node[m->slot[0]].port, 7003);
	assert_int_equal(m->node[m->slot[8191]].port, 7003);
	assert_int_equal(m->node[m->slot[8192]].port, 7001);
	assert_int_equal(m->node[m->slot[16383]].port, 7001);
	assert_string_equal(m->node[m->slot[16383]].host, "10.0.0.9");
	freeReplyObject(r);
	free(m);
}

static void test_moved_and_ask_are_parsed(void **state)
{
	struct rcluster_redirect rd;
	const char *s;

	(void)state;
	s = "MOVED 3999 127.0.0.1:6381";
	assert_int_equal(rcluster_parse_redirect(s, strlen(s), &rd), RCLUSTER_MOVED);
	assert_int_equal(rd.slot, 3999);
	assert_string_equal(rd.host, "127.0.0.1");
	assert_int_equal(rd.port, 6381);
	s = "ASK 16383 ::1:7000";
	assert_int_equal(rcluster_parse_redirect(s, strlen(s), &rd), RCLUSTER_ASK);
	assert_int_equal(rd.slot, 16383);
	assert_string_equal(rd.host, "::1");
	assert_int_equal(rd.port, 7000);
	s = "MOVED 0 :7000";         /* empty host: the node that answered */
	assert_int_equal(rcluster_parse_redirect(s, strlen(s), &rd), RCLUSTER_MOVED);
	assert_string_equal(rd.host, "");
}

static void test_other_errors_and_bad_redirects_are_not_redirects(void **state)
{
	static const char *const bad[] = {
		"NOSCRIPT No matching script", "ERR unknown", "MOVED", "MOVED ", "MOVED 1",
		"MOVED 1 ", "MOVED 16384 h:1", "MOVED x h:1", "MOVED 1 h", "MOVED 1 h:",
		"MOVED 1 h:0", "MOVED 1 h:65536", "MOVED 1 h:123456", "MOVED 1 h:1x",
		"MOVED 100000 h:1", "ASK 1  h:1", "moved 1 h:1", "TRYAGAIN", "CLUSTERDOWN",
	};
	struct rcluster_redirect rd;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (rcluster_parse_redirect(bad[i], strlen(bad[i]), &rd) != RCLUSTER_NOT_REDIRECT)
			fail_msg("\"%s\" was taken for a redirect", bad[i]);
	/* length counts, not a NUL */
	assert_int_equal(rcluster_parse_redirect("MOVED 1 h:12", 11, &rd), RCLUSTER_MOVED);
	assert_int_equal(rd.port, 1);
}

static void test_map_node_dedups_and_bounds(void **state)
{
	struct rcluster_map *m = malloc(sizeof(*m));
	char host[80];
	int i;

	(void)state;
	rcluster_map_clear(m);
	assert_int_equal(rcluster_map_node(m, "a", 1, 1), 0);
	assert_int_equal(rcluster_map_node(m, "a", 1, 2), 1);
	assert_int_equal(rcluster_map_node(m, "a", 1, 1), 0);
	assert_int_equal(rcluster_map_node(m, "", 0, 1), -1);
	memset(host, 'h', sizeof(host));
	assert_int_equal(rcluster_map_node(m, host, RCLUSTER_HOST_MAX, 1), -1);
	for (i = 2; i < RCLUSTER_MAX_NODES; i++)
		assert_int_equal(rcluster_map_node(m, "b", 1, i), i);
	assert_int_equal(rcluster_map_node(m, "c", 1, 1), -1);
	free(m);
}

static void test_sentinel_master_address_and_switch_are_parsed(void **state)
{
	char host[64];
	int port = 0;
	redisReply *r = resp("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n");
	const char *m;

	(void)state;
	assert_int_equal(rsentinel_parse_master(r, host, sizeof(host), &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 6380);
	freeReplyObject(r);
	r = resp("*-1\r\n");       /* Sentinel does not know the name */
	assert_int_equal(rsentinel_parse_master(r, host, sizeof(host), &port), -1);
	freeReplyObject(r);
	r = resp("*2\r\n$9\r\n127.0.0.1\r\n$5\r\n99999\r\n");
	assert_int_equal(rsentinel_parse_master(r, host, sizeof(host), &port), -1);
	freeReplyObject(r);
	m = "gw 127.0.0.1 6379 ::1 6380";
	assert_int_equal(rsentinel_parse_switch(m, strlen(m), "gw", host, sizeof(host), &port), 1);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 6380);
	assert_int_equal(rsentinel_parse_switch(m, strlen(m), "other", host, sizeof(host), &port), 0);
	assert_int_equal(rsentinel_parse_switch(m, strlen(m), "g", host, sizeof(host), &port), 0);
	m = "gw 127.0.0.1 6379 10.0.0.2";
	assert_int_equal(rsentinel_parse_switch(m, strlen(m), "gw", host, sizeof(host), &port), -1);
	m = "gw 127.0.0.1 6379 10.0.0.2 6380 extra";
	assert_int_equal(rsentinel_parse_switch(m, strlen(m), "gw", host, sizeof(host), &port), -1);
	m = "gw a 1 b x";
	assert_int_equal(rsentinel_parse_switch(m, strlen(m), "gw", host, sizeof(host), &port), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_slots_match_the_cluster_spec),
		cmocka_unit_test(test_hash_tags_put_keys_in_one_slot),
		cmocka_unit_test(test_cluster_slots_reply_maps_every_slot_to_its_master),
		cmocka_unit_test(test_partial_cluster_slots_leaves_holes),
		cmocka_unit_test(test_malformed_cluster_slots_are_refused),
		cmocka_unit_test(test_cluster_shards_reply_uses_the_healthy_master),
		cmocka_unit_test(test_moved_and_ask_are_parsed),
		cmocka_unit_test(test_other_errors_and_bad_redirects_are_not_redirects),
		cmocka_unit_test(test_map_node_dedups_and_bounds),
		cmocka_unit_test(test_sentinel_master_address_and_switch_are_parsed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
