/*
 * Unit tests of the JWT verifier. Tokens come from libjwt (an independent
 * signer) or are assembled by hand for the hostile cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jwt.h>   /* libjwt, for minting */
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "jose_vectors.h"
#include "jwt_verify.h"

#define NOW 1800000000LL

static EVP_PKEY *rsa_key, *ec_key, *ec384_key, *ed25519_key, *ed448_key;
static char *rsa_priv, *rsa_pub, *ec_priv, *ec384_priv;
static const unsigned char secret[] = "0123456789abcdef0123456789abcdef-hs";
static struct jwt_keyset *ks;
static const char *const auds[] = { "api", "other" };
static struct jwt_policy pol;

static char *pem(EVP_PKEY *k, int priv)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *out;
	long n;

	if (priv)
		PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	else
		PEM_write_bio_PUBKEY(b, k);
	n = BIO_get_mem_data(b, &p);
	out = malloc((size_t)n + 1);
	memcpy(out, p, (size_t)n);
	out[n] = '\0';
	BIO_free(b);
	return out;
}

/* A token signed by libjwt. claims is a JSON object text. */
static char *mint(jwt_alg_t alg, const char *key, size_t keylen, const char *kid,
                  const char *claims)
{
	jwt_t *j;
	char *t, *out;

	assert_int_equal(jwt_new(&j), 0);
	assert_int_equal(jwt_set_alg(j, alg, (const unsigned char *)key, (int)keylen), 0);
	if (kid)
		assert_int_equal(jwt_add_header(j, "kid", kid), 0);
	assert_int_equal(jwt_add_grants_json(j, claims), 0);
	t = jwt_encode_str(j);
	assert_non_null(t);
	out = strdup(t);
	free(t);
	jwt_free(j);
	return out;
}

static char *b64(const char *s, size_t n)
{
	char *o = malloc(n * 4 / 3 + 4);

	jwt_b64url_encode(o, (const unsigned char *)s, n);
	return o;
}

/* header.payload.HMAC-SHA256(key) assembled by hand. */
static char *hs_raw(const char *hdr, const char *payload, const unsigned char *key,
                    size_t keylen)
{
	char *h = b64(hdr, strlen(hdr)), *p = b64(payload, strlen(payload)), *s, *out;
	unsigned char mac[64];
	unsigned maclen;
	size_t n = strlen(h) + strlen(p) + 200;

	out = malloc(n);
	snprintf(out, n, "%s.%s", h, p);
	HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)out, strlen(out), mac, &maclen);
	s = b64((const char *)mac, maclen);
	snprintf(out, n, "%s.%s.%s", h, p, s);
	free(h);
	free(p);
	free(s);
	return out;
}

/* A token signed here with OpenSSL for the algorithms libjwt 1.10 lacks
 * (PS*, EdDSA, Ed25519, Ed448). alg is the header's; kid may be NULL. */
static char *sign_tok(const char *alg, EVP_PKEY *priv, const char *kid, const char *payload)
{
	char hdr[256], *h, *p, *sg, *out;
	unsigned char sig[1024];
	size_t siglen = sizeof(sig), n;
	const EVP_MD *md = NULL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;

	if (kid)
		snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"%s\"}", alg, kid);
	else
		snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\"}", alg);
	if (strncmp(alg, "Ed", 2) != 0)
		md = strstr(alg, "256") ? EVP_sha256() : strstr(alg, "384") ? EVP_sha384() : EVP_sha512();
	h = b64(hdr, strlen(hdr));
	p = b64(payload, strlen(payload));
	n = strlen(h) + strlen(p) + 2048;
	out = malloc(n);
	snprintf(out, n, "%s.%s", h, p);
	assert_int_equal(EVP_DigestSignInit(ctx, &pctx, md, NULL, priv), 1);
	if (alg[0] == 'P') {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
	}
	assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)out, strlen(out)), 1);
	sg = b64((const char *)sig, siglen);
	snprintf(out, n, "%s.%s.%s", h, p, sg);
	EVP_MD_CTX_free(ctx);
	free(h);
	free(p);
	free(sg);
	return out;
}

/* tok with its header replaced by {"alg":alg,"kid":kid}, signature kept. */
static char *relabel(const char *tok, const char *alg, const char *kid)
{
	char hdr[256], *h, *out;
	const char *dot = strchr(tok, '.');
	size_t n;

	snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"%s\"}", alg, kid);
	h = b64(hdr, strlen(hdr));
	n = strlen(h) + strlen(dot) + 1;
	out = malloc(n);
	snprintf(out, n, "%s%s", h, dot);
	free(h);
	return out;
}

static struct jwt_keyset *keyset_of(const char *jwks_text)
{
	struct jwt_keyset *k = jwt_keyset_new();
	json_t *j = json_loads(jwks_text, 0, NULL);
	char err[256];

	assert_non_null(j);
	if (jwt_keyset_add_jwks(k, j, err, sizeof(err)) < 1)
		fail_msg("%s", err);
	json_decref(j);
	return k;
}

static enum jwt_status verify(const char *tok)
{
	json_t *c = NULL;
	enum jwt_status st = jwt_verify_token(ks, &pol, tok, strlen(tok), NOW, &c);

	if (st == JWT_OK)
		assert_non_null(c);
	else
		assert_null(c);
	json_decref(c);
	return st;
}

/* Verifies a token made for one check, expecting want, and frees it. */
static void verify_free(char *tok, enum jwt_status want)
{
	assert_int_equal(verify(tok), want);
	free(tok);
}

static char *claims(const char *extra)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf),
	         "{\"sub\":\"alice\",\"iss\":\"https://issuer\",\"aud\":\"api\","
	         "\"exp\":%lld,\"iat\":%lld%s%s}",
	         NOW + 600, NOW - 10, extra ? "," : "", extra ? extra : "");
	return buf;
}

