/*
 * The Auth Service client (see authsvc.h).
 */
#include "authsvc.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "trace.h"

#define VALIDATE_METHOD "/spogate.auth.v1.AuthService/ValidateToken"
#define KEY_LEN         32

static struct rpc_channel *ch;
static authsvc_done_fn on_done;

static void on_validate_done(void *arg, int status, const uint8_t *resp, size_t len)
{
	uint8_t *key = arg;
	Spogate__Auth__V1__ValidateTokenResponse *m = NULL;

	if (status == RPC_OK) {
		m = spogate__auth__v1__validate_token_response__unpack(NULL, len, resp);
		if (!m)
			log_warn("authn: malformed ValidateTokenResponse (%zu bytes)", len);
	}
	on_done(key, m);
	if (m)
		spogate__auth__v1__validate_token_response__free_unpacked(m, NULL);
	free(key);
}

int authsvc_validate(const uint8_t *key, const char *tok, size_t len,
                     const struct gw_request *gr)
{
	struct rpc_meta meta;
	Spogate__Auth__V1__ValidateTokenRequest req = SPOGATE__AUTH__V1__VALIDATE_TOKEN_REQUEST__INIT;
	uint8_t *buf, *k;
	char *t;
	size_t n;
	int rc = -1;

	t = strndup(tok, len);
	k = malloc(KEY_LEN);
	if (!t || !k)
		goto out;
	memcpy(k, key, KEY_LEN);
	req.token = t;
	n = spogate__auth__v1__validate_token_request__get_packed_size(&req);
	buf = malloc(n ? n : 1);
	if (!buf)
		goto out;
	spogate__auth__v1__validate_token_request__pack(&req, buf);
	trace_meta(gr, &meta);
	rc = rpc_call(ch, VALIDATE_METHOD, key, &meta, buf, n, on_validate_done, k);
	free(buf);
	if (rc == 0)
		k = NULL;
 out:
	free(t);
	free(k);
	return rc;
}

int authsvc_start(const char *target, int timeout_ms, const struct rpc_tls *tls,
                  authsvc_done_fn done)
{
	on_done = done;
	if (rpc_start() < 0)
		return -1;
	ch = rpc_channel_new(target, "auth", timeout_ms, tls);
	if (!ch) {
		log_error("authn: cannot create a gRPC channel to %s", target);
		return -1;
	}
	log_info("authn: Auth Service at %s%s, deadline %d ms", target,
	         tls && tls->enabled ? " over TLS" : "", timeout_ms);
	return 0;
}

void authsvc_stop(void)
{
	if (ch) {
		rpc_channel_free(ch);
		ch = NULL;
	}
}
