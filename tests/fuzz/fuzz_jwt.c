/*
 * libFuzzer target: the token verifier, the parser of the most hostile
 * input the agent sees. A fixed keyset (HS256 secret, RSA and EC keys
 * generated once) with every algorithm allowed, so inputs can reach the
 * signature and claim checks; the first byte also picks the policy knobs.
 * A valid HS256 token is cheap for the fuzzer to learn from the seeds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "jwt_verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct jwt_keyset *ks;
static const unsigned char secret[] = "fuzz-secret-fuzz-secret-fuzz-secret!";

static void init(void)
{
	EVP_PKEY *rsa = EVP_RSA_gen(2048), *ec = EVP_EC_gen("P-256");
	json_t *jwks = json_object(), *keys = json_array();
	char err[256];

	ks = jwt_keyset_new();
	json_object_set_new(jwks, "keys", keys);
	json_array_append_new(keys, jwt_jwk_public(rsa, "rsa1", NULL));
	json_array_append_new(keys, jwt_jwk_public(ec, "ec1", NULL));
	json_array_append_new(keys, jwt_jwk_secret(secret, sizeof(secret) - 1, "hs1", NULL));
	if (jwt_keyset_add_jwks(ks, jwks, err, sizeof(err)) != 3)
		abort();
	json_decref(jwks);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const auds[] = { "api" };
	struct jwt_policy p;
	json_t *claims = NULL;
	unsigned char *out;
	enum jwt_status st;

	if (!ks)
		init();
	if (size < 1)
		return 0;
	memset(&p, 0, sizeof(p));
	p.algs = JWT_ALL_ALGS;
	p.max_len = JWT_DEF_MAX_TOKEN;
	p.leeway = data[0] & 0x3f;
	if (data[0] & 0x40)
		p.issuer = "https://iss";
	if (data[0] & 0x80) {
		p.audiences = auds;
		p.naud = 1;
	}
	st = jwt_verify_token(ks, &p, (const char *)data + 1, size - 1, 1800000000, &claims);
	if ((st == JWT_OK) != (claims != NULL))
		abort();
	json_decref(claims);
	out = malloc(size * 3 / 4 + 4);
	if (out) {
		long n = jwt_b64url_decode(out, (const char *)data + 1, size - 1);

		if (n > (long)(size * 3 / 4 + 1))
			abort();
		free(out);
	}
	return 0;
}