static int setup(void **state)
{
	char path[] = "/tmp/test_jwt_XXXXXX";
	char err[256];
	json_t *jwks, *keys;
	int fd;

	(void)state;
	rsa_key = EVP_RSA_gen(2048);
	ec_key = EVP_EC_gen("P-256");
	ec384_key = EVP_EC_gen("P-384");
	ed25519_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	ed448_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
	assert_non_null(ed25519_key);
	assert_non_null(ed448_key);
	assert_non_null(rsa_key);
	assert_non_null(ec_key);
	rsa_priv = pem(rsa_key, 1);
	rsa_pub = pem(rsa_key, 0);
	ec_priv = pem(ec_key, 1);
	ec384_priv = pem(ec384_key, 1);

	ks = jwt_keyset_new();
	/* RSA through a PEM file, EC and oct through a JWKS document. */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, rsa_pub, strlen(rsa_pub)), (ssize_t)strlen(rsa_pub));
	close(fd);
	assert_int_equal(jwt_keyset_add_pem_file(ks, "rsa1", NULL, path, err, sizeof(err)), 0);
	unlink(path);
	jwks = json_object();
	keys = json_array();
	json_object_set_new(jwks, "keys", keys);
	json_array_append_new(keys, jwt_jwk_public(ec_key, "ec1", "ES256"));
	json_array_append_new(keys, jwt_jwk_public(ec384_key, "ec384", NULL));
	json_array_append_new(keys, jwt_jwk_secret(secret, sizeof(secret) - 1, "hs1", "HS256"));
	json_array_append_new(keys, jwt_jwk_public(ed25519_key, "ed1", "EdDSA"));
	json_array_append_new(keys, jwt_jwk_public(ed448_key, "ed448", NULL));
	/* The same RSA key again, labelled for PS256 only. */
	json_array_append_new(keys, jwt_jwk_public(rsa_key, "ps1", "PS256"));
	json_array_append_new(keys, jwt_jwk_public(rsa_key, "rs1", "RS256"));
	assert_int_equal(jwt_keyset_add_jwks(ks, jwks, err, sizeof(err)), 7);
	json_decref(jwks);
	assert_int_equal(jwt_keyset_size(ks), 8);

	pol.algs = JWT_ALL_ALGS;
	pol.issuer = "https://issuer";
	pol.audiences = auds;
	pol.naud = 2;
	pol.leeway = 30;
	pol.max_len = JWT_DEF_MAX_TOKEN;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	jwt_keyset_unref(ks);
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(ec_key);
	EVP_PKEY_free(ec384_key);
	EVP_PKEY_free(ed25519_key);
	EVP_PKEY_free(ed448_key);
	free(rsa_priv);
	free(rsa_pub);
	free(ec_priv);
	free(ec384_priv);
	return 0;
}

static void test_valid_hs256_rs256_es256_es384_are_accepted(void **state)
{
	char *t;

	(void)state;
	t = mint(JWT_ALG_HS256, (const char *)secret, sizeof(secret) - 1, "hs1", claims(NULL));
	assert_int_equal(verify(t), JWT_OK);
	free(t);
	t = mint(JWT_ALG_RS256, rsa_priv, strlen(rsa_priv), "rsa1", claims(NULL));
	assert_int_equal(verify(t), JWT_OK);
	free(t);
	t = mint(JWT_ALG_RS512, rsa_priv, strlen(rsa_priv), "rsa1", claims(NULL));
	assert_int_equal(verify(t), JWT_OK);
	free(t);
	t = mint(JWT_ALG_ES256, ec_priv, strlen(ec_priv), "ec1", claims(NULL));
	assert_int_equal(verify(t), JWT_OK);
	free(t);
	t = mint(JWT_ALG_ES384, ec384_priv, strlen(ec384_priv), "ec384", claims(NULL));
	assert_int_equal(verify(t), JWT_OK);
	free(t);
	/* Without kid every key of the right type is tried. */
	t = mint(JWT_ALG_ES256, ec_priv, strlen(ec_priv), NULL, claims(NULL));
	assert_int_equal(verify(t), JWT_OK);
	free(t);
}

static void test_claims_are_returned(void **state)
{
	char *t = mint(JWT_ALG_RS256, rsa_priv, strlen(rsa_priv), "rsa1",
	               claims("\"roles\":[\"admin\",\"dev\"]"));
	json_t *c = NULL;

	(void)state;
	assert_int_equal(jwt_verify_token(ks, &pol, t, strlen(t), NOW, &c), JWT_OK);
	assert_string_equal(json_string_value(json_object_get(c, "sub")), "alice");
	assert_int_equal(json_array_size(json_object_get(c, "roles")), 2);
	json_decref(c);
	free(t);
}

static void test_expired_token_is_refused_after_leeway(void **state)
{
	char c[256], *t;

	(void)state;
	snprintf(c, sizeof(c), "{\"sub\":\"a\",\"iss\":\"https://issuer\",\"aud\":\"api\","
	         "\"exp\":%lld}", NOW - 31);
	t = mint(JWT_ALG_HS256, (const char *)secret, sizeof(secret) - 1, "hs1", c);
	assert_int_equal(verify(t), JWT_E_EXPIRED);
	free(t);
	snprintf(c, sizeof(c), "{\"sub\":\"a\",\"iss\":\"https://issuer\",\"aud\":\"api\","
	         "\"exp\":%lld}", NOW - 29);
	t = mint(JWT_ALG_HS256, (const char *)secret, sizeof(secret) - 1, "hs1", c);
	assert_int_equal(verify(t), JWT_OK);
	free(t);
}

/* exp + leeway used to wrap to a negative date: UBSan aborted, a release
 * build answered token_expired for a token that never expires. */
static void test_exp_at_int64_max_does_not_overflow(void **state)
{
	static const char *const dates[] = {
		"9223372036854775807", "9223372036854775790", "-9223372036854775808",
	};
	static const enum jwt_status want[] = { JWT_OK, JWT_OK, JWT_E_EXPIRED };
	char c[256], *t;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
		snprintf(c, sizeof(c), "{\"sub\":\"a\",\"iss\":\"https://issuer\","
		         "\"aud\":\"api\",\"exp\":%s,\"nbf\":%s,\"iat\":1}", dates[i],
		         i == 2 ? dates[i] : "1");
		t = hs_raw("{\"alg\":\"HS256\",\"kid\":\"hs1\"}", c, secret, sizeof(secret) - 1);
		assert_int_equal(verify(t), want[i]);
		free(t);
	}
}

static void test_missing_exp_is_refused_when_required(void **state)
{
	const char *c = "{\"sub\":\"a\",\"iss\":\"https://issuer\",\"aud\":\"api\"}";
	char *t = hs_raw("{\"alg\":\"HS256\",\"kid\":\"hs1\"}", c, secret, sizeof(secret) - 1);

	(void)state;
	assert_int_equal(verify(t), JWT_OK);
	pol.require_exp = 1;
	assert_int_equal(verify(t), JWT_E_EXP_MISSING);
	free(t);
	t = mint(JWT_ALG_HS256, (const char *)secret, sizeof(secret) - 1, "hs1", claims(NULL));
	assert_int_equal(verify(t), JWT_OK);
	pol.require_exp = 0;
	free(t);
}

