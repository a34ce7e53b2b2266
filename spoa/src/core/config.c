/*
 * agent.json loading. The file is bounded (CONFIG_MAX_BYTES), unknown keys
 * are refused with their name so a typo never silently falls back to a
 * default.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "spop.h"

int config_set_listen(struct agent_config *cfg, const char *s)
{
	char path[ADDR_UNIX_MAX + 1];
	int rc = addr_unix(s, path, sizeof(path));

	if (rc < 0)
		return -1;
	if (rc > 0) {
		memcpy(cfg->listen_unix, path, sizeof(path));
		return 0;
	}
	if (addr_split(s, cfg->listen_host, sizeof(cfg->listen_host), &cfg->listen_port) < 0)
		return -1;
	cfg->listen_unix[0] = '\0';
	return 0;
}

void config_defaults(struct agent_config *cfg)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
	cfg->listen_port = 12345;
	cfg->threads = n > 0 && n < 64 ? (int)n : 1;
	cfg->max_frame_size = SPOP_DEF_FRAME_SIZE;
	cfg->handshake_timeout_ms = CONFIG_DEF_HANDSHAKE_MS;
	cfg->idle_timeout_ms = CONFIG_DEF_IDLE_MS;
	cfg->log_level = LOG_LVL_INFO;
}

int config_check_keys(json_t *obj, const char *sect, const char *const *known,
                      char *err, size_t errlen)
{
	const char *key;
	json_t *val;
	size_t i;

	json_object_foreach(obj, key, val) {
		for (i = 0; known[i]; i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (!known[i]) {
			snprintf(err, errlen, "unknown key \"%s%s%s\"", sect ? sect : "",
			         sect ? "." : "", key);
			return -1;
		}
	}
	return 0;
}

int config_get_str(json_t *obj, const char *sect, const char *key,
                   const char **out, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return 0;
	if (!json_is_string(v)) {
		snprintf(err, errlen, "\"%s.%s\" must be a string", sect, key);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

int config_get_int(json_t *obj, const char *sect, const char *key, long long min,
                   long long max, long long *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	long long n;

	if (!v)
		return 0;
	if (!json_is_integer(v)) {
		snprintf(err, errlen, "\"%s.%s\" must be an integer", sect, key);
		return -1;
	}
	n = json_integer_value(v);
	if (n < min || n > max) {
		snprintf(err, errlen, "\"%s.%s\" must be in %lld..%lld, not %lld",
		         sect, key, min, max, n);
		return -1;
	}
	*out = n;
	return 0;
}

int config_get_bool(json_t *obj, const char *sect, const char *key, int *out,
                    char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return 0;
	if (!json_is_boolean(v)) {
		snprintf(err, errlen, "\"%s.%s\" must be true or false", sect, key);
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

static int section(json_t *root, const char *name, json_t **out, char *err, size_t errlen)
{
	json_t *v = json_object_get(root, name);

	if (!v)
		return 0;
	if (!json_is_object(v)) {
		snprintf(err, errlen, "\"%s\" must be an object", name);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_core(struct agent_config *cfg, char *err, size_t errlen)
{
	static const char *const known[] = {
		"listen", "threads", "max_frame_size", "log_level", "metrics_listen",
		"auth", "authz", "redis", "rate_limiting", "debug", "handshake_timeout_ms",
		"idle_timeout_ms", NULL
	};
	json_t *root = cfg->root, *debug = NULL;
	const char *s = NULL;
	long long n;
	int lvl;

	if (config_check_keys(root, NULL, known, err, errlen) < 0)
		return -1;
	if (config_get_str(root, "", "listen", &s, err, errlen) < 0)
		return -1;
	if (s && config_set_listen(cfg, s) < 0) {
		snprintf(err, errlen, "\"listen\": \"%s\" is not host:port or unix:/absolute/path "
		         "(at most %d bytes)", s, ADDR_UNIX_MAX);
		return -1;
	}
	n = cfg->threads;
	if (config_get_int(root, "", "threads", 1, 64, &n, err, errlen) < 0)
		return -1;
	cfg->threads = (int)n;
	n = cfg->max_frame_size;
	if (config_get_int(root, "", "max_frame_size", SPOP_MIN_FRAME_SIZE,
	                   SPOP_MAX_FRAME_SIZE, &n, err, errlen) < 0)
		return -1;
	cfg->max_frame_size = (uint32_t)n;
	n = cfg->handshake_timeout_ms;
	if (config_get_int(root, "", "handshake_timeout_ms", 100, 600000, &n, err, errlen) < 0)
		return -1;
	cfg->handshake_timeout_ms = (int)n;
	n = cfg->idle_timeout_ms;
	if (config_get_int(root, "", "idle_timeout_ms", 1000, 86400000, &n, err, errlen) < 0)
		return -1;
	cfg->idle_timeout_ms = (int)n;
	s = NULL;
	if (config_get_str(root, "", "log_level", &s, err, errlen) < 0)
		return -1;
	if (s) {
		lvl = log_level_parse(s);
		if (lvl < 0) {
			snprintf(err, errlen, "\"log_level\": \"%s\" is not error, warn, info or debug", s);
			return -1;
		}
		cfg->log_level = lvl;
	}
	s = NULL;
	if (config_get_str(root, "", "metrics_listen", &s, err, errlen) < 0)
		return -1;
	if (s && *s && addr_split(s, cfg->metrics_host, sizeof(cfg->metrics_host),
	                          &cfg->metrics_port) < 0) {
		snprintf(err, errlen, "\"metrics_listen\": \"%s\" is not host:port", s);
		return -1;
	}
	if (section(root, "debug", &debug, err, errlen) < 0 ||
	    section(root, "auth", &cfg->auth, err, errlen) < 0 ||
	    section(root, "authz", &cfg->authz, err, errlen) < 0 ||
	    section(root, "redis", &cfg->redis, err, errlen) < 0 ||
	    section(root, "rate_limiting", &cfg->rate_limiting, err, errlen) < 0)
		return -1;
	if (debug) {
		static const char *const dknown[] = { "delay_ms", NULL };

		if (config_check_keys(debug, "debug", dknown, err, errlen) < 0)
			return -1;
		n = 0;
		if (config_get_int(debug, "debug", "delay_ms", 0, 10000, &n, err, errlen) < 0)
			return -1;
		cfg->debug_delay_ms = (int)n;
	}
	return 0;
}

int config_load(struct agent_config *cfg, const char *path, char *err, size_t errlen)
{
	json_error_t jerr;
	char msg[512];
	FILE *f;
	long size;

	f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: error: cannot open: %m", path);
		return -1;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > CONFIG_MAX_BYTES) {
		fclose(f);
		snprintf(err, errlen, "%s: error: larger than %d bytes", path, CONFIG_MAX_BYTES);
		return -1;
	}
	rewind(f);
	cfg->root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
	fclose(f);
	if (!cfg->root) {
		snprintf(err, errlen, "%s:%d:%d: error: %s", path, jerr.line, jerr.column, jerr.text);
		return -1;
	}
	if (!json_is_object(cfg->root)) {
		snprintf(err, errlen, "%s: error: the top level must be an object", path);
		return -1;
	}
	if (parse_core(cfg, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "%s: error: %s", path, msg);
		return -1;
	}
	return 0;
}

void config_free(struct agent_config *cfg)
{
	json_decref(cfg->root);
	cfg->root = NULL;
	cfg->auth = cfg->authz = cfg->redis = cfg->rate_limiting = NULL;
}
