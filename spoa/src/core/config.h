/*
 * agent.json (docs/agent-json.md). The core keys are parsed here; each
 * module parses and validates its own section from the kept JSON tree, so
 * adding a module does not touch this file's struct.
 */
#ifndef SPOGATE_CONFIG_H
#define SPOGATE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "addr.h"

#define CONFIG_MAX_BYTES (1024 * 1024)

/* A peer that has not finished its HELLO by then is not HAProxy (whose
 * own `timeout hello` is shorter); one idle this long is closed with a
 * DISCONNECT (HAProxy's generated `timeout idle` is 2m, so it closes first). */
#define CONFIG_DEF_HANDSHAKE_MS 5000
#define CONFIG_DEF_IDLE_MS      (10 * 60 * 1000)

struct agent_config {
	char listen_host[256];
	int listen_port;
	char listen_unix[ADDR_UNIX_MAX + 1]; /* "" = listen on listen_host:listen_port */
	int threads;
	uint32_t max_frame_size;
	int log_level;
	char metrics_host[256];
	int metrics_port;              /* 0 = no metrics listener */
	int debug_delay_ms;            /* test aid: defer every decision */
	int handshake_timeout_ms;      /* HELLO must be complete within this */
	int idle_timeout_ms;           /* a connection with nothing in flight */
	json_t *root;                  /* owned; sections below borrow from it */
	json_t *auth;                  /* each NULL when absent */
	json_t *authz;
	json_t *redis;
	json_t *rate_limiting;
};

/* Sets the SPOP listen address from "host:port" or "unix:/path".
 * Returns 0, or -1 when s is neither. */
int config_set_listen(struct agent_config *cfg, const char *s);

/* Fills cfg with defaults (no file). */
void config_defaults(struct agent_config *cfg);

/* Loads path over the defaults. Returns 0, or -1 with a message in err
 * ("agent.json:3:5: error: ..."). cfg->root is owned by cfg. */
int config_load(struct agent_config *cfg, const char *path, char *err, size_t errlen);

void config_free(struct agent_config *cfg);

/* Helpers for module parsers: read an optional member with a type check.
 * Each returns 0 (absent keeps *out) or -1 with err set. */
int config_get_str(json_t *obj, const char *sect, const char *key,
                   const char **out, char *err, size_t errlen);
int config_get_int(json_t *obj, const char *sect, const char *key, long long min,
                   long long max, long long *out, char *err, size_t errlen);
int config_get_bool(json_t *obj, const char *sect, const char *key, int *out,
                    char *err, size_t errlen);

/* Refuses members of obj not in the NULL-terminated list. */
int config_check_keys(json_t *obj, const char *sect, const char *const *known,
                      char *err, size_t errlen);

#endif