static void test_nbf_or_iat_in_the_future_is_not_yet_valid(void **state)
{
	char c[64], *t;

	(void)state;
	snprintf(c, sizeof(c), "\"nbf\":%lld", NOW + 60);
	t = mint(JWT_ALG_HS256, (const char *)secret, sizeof(secret) - 1, "hs1", claims(c));
	assert_int_equal(verify(t), JWT_E_NOT_YET_VALID);
	free(t);
	snprintf(c, sizeof(c), "\"nbf\":%lld", NOW + 20);   /* within leeway */
	t = mint(JWT_ALG_HS256, (const char *)secret, sizeof(secret) - 1, "hs1", claims(c));
	assert_int_equal(verify(t), JWT_OK);
	free(t);
	t = hs_raw("{\"alg\":\"HS256\",\"kid\":\"hs1\"}",
	           "{\"sub\":\"a\",\"iss\":\"https://issuer\",\"aud\":\"api\",\"iat\":1900000000}",
	           secret, sizeof(secret) - 1);
	assert_int_equal(verify(t), JWT_E_NOT_YET_VALID);
	free(t);
}

static void test_issuer_and_audience_are_checked(void **state)
{
	static const char *const cases[][2] = {
		{ "{\"sub\":\"a\",\"iss\":\"https://evil\",\"aud\":\"api\"}", "iss" },
		{ "{\"sub\":\"a\",\"aud\":\"api\"}", "iss" },
		{ "{\"sub\":\"a\",\"iss\":\"https://issuer\",\"aud\":\"web\"}", "aud" },
		{ "{\"sub\":\"a\",\"iss\":\"https://issuer\"}", "aud" },
		{ "{\"sub\":\"a\",\"iss\":\"https://issuer\",\"aud\":[\"x\",7]}", "aud" },
		{ "{\"sub\":\"a\",\"iss\":\"https://issuer\",\"aud\":[\"x\",\"other\"]}", "ok" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *t = mint(JWT_ALG_HS256, (const char *)secret, sizeof(secret) - 1, "hs1",
		               cases[i][0]);
		enum jwt_status want = strcmp(cases[i][1], "iss") == 0 ? JWT_E_ISSUER :
		                       strcmp(cases[i][1], "aud") == 0 ? JWT_E_AUDIENCE : JWT_OK;

		assert_int_equal(verify(t), want);
		free(t);
	}
}

static void test_unknown_kid_is_refused(void **state)
{
	char *t = mint(JWT_ALG_RS256, rsa_priv, strlen(rsa_priv), "nope", claims(NULL));

	(void)state;
	assert_int_equal(verify(t), JWT_E_KID);
	free(t);
}

static void test_alg_none_is_always_refused(void **state)
{
	char *t = mint(JWT_ALG_NONE, NULL, 0, "hs1", claims(NULL));
	char *h, *p, buf[2048];

	(void)state;
	assert_int_not_equal(verify(t), JWT_OK);
	free(t);
	/* Even with a signature segment and every algorithm allowed. */
	h = b64("{\"alg\":\"none\"}", 14);
	p = b64(claims(NULL), strlen(claims(NULL)));
	snprintf(buf, sizeof(buf), "%s.%s.AAAA", h, p);
	assert_int_equal(verify(buf), JWT_E_ALG);
	free(h);
	h = b64("{\"alg\":\"None\"}", 14);
	snprintf(buf, sizeof(buf), "%s.%s.AAAA", h, p);
	assert_int_equal(verify(buf), JWT_E_ALG);
	free(h);
	free(p);
}

static void test_rs256_key_never_verifies_an_hs256_token(void **state)
{
	/* The classic confusion: HMAC keyed with the RSA public key's PEM. */
	char *t = mint(JWT_ALG_HS256, rsa_pub, strlen(rsa_pub), "rsa1", claims(NULL));
	struct jwt_keyset *only_rsa = jwt_keyset_new();
	char path[] = "/tmp/test_jwt_XXXXXX", err[128];
	int fd = mkstemp(path);

	(void)state;
	assert_int_equal(verify(t), JWT_E_ALG);
	free(t);
	t = mint(JWT_ALG_HS256, rsa_pub, strlen(rsa_pub), NULL, claims(NULL));
	assert_int_not_equal(verify(t), JWT_OK);
	assert_int_equal(write(fd, rsa_pub, strlen(rsa_pub)), (ssize_t)strlen(rsa_pub));
	close(fd);
	assert_int_equal(jwt_keyset_add_pem_file(only_rsa, NULL, NULL, path, err, sizeof(err)), 0);
	unlink(path);
	assert_int_equal(jwt_verify_token(only_rsa, &pol, t, strlen(t), NOW, NULL), JWT_E_ALG);
	jwt_keyset_unref(only_rsa);
	free(t);
}

static void test_algorithm_outside_the_allow_list_is_refused(void **state)
{
	struct jwt_policy p = pol;
	char *t = mint(JWT_ALG_HS256, (const char *)secret, sizeof(secret) - 1, "hs1", claims(NULL));

	(void)state;
	p.algs = JWT_ALG_BIT(JWT_RS256) | JWT_ALG_BIT(JWT_ES256);
	assert_int_equal(jwt_verify_token(ks, &p, t, strlen(t), NOW, NULL), JWT_E_ALG);
	free(t);
	/* ES256 token against the P-384 key: wrong curve. */
	t = mint(JWT_ALG_ES256, ec_priv, strlen(ec_priv), "ec384", claims(NULL));
	assert_int_equal(verify(t), JWT_E_ALG);
	free(t);
}

static void test_malformed_tokens_are_refused(void **state)
{
	char *good = mint(JWT_ALG_HS256, (const char *)secret, sizeof(secret) - 1, "hs1",
	                  claims(NULL));
	char buf[4096], *d;
	size_t n = strlen(good);

	(void)state;
	d = strrchr(good, '.');
	/* two segments */
	snprintf(buf, sizeof(buf), "%.*s", (int)(d - good), good);
	assert_int_equal(verify(buf), JWT_E_MALFORMED);
	/* four segments */
	snprintf(buf, sizeof(buf), "%s.AAAA", good);
	assert_int_equal(verify(buf), JWT_E_MALFORMED);
	/* empty signature */
	snprintf(buf, sizeof(buf), "%.*s.", (int)(d - good), good);
	assert_int_equal(verify(buf), JWT_E_MALFORMED);
	/* bad base64 in the header, the payload, the signature */
	snprintf(buf, sizeof(buf), "%s", good);
	buf[3] = '*';
	assert_int_equal(verify(buf), JWT_E_MALFORMED);
	snprintf(buf, sizeof(buf), "%s", good);
	buf[strchr(good, '.') - good + 3] = '+';
	assert_int_not_equal(verify(buf), JWT_OK);
	snprintf(buf, sizeof(buf), "%s", good);
	buf[n - 2] = '=';
	assert_int_equal(verify(buf), JWT_E_MALFORMED);
	/* plain garbage */
	assert_int_equal(verify("not a token"), JWT_E_MALFORMED);
	assert_int_equal(verify(".."), JWT_E_MALFORMED);
	assert_int_equal(verify(""), JWT_E_MALFORMED);
	free(good);
}

static void test_tampered_payload_fails_the_signature(void **state)
{
	char *t = mint(JWT_ALG_RS256, rsa_priv, strlen(rsa_priv), "rsa1", claims(NULL));
	char *admin = mint(JWT_ALG_RS256, rsa_priv, strlen(rsa_priv), "rsa1",
	                   claims("\"admin\":true"));
	char buf[4096], *d1 = strchr(t, '.'), *d2 = strrchr(t, '.');
	char *a1 = strchr(admin, '.'), *a2 = strrchr(admin, '.');

	(void)state;
	/* header of t, payload of admin, signature of t */
	snprintf(buf, sizeof(buf), "%.*s%.*s%s", (int)(d1 - t), t, (int)(a2 - a1), a1, d2);
	assert_int_equal(verify(buf), JWT_E_SIGNATURE);
	free(t);
	free(admin);
	t = mint(JWT_ALG_ES256, ec_priv, strlen(ec_priv), "ec1", claims(NULL));
	/* truncated ECDSA signature */
	t[strlen(t) - 2] = '\0';   /* 63 bytes: still base64url */
	assert_int_equal(verify(t), JWT_E_SIGNATURE);
	free(t);
}

static void test_oversized_token_is_refused_before_parsing(void **state)
{
	size_t n = 64 * 1024;
	char *t = malloc(n + 1);

	(void)state;
	memset(t, 'A', n);
	t[10] = '.';
	t[20] = '.';
	t[n] = '\0';
	assert_int_equal(verify(t), JWT_E_TOO_LONG);
	free(t);
}

static void test_non_json_payload_and_header_are_malformed(void **state)
{
	char *t;

	(void)state;
	t = hs_raw("{\"alg\":\"HS256\",\"kid\":\"hs1\"}", "not json", secret, sizeof(secret) - 1);
	assert_int_equal(verify(t), JWT_E_MALFORMED);
	free(t);
	t = hs_raw("{\"alg\":\"HS256\",\"kid\":\"hs1\"}", "[1,2]", secret, sizeof(secret) - 1);
	assert_int_equal(verify(t), JWT_E_MALFORMED);
	free(t);
	t = hs_raw("[\"HS256\"]", "{}", secret, sizeof(secret) - 1);
	assert_int_equal(verify(t), JWT_E_MALFORMED);
	free(t);
	t = hs_raw("{\"alg\":\"HS256\",\"kid\":\"hs1\",\"crit\":[\"b64\"]}", "{}", secret,
	           sizeof(secret) - 1);
	assert_int_equal(verify(t), JWT_E_MALFORMED);
	free(t);
	t = hs_raw("{\"alg\":\"HS256\",\"kid\":\"hs1\"}",
	           "{\"sub\":\"a\",\"iss\":\"https://issuer\",\"aud\":\"api\",\"exp\":\"soon\"}",
	           secret, sizeof(secret) - 1);
	assert_int_equal(verify(t), JWT_E_MALFORMED);
	free(t);
	/* duplicate member names are ambiguous: refuse */
	t = hs_raw("{\"alg\":\"HS256\",\"kid\":\"hs1\"}",
	           "{\"sub\":\"a\",\"sub\":\"b\",\"iss\":\"https://issuer\",\"aud\":\"api\"}",
	           secret, sizeof(secret) - 1);
	assert_int_equal(verify(t), JWT_E_MALFORMED);
	free(t);
}

static void test_b64url_round_trip_and_strictness(void **state)
{
	unsigned char in[64], out[64];
	char enc[128];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 37);
	for (n = 0; n < sizeof(in); n++) {
		size_t e = jwt_b64url_encode(enc, in, n);

		assert_int_equal(jwt_b64url_decode(out, enc, e), (long)n);
		assert_memory_equal(in, out, n);
	}
	assert_int_equal(jwt_b64url_decode(out, "QQ==", 4), -1);
	assert_int_equal(jwt_b64url_decode(out, "QR", 2), -1);     /* non-zero trailing bits */
	assert_int_equal(jwt_b64url_decode(out, "Q", 1), -1);
	assert_int_equal(jwt_b64url_decode(out, "a/b+", 4), -1);
	assert_int_equal(jwt_b64url_decode(out, "QQ", 2), 1);
}

