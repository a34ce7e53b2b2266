/*
 * libFuzzer target: the JWKS parser, which reads documents an identity
 * provider serves over the network (auth.jwks_uri) as well as jwks_file.
 * The input is the document's text; whatever keys it yields are then used
 * once, so key material that parsed but is unusable cannot hide. The same
 * bytes also go through the fetcher's other parsers of what a provider
 * sends: the discovery document, Cache-Control, Content-Type, ETag and
 * Last-Modified.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jwks_fetch.h"
#include "jwt_verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One token per key type; none verifies against fuzzed keys, but each
 * reaches the signature check of every key it selects. */
static const char *const toks[] = {
	"eyJhbGciOiJSUzI1NiJ9.e30.AAAA",
	"eyJhbGciOiJQUzI1NiJ9.e30.AAAA",
	"eyJhbGciOiJFUzI1NiJ9.e30.AAAA",
	"eyJhbGciOiJFZERTQSJ9.e30.AAAA",
	"eyJhbGciOiJFZDI1NTE5In0.e30.AAAA",
	"eyJhbGciOiJFZDQ0OCJ9.e30.AAAA",
	"eyJhbGciOiJIUzI1NiJ9.e30.AAAA",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jwt_keyset *ks;
	enum jwks_outcome o;
	char err[256], uri[JWKS_URI_MAX];
	json_t *doc;
	size_t i;
	int n;

	if (size > 256 * 1024)
		return 0;
	if (jwks_discovery_parse((const char *)data, size, "https://idp", uri, sizeof(uri),
	                         err, sizeof(err)) == 0 && strncmp(uri, "https://", 8) != 0)
		abort();
	if (jwks_cache_max_age((const char *)data, size) < -1)
		abort();
	jwks_content_type_ok((const char *)data, size);
	/* A kept validator goes into a request header: never a CR, LF or NUL. */
	if ((jwks_etag_ok((const char *)data, size) ||
	     jwks_last_modified_ok((const char *)data, size, 4102444800LL)) &&
	    (memchr(data, '\r', size) || memchr(data, '\n', size) || memchr(data, '\0', size)))
		abort();
	ks = jwks_parse((const char *)data, size, &o, err, sizeof(err));
	if ((ks != NULL) != (o == JWKS_OK))
		abort();
	jwt_keyset_unref(ks);
	doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!doc)
		return 0;
	ks = jwt_keyset_new();
	if (!ks)
		abort();
	err[0] = '\0';
	n = jwt_keyset_add_jwks(ks, doc, err, sizeof(err));
	if (n < 0 && !err[0])
		abort();            /* every refusal says why */
	if (n >= 0 && (size_t)n > jwt_keyset_size(ks))
		abort();
	for (i = 0; i < sizeof(toks) / sizeof(toks[0]); i++)
		if (jwt_verify_signature(ks, JWT_ALL_ALGS, toks[i], strlen(toks[i])) == JWT_OK)
			abort();
	jwt_keyset_unref(ks);
	json_decref(doc);
	return 0;
}
