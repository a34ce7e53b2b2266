/*
 * libFuzzer target: the token verifier, the parser of the most hostile
 * input the agent sees. A fixed keyset (HS256 and HS512 secrets, RSA, EC,
 * Ed25519 and Ed448 keys generated once) with every algorithm allowed.
 *
 * The fuzzer cannot forge signatures, so the harness signs for it: byte 0
 * picks the policy knobs, byte 1 the mode, the rest is
 *   mode 0  a raw token (header, signature and base64 parsing)
 *   mode 1  a claims object, signed HS256 under kid "hs1" (the claim checks)
 *   mode 2  header NUL claims, signed HS256 (header handling with a valid MAC)
 *   mode 3  a claims object, signed HS512 with no kid (key search)
 * In mode 1 the signature is always good, so a signature, key or algorithm
 * error there is a bug and aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "jwt_verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BODY_MAX 6000           /* signed tokens stay below JWT_DEF_MAX_TOKEN */

static struct jwt_keyset *ks;
static const unsigned char secret[] = "fuzz-secret-fuzz-secret-fuzz-secret!";
static const unsigned char secret512[] =
	"fuzz-secret-512-fuzz-secret-512-fuzz-secret-512-fuzz-secret-512!";

static void init(void)
{
	EVP_PKEY *rsa = EVP_RSA_gen(2048), *ec = EVP_EC_gen("P-256");
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY *ed448 = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
	json_t *jwks = json_object(), *keys = json_array();
	char err[256];

	ks = jwt_keyset_new();
	json_object_set_new(jwks, "keys", keys);
	json_array_append_new(keys, jwt_jwk_public(rsa, "rsa1", NULL));
	json_array_append_new(keys, jwt_jwk_public(ec, "ec1", NULL));
	/* RFC 9864 names: one key pinned to Ed25519, one to nothing. */
	json_array_append_new(keys, jwt_jwk_public(ed, "ed1", "Ed25519"));
	json_array_append_new(keys, jwt_jwk_public(ed448, "ed448", NULL));
	json_array_append_new(keys, jwt_jwk_secret(secret, sizeof(secret) - 1, "hs1", "HS256"));
	json_array_append_new(keys, jwt_jwk_secret(secret512, sizeof(secret512) - 1, "hs5",
	                                           "HS512"));
	if (jwt_keyset_add_jwks(ks, jwks, err, sizeof(err)) != 6)
		abort();
	json_decref(jwks);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(ed448);
}

/* header.payload.MAC in a malloc'd string of length *len. */
static char *sign(const EVP_MD *md, const unsigned char *key, size_t klen,
                  const uint8_t *hdr, size_t hlen, const uint8_t *body, size_t blen,
                  size_t *len)
{
	size_t cap = (hlen + blen) * 4 / 3 + 128;
	char *t = malloc(cap);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	size_t n;

	if (!t)
		return NULL;
	n = jwt_b64url_encode(t, hdr, hlen);
	t[n++] = '.';
	n += jwt_b64url_encode(t + n, body, blen);
	if (!HMAC(md, key, (int)klen, (const unsigned char *)t, n, mac, &maclen)) {
		free(t);
		return NULL;
	}
	t[n++] = '.';
	n += jwt_b64url_encode(t + n, mac, maclen);
	*len = n;
	return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const auds[] = { "api" };
	static const char hs1[] = "{\"alg\":\"HS256\",\"kid\":\"hs1\"}";
	static const char hs5[] = "{\"alg\":\"HS512\"}";
	const uint8_t *body, *nul;
	struct jwt_policy p;
	json_t *claims = NULL;
	enum jwt_status st;
	char *tok = NULL;
	size_t len, blen;
	int mode;

	if (!ks)
		init();
	if (size < 2)
		return 0;
	memset(&p, 0, sizeof(p));
	p.algs = JWT_ALL_ALGS;
	p.max_len = JWT_DEF_MAX_TOKEN;
	p.leeway = data[0] & 0x1f;
	p.require_exp = !!(data[0] & 0x20);
	if (data[0] & 0x40)
		p.issuer = "https://iss";
	if (data[0] & 0x80) {
		p.audiences = auds;
		p.naud = 1;
	}
	mode = data[1] & 3;
	body = data + 2;
	blen = size - 2;
	if (mode && blen > BODY_MAX)
		return 0;
	switch (mode) {
	case 0:
		tok = malloc(blen ? blen : 1);
		if (tok)
			memcpy(tok, body, blen);
		len = blen;
		break;
	case 1:
		tok = sign(EVP_sha256(), secret, sizeof(secret) - 1, (const uint8_t *)hs1,
		           sizeof(hs1) - 1, body, blen, &len);
		break;
	case 2:
		nul = memchr(body, '\0', blen);
		if (!nul)
			tok = sign(EVP_sha256(), secret, sizeof(secret) - 1, body, blen,
			           (const uint8_t *)"{}", 2, &len);
		else
			tok = sign(EVP_sha256(), secret, sizeof(secret) - 1, body,
			           (size_t)(nul - body), nul + 1, blen - (size_t)(nul + 1 - body),
			           &len);
		break;
	default:
		tok = sign(EVP_sha512(), secret512, sizeof(secret512) - 1, (const uint8_t *)hs5,
		           sizeof(hs5) - 1, body, blen, &len);
		break;
	}
	if (!tok)
		return 0;
	st = jwt_verify_token(ks, &p, tok, len, 1800000000, &claims);
	if ((st == JWT_OK) != (claims != NULL))
		abort();
	if ((mode == 1 || mode == 3) &&
	    (st == JWT_E_SIGNATURE || st == JWT_E_KID || st == JWT_E_ALG))
		abort();
	if (st == JWT_OK && p.require_exp && !json_object_get(claims, "exp"))
		abort();
	json_decref(claims);
	if (mode == 0) {
		unsigned char *out = malloc(blen * 3 / 4 + 4);

		if (out) {
			long n = jwt_b64url_decode(out, tok, len);

			if (n > (long)(blen * 3 / 4 + 1))
				abort();
			free(out);
		}
	}
	free(tok);
	return 0;
}