static void test_weak_or_broken_keys_are_refused_at_load(void **state)
{
	struct jwt_keyset *k = jwt_keyset_new();
	EVP_PKEY *small = EVP_RSA_gen(1024);
	json_t *jwks = json_object(), *keys = json_array();
	char err[256];

	(void)state;
	json_object_set_new(jwks, "keys", keys);
	json_array_append_new(keys, jwt_jwk_public(small, "small", NULL));
	assert_int_equal(jwt_keyset_add_jwks(k, jwks, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "2048"));
	json_array_clear(keys);
	json_array_append_new(keys, jwt_jwk_secret((const unsigned char *)"short", 5, "s", NULL));
	assert_int_equal(jwt_keyset_add_jwks(k, jwks, err, sizeof(err)), -1);
	json_array_clear(keys);
	json_array_append_new(keys, json_pack("{s:s,s:s,s:s}", "kty", "RSA", "n", "!!", "e", "AQAB"));
	assert_int_equal(jwt_keyset_add_jwks(k, jwks, err, sizeof(err)), -1);
	json_array_clear(keys);
	json_array_append_new(keys, jwt_jwk_public(ec_key, "ec", "RS256"));
	assert_int_equal(jwt_keyset_add_jwks(k, jwks, err, sizeof(err)), -1);
	json_array_clear(keys);
	json_array_append_new(keys, json_pack("{s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-256",
	                                      "x", "AAAA", "y", "AAAA"));
	assert_int_equal(jwt_keyset_add_jwks(k, jwks, err, sizeof(err)), -1);
	json_array_clear(keys);
	/* encryption keys are skipped, not an error */
	json_array_append_new(keys, json_pack("{s:s,s:s,s:s}", "kty", "oct", "use", "enc",
	                                      "k", "AAAA"));
	assert_int_equal(jwt_keyset_add_jwks(k, jwks, err, sizeof(err)), 0);
	assert_int_equal(jwt_keyset_size(k), 0);
	json_decref(jwks);
	EVP_PKEY_free(small);
	jwt_keyset_unref(k);
}

static void test_rfc7515_appendix_a_examples_verify(void **state)
{
	static const struct { const char *jwks, *tok; int alg; } v[] = {
		{ rfc7515_a1_jwks, rfc7515_a1, JWT_HS256 },
		{ rfc7515_a2_jwks, rfc7515_a2, JWT_RS256 },
		{ rfc7515_a3_jwks, rfc7515_a3, JWT_ES256 },
	};
	struct jwt_policy p = { .algs = JWT_ALL_ALGS, .issuer = "joe",
	                        .max_len = JWT_DEF_MAX_TOKEN };
	struct jwt_keyset *k;
	json_t *c = NULL;
	char *bad;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		k = keyset_of(v[i].jwks);
		assert_int_equal(jwt_verify_token(k, &p, v[i].tok, strlen(v[i].tok), RFC7515_NOW, &c),
		                 JWT_OK);
		assert_true(json_is_true(json_object_get(c, "http://example.com/is_root")));
		json_decref(c);
		/* Their exp is in 2011. */
		assert_int_equal(jwt_verify_token(k, &p, v[i].tok, strlen(v[i].tok), NOW, NULL),
		                 JWT_E_EXPIRED);
		/* Only the named algorithm: off the allow-list it is refused. */
		assert_int_equal(jwt_verify_signature(k, JWT_ALL_ALGS & ~JWT_ALG_BIT(v[i].alg),
		                                      v[i].tok, strlen(v[i].tok)), JWT_E_ALG);
		bad = strdup(v[i].tok);
		bad[strlen(bad) - 3] = bad[strlen(bad) - 3] == 'A' ? 'B' : 'A';
		assert_int_equal(jwt_verify_signature(k, JWT_ALL_ALGS, bad, strlen(bad)),
		                 JWT_E_SIGNATURE);
		free(bad);
		jwt_keyset_unref(k);
	}
	/* A.4 signs the plain text "Payload": the signature verifies, the
	 * token is no JWT. */
	k = keyset_of(rfc7515_a4_jwks);
	assert_int_equal(jwt_verify_signature(k, JWT_ALL_ALGS, rfc7515_a4, strlen(rfc7515_a4)),
	                 JWT_OK);
	assert_int_equal(jwt_verify_token(k, &p, rfc7515_a4, strlen(rfc7515_a4), RFC7515_NOW, NULL),
	                 JWT_E_MALFORMED);
	jwt_keyset_unref(k);
	k = keyset_of(rfc7515_a1_jwks);
	assert_int_equal(jwt_verify_signature(k, JWT_ALL_ALGS, rfc7515_a5, strlen(rfc7515_a5)),
	                 JWT_E_MALFORMED);
	jwt_keyset_unref(k);
}

static void test_rfc7520_section4_examples_verify(void **state)
{
	static const char *const toks[] = { rfc7520_4_1, rfc7520_4_2, rfc7520_4_3, rfc7520_4_4 };
	static const int algs[] = { JWT_RS256, JWT_PS384, JWT_ES512, JWT_HS256 };
	struct jwt_keyset *k = keyset_of(rfc7520_jwks);
	char *t;
	size_t i;

	(void)state;
	assert_int_equal(jwt_keyset_size(k), 3);
	for (i = 0; i < 4; i++) {
		assert_int_equal(jwt_verify_signature(k, JWT_ALL_ALGS, toks[i], strlen(toks[i])),
		                 JWT_OK);
		assert_int_equal(jwt_verify_signature(k, JWT_ALG_BIT(algs[i]), toks[i], strlen(toks[i])),
		                 JWT_OK);
		assert_int_equal(jwt_verify_signature(k, JWT_ALL_ALGS & ~JWT_ALG_BIT(algs[i]), toks[i],
		                                      strlen(toks[i])), JWT_E_ALG);
	}
	/* 4.1's PKCS#1 v1.5 signature labelled PS256, 4.2's PSS one labelled
	 * RS384: neither label carries the other's signature. */
	t = relabel(rfc7520_4_1, "PS256", "bilbo.baggins@hobbiton.example");
	assert_int_equal(jwt_verify_signature(k, JWT_ALL_ALGS, t, strlen(t)), JWT_E_SIGNATURE);
	free(t);
	t = relabel(rfc7520_4_2, "RS384", "bilbo.baggins@hobbiton.example");
	assert_int_equal(jwt_verify_signature(k, JWT_ALL_ALGS, t, strlen(t)), JWT_E_SIGNATURE);
	free(t);
	jwt_keyset_unref(k);
}

static void test_rfc8037_ed25519_example_verifies(void **state)
{
	struct jwt_keyset *k = keyset_of(rfc8037_jwks);
	char *bad = strdup(rfc8037_a4);

	(void)state;
	assert_int_equal(jwt_verify_signature(k, JWT_ALG_BIT(JWT_EDDSA), rfc8037_a4,
	                                      strlen(rfc8037_a4)), JWT_OK);
	assert_int_equal(jwt_verify_signature(k, JWT_ALL_ALGS & ~JWT_ALG_BIT(JWT_EDDSA), rfc8037_a4,
	                                      strlen(rfc8037_a4)), JWT_E_ALG);
	bad[strlen(bad) - 5] = bad[strlen(bad) - 5] == 'A' ? 'B' : 'A';
	assert_int_equal(jwt_verify_signature(k, JWT_ALL_ALGS, bad, strlen(bad)), JWT_E_SIGNATURE);
	free(bad);
	jwt_keyset_unref(k);
}

static void test_ps256_384_512_tokens_are_accepted(void **state)
{
	static const char *const algs[] = { "PS256", "PS384", "PS512" };
	size_t i;

	(void)state;
	/* rsa1 (a PEM key without alg) takes any RSA algorithm. */
	for (i = 0; i < 3; i++)
		verify_free(sign_tok(algs[i], rsa_key, "rsa1", claims(NULL)), JWT_OK);
	verify_free(sign_tok("PS256", rsa_key, "ps1", claims(NULL)), JWT_OK);
}

static void test_rs_and_ps_never_verify_as_each_other(void **state)
{
	char *ps, *rs;

	(void)state;
	ps = sign_tok("PS256", rsa_key, "rsa1", claims(NULL));
	rs = mint(JWT_ALG_RS256, rsa_priv, strlen(rsa_priv), "rsa1", claims(NULL));
	assert_int_equal(verify(ps), JWT_OK);
	assert_int_equal(verify(rs), JWT_OK);
	/* Same key, same signing input, the other label: the padding follows
	 * the label, so the signature no longer verifies. */
	verify_free(relabel(ps, "RS256", "rsa1"), JWT_E_SIGNATURE);
	verify_free(relabel(rs, "PS256", "rsa1"), JWT_E_SIGNATURE);
	/* A key labelled RS256 never takes a PS256 token, nor the reverse,
	 * whatever the signature. */
	verify_free(sign_tok("PS256", rsa_key, "rs1", claims(NULL)), JWT_E_ALG);
	verify_free(mint(JWT_ALG_RS256, rsa_priv, strlen(rsa_priv), "ps1", claims(NULL)), JWT_E_ALG);
	/* PS off the allow-list. */
	pol.algs = JWT_ALL_ALGS & ~(JWT_ALG_BIT(JWT_PS256) | JWT_ALG_BIT(JWT_PS384) |
	                            JWT_ALG_BIT(JWT_PS512));
	assert_int_equal(verify(ps), JWT_E_ALG);
	assert_int_equal(verify(rs), JWT_OK);
	pol.algs = JWT_ALL_ALGS;
	free(ps);
	free(rs);
}

static void test_eddsa_ed25519_and_ed448_tokens_are_accepted(void **state)
{
	(void)state;
	verify_free(sign_tok("EdDSA", ed25519_key, "ed1", claims(NULL)), JWT_OK);
	verify_free(sign_tok("EdDSA", ed448_key, "ed448", claims(NULL)), JWT_OK);
	/* Without kid: every OKP key is tried. */
	verify_free(sign_tok("EdDSA", ed448_key, NULL, claims(NULL)), JWT_OK);
	/* An Ed25519 signature under the Ed448 key's kid. */
	verify_free(sign_tok("EdDSA", ed25519_key, "ed448", claims(NULL)), JWT_E_SIGNATURE);
	/* Key type must fit: EdDSA never selects an RSA or EC key, ES256 or
	 * HS256 never an OKP one. */
	verify_free(relabel(rfc8037_a4, "EdDSA", "rsa1"), JWT_E_ALG);
	verify_free(relabel(rfc8037_a4, "ES256", "ed1"), JWT_E_ALG);
	verify_free(hs_raw("{\"alg\":\"HS256\",\"kid\":\"ed1\"}", claims(NULL), secret,
	                   sizeof(secret) - 1), JWT_E_ALG);
	pol.algs = JWT_ALL_ALGS & ~JWT_ALG_BIT(JWT_EDDSA);
	verify_free(sign_tok("EdDSA", ed25519_key, "ed1", claims(NULL)), JWT_E_ALG);
	pol.algs = JWT_ALL_ALGS;
}

/* A JWKS document parsed alone. Returns what jwt_keyset_add_jwks() does. */
static int add_one(const char *jwk_text, char *err, size_t errlen)
{
	struct jwt_keyset *k = jwt_keyset_new();
	char doc[4096];
	json_t *j;
	int r;

	snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", jwk_text);
	j = json_loads(doc, 0, NULL);
	assert_non_null(j);
	r = jwt_keyset_add_jwks(k, j, err, errlen);
	json_decref(j);
	jwt_keyset_unref(k);
	return r;
}

static void test_jwks_parser_okp_keys_and_unknown_members(void **state)
{
	json_t *jwk = jwt_jwk_public(ed25519_key, "e", "EdDSA"), *jwk448;
	char err[256], *text;

	(void)state;
	/* The export round-trips. */
	assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "OKP");
	assert_string_equal(json_string_value(json_object_get(jwk, "crv")), "Ed25519");
	text = json_dumps(jwk, JSON_COMPACT);
	assert_int_equal(add_one(text, err, sizeof(err)), 1);
	free(text);
	jwk448 = jwt_jwk_public(ed448_key, NULL, NULL);
	assert_string_equal(json_string_value(json_object_get(jwk448, "crv")), "Ed448");
	text = json_dumps(jwk448, JSON_COMPACT);
	assert_int_equal(add_one(text, err, sizeof(err)), 1);
	free(text);
	/* Broken OKP material refuses the document. */
	assert_int_equal(add_one("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}",
	                         err, sizeof(err)), -1);
	assert_int_equal(add_one("{\"kty\":\"OKP\",\"crv\":\"Ed25519\"}", err, sizeof(err)), -1);
	assert_int_equal(add_one("{\"kty\":\"OKP\",\"crv\":\"Ed448\","
	                         "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
	                         err, sizeof(err)), -1);
	/* An OKP key labelled for another key type. */
	assert_int_equal(add_one("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"alg\":\"ES256\","
	                         "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
	                         err, sizeof(err)), -1);
	assert_non_null(strstr(err, "key type"));
	/* RFC 7517 section 5: what is not understood is skipped. */
	assert_int_equal(add_one("{\"kty\":\"OKP\",\"crv\":\"X25519\","
	                         "\"x\":\"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo\"}",
	                         err, sizeof(err)), 0);
	assert_int_equal(add_one("{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"AA\",\"y\":\"AA\"}",
	                         err, sizeof(err)), 0);
	assert_int_equal(add_one("{\"kty\":\"PQC\",\"pub\":\"AA\"}", err, sizeof(err)), 0);
	assert_int_equal(add_one("{\"kty\":\"RSA\",\"alg\":\"RSA-OAEP\",\"n\":\"AA\",\"e\":\"AQAB\"}",
	                         err, sizeof(err)), 0);
	/* ... but a key needs its kty, and the set its array. */
	assert_int_equal(add_one("{\"crv\":\"Ed25519\"}", err, sizeof(err)), -1);
	assert_int_equal(add_one("\"text\"", err, sizeof(err)), -1);
	json_decref(jwk);
	json_decref(jwk448);
}

/* Verifies a token made for one check against the keyset k, expecting
 * want, and frees it. */
static void verify_with_free(const struct jwt_keyset *k, char *tok, enum jwt_status want)
{
	assert_int_equal(jwt_verify_token(k, &pol, tok, strlen(tok), NOW, NULL), want);
	free(tok);
}

static void test_rfc9864_ed25519_and_ed448_names(void **state)
{
	struct jwt_keyset *k = jwt_keyset_new();
	json_t *jwks = json_object(), *keys = json_array();
	char err[256], path[] = "/tmp/test_jwt_XXXXXX", *pub448;
	const unsigned base = pol.algs;
	int fd;

	(void)state;
	assert_int_equal(jwt_alg_parse("Ed25519"), JWT_ED25519);
	assert_int_equal(jwt_alg_parse("Ed448"), JWT_ED448);
	assert_int_equal(jwt_alg_parse("ed25519"), -1);
	assert_int_equal(jwt_alg_parse("Ed25519ph"), -1);
	assert_string_equal(jwt_alg_name(JWT_ED25519), "Ed25519");
	assert_string_equal(jwt_alg_name(JWT_ED448), "Ed448");
	/* Allowing EdDSA allows the names that say which EdDSA it is; the
	 * fully-specified names allow nothing else. */
	assert_int_equal(jwt_alg_allows(JWT_EDDSA), JWT_ALG_BIT(JWT_EDDSA) |
	                 JWT_ALG_BIT(JWT_ED25519) | JWT_ALG_BIT(JWT_ED448));
	assert_int_equal(jwt_alg_allows(JWT_ED25519), JWT_ALG_BIT(JWT_ED25519));
	assert_int_equal(jwt_alg_allows(JWT_ED448), JWT_ALG_BIT(JWT_ED448));
	assert_int_equal(jwt_alg_allows(JWT_RS256), JWT_ALG_BIT(JWT_RS256));

	json_object_set_new(jwks, "keys", keys);
	json_array_append_new(keys, jwt_jwk_public(ed25519_key, "e25", "Ed25519"));
	json_array_append_new(keys, jwt_jwk_public(ed25519_key, "e25-eddsa", "EdDSA"));
	json_array_append_new(keys, jwt_jwk_public(ed25519_key, "e25-any", NULL));
	json_array_append_new(keys, jwt_jwk_public(ed448_key, "e448", "Ed448"));
	json_array_append_new(keys, jwt_jwk_public(ed448_key, "e448-any", NULL));
	json_array_append_new(keys, jwt_jwk_public(rsa_key, "rsa", NULL));
	assert_int_equal(jwt_keyset_add_jwks(k, jwks, err, sizeof(err)), 6);
	json_decref(jwks);

	/* Ed25519 tokens: any Ed25519 key whose alg is Ed25519, EdDSA or none. */
	verify_with_free(k, sign_tok("Ed25519", ed25519_key, "e25", claims(NULL)), JWT_OK);
	verify_with_free(k, sign_tok("Ed25519", ed25519_key, "e25-eddsa", claims(NULL)), JWT_OK);
	verify_with_free(k, sign_tok("Ed25519", ed25519_key, "e25-any", claims(NULL)), JWT_OK);
	verify_with_free(k, sign_tok("Ed25519", ed25519_key, NULL, claims(NULL)), JWT_OK);
	verify_with_free(k, sign_tok("Ed448", ed448_key, "e448", claims(NULL)), JWT_OK);
	verify_with_free(k, sign_tok("Ed448", ed448_key, "e448-any", claims(NULL)), JWT_OK);
	verify_with_free(k, sign_tok("Ed448", ed448_key, NULL, claims(NULL)), JWT_OK);
	/* The polymorphic label keeps working with every Ed key, those pinned
	 * to their own curve's name included (the same operation on them). */
	verify_with_free(k, sign_tok("EdDSA", ed25519_key, "e25", claims(NULL)), JWT_OK);
	verify_with_free(k, sign_tok("EdDSA", ed448_key, "e448", claims(NULL)), JWT_OK);
	verify_with_free(k, sign_tok("EdDSA", ed448_key, "e448-any", claims(NULL)), JWT_OK);
	/* No confusion: a fully-specified label never selects a key of the
	 * other curve, whatever the signature, nor an RSA key; other labels
	 * never select an Ed key. */
	verify_with_free(k, sign_tok("Ed25519", ed25519_key, "e448", claims(NULL)), JWT_E_ALG);
	verify_with_free(k, sign_tok("Ed25519", ed25519_key, "e448-any", claims(NULL)), JWT_E_ALG);
	verify_with_free(k, sign_tok("Ed448", ed448_key, "e25-eddsa", claims(NULL)), JWT_E_ALG);
	verify_with_free(k, sign_tok("Ed448", ed448_key, "e25-any", claims(NULL)), JWT_E_ALG);
	verify_with_free(k, relabel(rfc8037_a4, "Ed25519", "rsa"), JWT_E_ALG);
	verify_with_free(k, relabel(rfc8037_a4, "ES256", "e25"), JWT_E_ALG);
	verify_with_free(k, relabel(rfc8037_a4, "RS256", "e25-any"), JWT_E_ALG);
	/* An Ed448 signature labelled Ed25519 without kid: only the Ed25519
	 * keys are tried, and it fails there. */
	{
		char *t = sign_tok("Ed448", ed448_key, NULL, claims(NULL));
		char *r = relabel(t, "Ed25519", "e25-any");

		verify_with_free(k, r, JWT_E_SIGNATURE);
		free(t);
	}
	/* An Ed25519 signature under an Ed448 key labelled EdDSA. */
	verify_with_free(k, sign_tok("EdDSA", ed25519_key, "e448-any", claims(NULL)),
	                 JWT_E_SIGNATURE);

	/* The allow-list: EdDSA as the agent expands it takes all three
	 * labels; Ed25519 alone refuses EdDSA and Ed448 labels. */
	pol.algs = jwt_alg_allows(JWT_EDDSA);
	verify_with_free(k, sign_tok("Ed25519", ed25519_key, "e25", claims(NULL)), JWT_OK);
	verify_with_free(k, sign_tok("Ed448", ed448_key, "e448", claims(NULL)), JWT_OK);
	verify_with_free(k, sign_tok("EdDSA", ed25519_key, "e25", claims(NULL)), JWT_OK);
	pol.algs = JWT_ALG_BIT(JWT_ED25519);
	verify_with_free(k, sign_tok("Ed25519", ed25519_key, "e25", claims(NULL)), JWT_OK);
	verify_with_free(k, sign_tok("EdDSA", ed25519_key, "e25", claims(NULL)), JWT_E_ALG);
	verify_with_free(k, sign_tok("Ed448", ed448_key, "e448", claims(NULL)), JWT_E_ALG);
	pol.algs = JWT_ALG_BIT(JWT_ED448);
	verify_with_free(k, sign_tok("Ed25519", ed25519_key, "e25", claims(NULL)), JWT_E_ALG);
	pol.algs = base;
	jwt_keyset_unref(k);

	/* A key pinned to the other curve's name is broken: the document is
	 * refused, as for an EC key whose alg names another curve. */
	{
		json_t *j25 = jwt_jwk_public(ed25519_key, "x", "Ed448");
		json_t *j448 = jwt_jwk_public(ed448_key, "y", "Ed25519");
		char *t25 = json_dumps(j25, JSON_COMPACT), *t448 = json_dumps(j448, JSON_COMPACT);

		assert_int_equal(add_one(t25, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "does not fit its curve"));
		assert_int_equal(add_one(t448, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "does not fit its curve"));
		free(t25);
		free(t448);
		json_decref(j25);
		json_decref(j448);
	}
	assert_int_equal(add_one("{\"kty\":\"RSA\",\"alg\":\"Ed25519\",\"n\":\"AA\",\"e\":\"AQAB\"}",
	                         err, sizeof(err)), -1);
	/* The same for a PEM key given with an alg. */
	pub448 = pem(ed448_key, 0);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, pub448, strlen(pub448)), (ssize_t)strlen(pub448));
	close(fd);
	k = jwt_keyset_new();
	assert_int_equal(jwt_keyset_add_pem_file(k, "p", "Ed25519", path, err, sizeof(err)), -1);
	assert_int_equal(jwt_keyset_add_pem_file(k, "p", "Ed448", path, err, sizeof(err)), 0);
	verify_with_free(k, sign_tok("Ed448", ed448_key, "p", claims(NULL)), JWT_OK);
	verify_with_free(k, sign_tok("Ed25519", ed25519_key, "p", claims(NULL)), JWT_E_ALG);
	jwt_keyset_unref(k);
	unlink(path);
	free(pub448);
}

static void test_bench_verifications_per_second(void **state)
{
	static const struct { jwt_alg_t alg; const char *kid; int ours; } algs[] = {
		{ JWT_ALG_HS256, "hs1", JWT_HS256 },
		{ JWT_ALG_RS256, "rsa1", JWT_RS256 },
		{ JWT_ALG_ES256, "ec1", JWT_ES256 },
		{ JWT_ALG_NONE, "rsa1", JWT_PS256 },
		{ JWT_ALG_NONE, "ed1", JWT_EDDSA },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		const char *key = algs[i].alg == JWT_ALG_HS256 ? (const char *)secret :
		                  algs[i].alg == JWT_ALG_RS256 ? rsa_priv : ec_priv;
		size_t klen = algs[i].alg == JWT_ALG_HS256 ? sizeof(secret) - 1 : strlen(key);
		char *t;
		struct timespec a, b;
		double s;
		int n = 0;

		if (algs[i].alg == JWT_ALG_NONE)
			t = sign_tok(jwt_alg_name((enum jwt_sig_alg)algs[i].ours),
			             algs[i].ours == JWT_EDDSA ? ed25519_key : rsa_key, algs[i].kid,
			             claims(NULL));
		else
			t = mint(algs[i].alg, key, klen, algs[i].kid, claims(NULL));
		clock_gettime(CLOCK_MONOTONIC, &a);
		do {
			assert_int_equal(jwt_verify_token(ks, &pol, t, strlen(t), NOW, NULL), JWT_OK);
			n++;
			clock_gettime(CLOCK_MONOTONIC, &b);
			s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
		} while (s < 0.3);
		printf("# bench: %s %.0f verifications/s (%.1f us each)\n",
		       jwt_alg_name((enum jwt_sig_alg)algs[i].ours), n / s, s / n * 1e6);
		free(t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_hs256_rs256_es256_es384_are_accepted),
		cmocka_unit_test(test_claims_are_returned),
		cmocka_unit_test(test_expired_token_is_refused_after_leeway),
		cmocka_unit_test(test_exp_at_int64_max_does_not_overflow),
		cmocka_unit_test(test_missing_exp_is_refused_when_required),
		cmocka_unit_test(test_nbf_or_iat_in_the_future_is_not_yet_valid),
		cmocka_unit_test(test_issuer_and_audience_are_checked),
		cmocka_unit_test(test_unknown_kid_is_refused),
		cmocka_unit_test(test_alg_none_is_always_refused),
		cmocka_unit_test(test_rs256_key_never_verifies_an_hs256_token),
		cmocka_unit_test(test_algorithm_outside_the_allow_list_is_refused),
		cmocka_unit_test(test_malformed_tokens_are_refused),
		cmocka_unit_test(test_tampered_payload_fails_the_signature),
		cmocka_unit_test(test_oversized_token_is_refused_before_parsing),
		cmocka_unit_test(test_non_json_payload_and_header_are_malformed),
		cmocka_unit_test(test_b64url_round_trip_and_strictness),
		cmocka_unit_test(test_weak_or_broken_keys_are_refused_at_load),
		cmocka_unit_test(test_rfc7515_appendix_a_examples_verify),
		cmocka_unit_test(test_rfc7520_section4_examples_verify),
		cmocka_unit_test(test_rfc8037_ed25519_example_verifies),
		cmocka_unit_test(test_ps256_384_512_tokens_are_accepted),
		cmocka_unit_test(test_rs_and_ps_never_verify_as_each_other),
		cmocka_unit_test(test_eddsa_ed25519_and_ed448_tokens_are_accepted),
		cmocka_unit_test(test_jwks_parser_okp_keys_and_unknown_members),
		cmocka_unit_test(test_rfc9864_ed25519_and_ed448_names),
		cmocka_unit_test(test_bench_verifications_per_second),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
