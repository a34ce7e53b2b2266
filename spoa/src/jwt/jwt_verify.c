/*
 * JWT verification: strict parsing, key selection by kid and type, then the
 * signature, then the claims. See jwt.h for why this does not hand the
 * token to libjwt.
 */
#include "jwt_verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#define HS_MIN_SECRET   32      /* RFC 7518 3.2: at least the hash size of HS256 */
#define RSA_MIN_BITS    2048
#define KEYFILE_MAX     (64 * 1024)

struct jwt_key {
	char kid[JWT_KID_MAX];
	int has_kid;
	enum jwt_kty kty;
	int alg;                       /* -1: any algorithm of the key's type */
	int bits;                      /* EC curve size: 256, 384, 521; OKP: 25519, 448 */
	EVP_PKEY *pkey;                /* RSA, EC, OKP */
	unsigned char *secret;         /* oct */
	size_t secret_len;
};

struct jwt_keyset {
	int refs;
	size_t n;
	struct jwt_key keys[JWT_MAX_KEYS];
};

static const char *const alg_names[JWT_NALGS] = {
	"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
	"PS256", "PS384", "PS512", "EdDSA", "Ed25519", "Ed448",
};

int jwt_alg_parse(const char *s)
{
	int i;

	for (i = 0; i < JWT_NALGS; i++)
		if (strcmp(s, alg_names[i]) == 0)
			return i;
	return -1;
}

unsigned jwt_alg_allows(enum jwt_sig_alg a)
{
	if (a == JWT_EDDSA)
		return JWT_ALG_BIT(JWT_EDDSA) | JWT_ALG_BIT(JWT_ED25519) | JWT_ALG_BIT(JWT_ED448);
	return (unsigned)a < JWT_NALGS ? JWT_ALG_BIT(a) : 0;
}

const char *jwt_alg_name(enum jwt_sig_alg a)
{
	return (unsigned)a < JWT_NALGS ? alg_names[a] : "?";
}

const char *jwt_status_str(enum jwt_status st)
{
	switch (st) {
	case JWT_OK:              return "ok";
	case JWT_E_MALFORMED:     return "malformed";
	case JWT_E_TOO_LONG:      return "too long";
	case JWT_E_ALG:           return "algorithm not allowed for this key";
	case JWT_E_KID:           return "unknown key id";
	case JWT_E_SIGNATURE:     return "bad signature";
	case JWT_E_EXPIRED:       return "expired";
	case JWT_E_NOT_YET_VALID: return "not yet valid";
	case JWT_E_ISSUER:        return "issuer mismatch";
	case JWT_E_AUDIENCE:      return "audience mismatch";
	case JWT_E_NOMEM:         return "out of memory";
	case JWT_E_EXP_MISSING:   return "no exp claim";
	}
	return "?";
}

static enum jwt_kty alg_kty(enum jwt_sig_alg a)
{
	if (a <= JWT_HS512)
		return JWT_KTY_OCT;
	if (a <= JWT_RS512)
		return JWT_KTY_RSA;
	if (a <= JWT_ES512)
		return JWT_KTY_EC;
	if (a <= JWT_PS512)
		return JWT_KTY_RSA;
	return JWT_KTY_OKP;
}

static int alg_is_pss(enum jwt_sig_alg a)
{
	return a >= JWT_PS256 && a <= JWT_PS512;
}

/* The hash of an HS, RS, ES or PS algorithm; EdDSA hashes inside the
 * signature scheme and has none. */
static const EVP_MD *alg_md(enum jwt_sig_alg a)
{
	if (alg_kty(a) == JWT_KTY_OKP)
		return NULL;
	switch (a % 3) {
	case 0:  return EVP_sha256();
	case 1:  return EVP_sha384();
	default: return EVP_sha512();
	}
}

static int alg_ec_bits(enum jwt_sig_alg a)
{
	switch (a) {
	case JWT_ES256: return 256;
	case JWT_ES384: return 384;
	case JWT_ES512: return 521;
	default:        return 0;
	}
}

/* The curve a fully-specified EdDSA name fixes (k->bits of OKP keys); 0
 * for the polymorphic EdDSA, whose curve is the key's. */
static int alg_okp_bits(enum jwt_sig_alg a)
{
	switch (a) {
	case JWT_ED25519: return 25519;
	case JWT_ED448:   return 448;
	default:          return 0;
	}
}

/* ---- base64url ---- */

static const char b64url_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 0..63, or 0xff for a byte outside the URL-safe alphabet. */
static unsigned char b64url_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (unsigned char)(c - 'A');
	if (c >= 'a' && c <= 'z')
		return (unsigned char)(c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (unsigned char)(c - '0' + 52);
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return 0xff;
}

size_t jwt_b64url_encode(char *dst, const unsigned char *src, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];

		dst[o++] = b64url_chars[v >> 18 & 63];
		dst[o++] = b64url_chars[v >> 12 & 63];
		dst[o++] = b64url_chars[v >> 6 & 63];
		dst[o++] = b64url_chars[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)src[i] << 16;

		dst[o++] = b64url_chars[v >> 18 & 63];
		dst[o++] = b64url_chars[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;

		dst[o++] = b64url_chars[v >> 18 & 63];
		dst[o++] = b64url_chars[v >> 12 & 63];
		dst[o++] = b64url_chars[v >> 6 & 63];
	}
	dst[o] = '\0';
	return o;
}

long jwt_b64url_decode(unsigned char *dst, const char *src, size_t n)
{
	size_t i, o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	if (n % 4 == 1)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned char v = b64url_val((unsigned char)src[i]);

		if (v == 0xff)
			return -1;
		acc = (acc << 6) | v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			dst[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Leftover bits must be zero: one encoding per byte string. */
	if (acc != 0)
		return -1;
	return (long)o;
}

/* ---- keysets ---- */

struct jwt_keyset *jwt_keyset_new(void)
{
	struct jwt_keyset *ks = calloc(1, sizeof(*ks));

	if (ks)
		ks->refs = 1;
	return ks;
}

void jwt_keyset_ref(struct jwt_keyset *ks)
{
	__atomic_add_fetch(&ks->refs, 1, __ATOMIC_RELAXED);
}

void jwt_keyset_unref(struct jwt_keyset *ks)
{
	size_t i;

	if (!ks || __atomic_sub_fetch(&ks->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (i = 0; i < ks->n; i++) {
		EVP_PKEY_free(ks->keys[i].pkey);
		if (ks->keys[i].secret)
			OPENSSL_clear_free(ks->keys[i].secret, ks->keys[i].secret_len);
	}
	free(ks);
}

size_t jwt_keyset_size(const struct jwt_keyset *ks)
{
	return ks->n;
}

/* Takes ownership of pkey/secret on success and on failure. */
static int keyset_push(struct jwt_keyset *ks, const char *kid, int alg, enum jwt_kty kty,
                       EVP_PKEY *pkey, unsigned char *secret, size_t slen,
                       char *err, size_t errlen)
{
	struct jwt_key *k;

	if (ks->n >= JWT_MAX_KEYS) {
		snprintf(err, errlen, "more than %d keys", JWT_MAX_KEYS);
		goto fail;
	}
	if (kid && strlen(kid) >= JWT_KID_MAX) {
		snprintf(err, errlen, "kid longer than %d bytes", JWT_KID_MAX - 1);
		goto fail;
	}
	if (alg >= 0 && alg_kty((enum jwt_sig_alg)alg) != kty) {
		snprintf(err, errlen, "key \"%s\": alg %s does not fit its key type",
		         kid ? kid : "", jwt_alg_name((enum jwt_sig_alg)alg));
		goto fail;
	}
	k = &ks->keys[ks->n];
	memset(k, 0, sizeof(*k));
	if (kid) {
		snprintf(k->kid, sizeof(k->kid), "%s", kid);
		k->has_kid = 1;
	}
	k->kty = kty;
	k->alg = alg;
	k->pkey = pkey;
	k->secret = secret;
	k->secret_len = slen;
	if (kty == JWT_KTY_RSA && EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS) {
		snprintf(err, errlen, "key \"%s\": RSA keys below %d bits are refused",
		         kid ? kid : "", RSA_MIN_BITS);
		goto fail;
	}
	if (kty == JWT_KTY_OKP) {
		if (EVP_PKEY_is_a(pkey, "ED25519")) {
			k->bits = 25519;
		} else if (EVP_PKEY_is_a(pkey, "ED448")) {
			k->bits = 448;
		} else {
			snprintf(err, errlen, "key \"%s\": OKP curve must be Ed25519 or Ed448",
			         kid ? kid : "");
			goto fail;
		}
		/* alg Ed448 on an Ed25519 key (or the reverse) is a broken key. */
		if (alg >= 0 && alg_okp_bits((enum jwt_sig_alg)alg) &&
		    alg_okp_bits((enum jwt_sig_alg)alg) != k->bits) {
			snprintf(err, errlen, "key \"%s\": alg %s does not fit its curve",
			         kid ? kid : "", jwt_alg_name((enum jwt_sig_alg)alg));
			goto fail;
		}
	}
	if (kty == JWT_KTY_EC) {
		k->bits = EVP_PKEY_get_bits(pkey);
		if (k->bits != 256 && k->bits != 384 && k->bits != 521) {
			snprintf(err, errlen, "key \"%s\": EC curve must be P-256, P-384 or P-521",
			         kid ? kid : "");
			goto fail;
		}
		if (alg >= 0 && alg_ec_bits((enum jwt_sig_alg)alg) != k->bits) {
			snprintf(err, errlen, "key \"%s\": alg %s does not fit its curve",
			         kid ? kid : "", jwt_alg_name((enum jwt_sig_alg)alg));
			goto fail;
		}
	}
	if (kty == JWT_KTY_OCT && slen < HS_MIN_SECRET) {
		snprintf(err, errlen, "key \"%s\": HMAC secrets below %d bytes are refused",
		         kid ? kid : "", HS_MIN_SECRET);
		goto fail;
	}
	ks->n++;
	return 0;
 fail:
	EVP_PKEY_free(pkey);
	if (secret)
		OPENSSL_clear_free(secret, slen);
	return -1;
}

int jwt_keyset_add_secret(struct jwt_keyset *ks, const char *kid, const char *alg,
                          const unsigned char *secret, size_t len)
{
	char err[128];
	unsigned char *copy;
	int a = -1;

	if (alg && (a = jwt_alg_parse(alg)) < 0)
		return -1;
	copy = OPENSSL_malloc(len ? len : 1);
	if (!copy)
		return -1;
	memcpy(copy, secret, len);
	return keyset_push(ks, kid, a, JWT_KTY_OCT, NULL, copy, len, err, sizeof(err));
}

/* Decodes a base64url JWK member into a fresh buffer. Returns its length
 * or -1. */
static long jwk_b64(json_t *jwk, const char *name, unsigned char **out)
{
	const char *s = json_string_value(json_object_get(jwk, name));
	size_t n;
	long r;

	*out = NULL;
	if (!s)
		return -1;
	n = strlen(s);
	if (n > KEYFILE_MAX)
		return -1;
	*out = OPENSSL_malloc(n * 3 / 4 + 1);
	if (!*out)
		return -1;
	r = jwt_b64url_decode(*out, s, n);
	if (r <= 0) {
		OPENSSL_free(*out);
		*out = NULL;
		return -1;
	}
	return r;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pkey = NULL;

	if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1)
		if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
			pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static EVP_PKEY *jwk_rsa(json_t *jwk)
{
	unsigned char *n = NULL, *e = NULL;
	long nlen = jwk_b64(jwk, "n", &n), elen = jwk_b64(jwk, "e", &e);
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;

	if (nlen < 0 || elen < 0)
		goto out;
	bn = BN_bin2bn(n, (int)nlen, NULL);
	be = BN_bin2bn(e, (int)elen, NULL);
	bld = OSSL_PARAM_BLD_new();
	if (!bn || !be || !bld ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
		goto out;
	pkey = pkey_fromdata("RSA", bld);
 out:
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	OPENSSL_free(n);
	OPENSSL_free(e);
	return pkey;
}

static EVP_PKEY *jwk_ec(json_t *jwk)
{
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	unsigned char *x = NULL, *y = NULL, pub[1 + 2 * 66];
	long xlen = jwk_b64(jwk, "x", &x), ylen = jwk_b64(jwk, "y", &y);
	const char *group;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;
	long size;

	if (!crv || xlen < 0 || ylen < 0)
		goto out;
	if (strcmp(crv, "P-256") == 0) {
		group = "prime256v1";
		size = 32;
	} else if (strcmp(crv, "P-384") == 0) {
		group = "secp384r1";
		size = 48;
	} else if (strcmp(crv, "P-521") == 0) {
		group = "secp521r1";
		size = 66;
	} else {
		goto out;
	}
	if (xlen != size || ylen != size)
		goto out;
	pub[0] = 0x04;   /* uncompressed point */
	memcpy(pub + 1, x, (size_t)size);
	memcpy(pub + 1 + size, y, (size_t)size);
	bld = OSSL_PARAM_BLD_new();
	if (!bld ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
	                                      (size_t)(1 + 2 * size)))
		goto out;
	pkey = pkey_fromdata("EC", bld);
 out:
	OSSL_PARAM_BLD_free(bld);
	OPENSSL_free(x);
	OPENSSL_free(y);
	return pkey;
}

/* RFC 8037: the public key is the raw x of the curve. Returns NULL for a
 * curve this verifier does not sign with (X25519, X448 are for ECDH). */
static EVP_PKEY *jwk_okp(json_t *jwk, const char *crv)
{
	unsigned char *x = NULL;
	long xlen = jwk_b64(jwk, "x", &x);
	EVP_PKEY *pkey = NULL;

	if (xlen == 32 && strcmp(crv, "Ed25519") == 0)
		pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, (size_t)xlen);
	else if (xlen == 57 && strcmp(crv, "Ed448") == 0)
		pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED448, NULL, x, (size_t)xlen);
	OPENSSL_free(x);
	return pkey;
}

/* RFC 7517 section 5: a key of a type, curve or algorithm not understood
 * here is ignored, not an error. Returns 1 when jwk is one of those. */
static int jwk_unsupported(const char *kty, const char *crv, const char *alg)
{
	if (alg && jwt_alg_parse(alg) < 0)
		return 1;
	if (strcmp(kty, "RSA") == 0 || strcmp(kty, "oct") == 0)
		return 0;
	if (strcmp(kty, "EC") == 0)
		return crv && strcmp(crv, "P-256") && strcmp(crv, "P-384") && strcmp(crv, "P-521");
	if (strcmp(kty, "OKP") == 0)
		return !crv || (strcmp(crv, "Ed25519") && strcmp(crv, "Ed448"));
	return 1;
}

int jwt_keyset_add_jwks(struct jwt_keyset *ks, json_t *jwks, char *err, size_t errlen)
{
	json_t *keys = json_object_get(jwks, "keys"), *jwk;
	size_t i;
	int added = 0;

	if (!json_is_array(keys)) {
		snprintf(err, errlen, "a JWKS needs a \"keys\" array");
		return -1;
	}
	json_array_foreach(keys, i, jwk) {
		const char *kty = json_string_value(json_object_get(jwk, "kty"));
		const char *kid = json_string_value(json_object_get(jwk, "kid"));
		const char *use = json_string_value(json_object_get(jwk, "use"));
		const char *alg = json_string_value(json_object_get(jwk, "alg"));
		const char *crv = json_string_value(json_object_get(jwk, "crv"));
		EVP_PKEY *pkey = NULL;
		unsigned char *k = NULL;
		long klen = 0;
		int a = -1;
		enum jwt_kty t;

		if (!json_is_object(jwk) || !kty) {
			snprintf(err, errlen, "keys[%zu]: not a JWK with \"kty\"", i);
			return -1;
		}
		if (use && strcmp(use, "sig") != 0)
			continue;
		if (jwk_unsupported(kty, crv, alg))
			continue;
		if (alg)
			a = jwt_alg_parse(alg);
		if (strcmp(kty, "RSA") == 0) {
			t = JWT_KTY_RSA;
			pkey = jwk_rsa(jwk);
		} else if (strcmp(kty, "EC") == 0) {
			t = JWT_KTY_EC;
			pkey = jwk_ec(jwk);
		} else if (strcmp(kty, "OKP") == 0) {
			t = JWT_KTY_OKP;
			pkey = jwk_okp(jwk, crv);
		} else {
			t = JWT_KTY_OCT;
			klen = jwk_b64(jwk, "k", &k);
		}
		if (t == JWT_KTY_OCT ? klen < 0 : !pkey) {
			snprintf(err, errlen, "keys[%zu] (%s): invalid %s key material", i,
			         kid ? kid : "no kid", kty);
			return -1;
		}
		if (keyset_push(ks, kid, a, t, pkey, k, klen > 0 ? (size_t)klen : 0,
		                err, errlen) < 0)
			return -1;
		added++;
	}
	return added;
}

int jwt_keyset_add_jwks_file(struct jwt_keyset *ks, const char *path, char *err,
                             size_t errlen)
{
	json_error_t jerr;
	json_t *root;
	char msg[256];
	int r;

	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(err, errlen, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
		return -1;
	}
	r = jwt_keyset_add_jwks(ks, root, msg, sizeof(msg));
	json_decref(root);
	if (r < 0)
		snprintf(err, errlen, "%s: %s", path, msg);
	return r;
}

static long read_file(const char *path, unsigned char **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	size_t n;

	*out = NULL;
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %m", path);
		return -1;
	}
	buf = OPENSSL_malloc(KEYFILE_MAX + 1);
	if (!buf) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	n = fread(buf, 1, KEYFILE_MAX + 1, f);
	fclose(f);
	if (n > KEYFILE_MAX) {
		OPENSSL_clear_free(buf, KEYFILE_MAX + 1);
		snprintf(err, errlen, "%s: larger than %d bytes", path, KEYFILE_MAX);
		return -1;
	}
	*out = buf;
	return (long)n;
}

int jwt_keyset_add_pem_file(struct jwt_keyset *ks, const char *kid, const char *alg,
                            const char *path, char *err, size_t errlen)
{
	unsigned char *buf;
	long n;
	int a = -1;
	EVP_PKEY *pkey;
	BIO *bio;
	enum jwt_kty t;

	if (alg && (a = jwt_alg_parse(alg)) < 0) {
		snprintf(err, errlen, "%s: alg \"%s\" is not supported", path, alg);
		return -1;
	}
	n = read_file(path, &buf, err, errlen);
	if (n < 0)
		return -1;
	if (a >= 0 && alg_kty((enum jwt_sig_alg)a) == JWT_KTY_OCT) {
		/* A raw secret; a trailing newline from an editor is not part of it. */
		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
			n--;
		return keyset_push(ks, kid, a, JWT_KTY_OCT, NULL, buf, (size_t)n, err, errlen);
	}
	bio = BIO_new_mem_buf(buf, (int)n);
	pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	OPENSSL_clear_free(buf, KEYFILE_MAX + 1);
	if (!pkey) {
		snprintf(err, errlen, "%s: not a PEM public key", path);
		return -1;
	}
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		t = JWT_KTY_RSA;
	} else if (EVP_PKEY_is_a(pkey, "EC")) {
		t = JWT_KTY_EC;
	} else if (EVP_PKEY_is_a(pkey, "ED25519") || EVP_PKEY_is_a(pkey, "ED448")) {
		t = JWT_KTY_OKP;
	} else {
		EVP_PKEY_free(pkey);
		snprintf(err, errlen, "%s: only RSA, EC, Ed25519 and Ed448 public keys are supported",
		         path);
		return -1;
	}
	if (keyset_push(ks, kid, a, t, pkey, NULL, 0, err, errlen) < 0)
		return -1;
	return 0;
}

/* ---- verification ---- */

/* An EdDSA-family label a on an OKP key k. Ed25519 and Ed448 (RFC 9864)
 * take only a key of their curve; EdDSA takes the key's curve, whatever it
 * is. A key pinned to EdDSA or to its own curve's name takes both the
 * polymorphic and the fully-specified label: they are the same operation
 * on that key. (A key pinned to the other curve's name was refused at
 * load.) */
static int okp_fits(const struct jwt_key *k, enum jwt_sig_alg a)
{
	int want = alg_okp_bits(a);

	if (want && k->bits != want)
		return 0;
	return k->alg < 0 || k->alg == JWT_EDDSA ||
	       alg_okp_bits((enum jwt_sig_alg)k->alg) == k->bits;
}

static int key_fits(const struct jwt_key *k, enum jwt_sig_alg a)
{
	if (k->kty != alg_kty(a))
		return 0;
	if (k->kty == JWT_KTY_OKP)
		return okp_fits(k, a);
	if (k->alg >= 0 && k->alg != (int)a)
		return 0;
	if (k->kty == JWT_KTY_EC && k->bits != alg_ec_bits(a))
		return 0;
	return 1;
}

/* JWS ECDSA signatures are R || S of the curve size; OpenSSL wants DER. */
static int ecdsa_raw_to_der(const unsigned char *sig, size_t len, unsigned char **der)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, (int)(len / 2), NULL);
	BIGNUM *s = BN_bin2bn(sig + len / 2, (int)(len / 2), NULL);
	int n = -1;

	*der = NULL;
	if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(es);
		return -1;
	}
	n = i2d_ECDSA_SIG(es, der);
	ECDSA_SIG_free(es);
	return n;
}

/* Returns 1 when sig is a valid signature of msg by k with a. */
static int verify_sig(const struct jwt_key *k, enum jwt_sig_alg a, const char *msg,
                      size_t mlen, const unsigned char *sig, size_t slen)
{
	const EVP_MD *md = alg_md(a);
	unsigned char mac[EVP_MAX_MD_SIZE], *der = NULL;
	unsigned maclen = 0;
	EVP_MD_CTX *ctx;
	EVP_PKEY_CTX *pctx = NULL;
	int ok = 0, dlen;

	if (k->kty == JWT_KTY_OCT) {
		if (!HMAC(md, k->secret, (int)k->secret_len, (const unsigned char *)msg, mlen,
		          mac, &maclen))
			return 0;
		return slen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return 0;
	if (k->kty == JWT_KTY_EC) {
		if (slen != (size_t)((k->bits + 7) / 8) * 2)
			goto out;
		dlen = ecdsa_raw_to_der(sig, slen, &der);
		if (dlen < 0)
			goto out;
		sig = der;
		slen = (size_t)dlen;
	}
	if (k->kty == JWT_KTY_OKP && slen != (k->bits == 448 ? 114u : 64u))
		goto out;
	if (EVP_DigestVerifyInit(ctx, &pctx, md, NULL, k->pkey) != 1)
		goto out;
	/* RFC 7518 3.5: MGF1 with the same hash, salt as long as the hash.
	 * RS tokens keep PKCS#1 v1.5, so one label never passes as the other. */
	if (alg_is_pss(a) &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
		goto out;
	if (EVP_DigestVerify(ctx, sig, slen, (const unsigned char *)msg, mlen) == 1)
		ok = 1;
 out:
	OPENSSL_free(der);
	EVP_MD_CTX_free(ctx);
	return ok;
}

static json_t *decode_json(const char *b64, size_t n, unsigned char *scratch)
{
	long len = jwt_b64url_decode(scratch, b64, n);
	json_t *j;

	if (len <= 0)
		return NULL;
	j = json_loadb((const char *)scratch, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
	if (j && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* A NumericDate claim. Returns 1 with *out set, 0 when absent, -1 when it
 * is not a number. */
static int numeric_date(json_t *claims, const char *name, int64_t *out)
{
	json_t *v = json_object_get(claims, name);
	double d;

	if (!v)
		return 0;
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 1;
	}
	if (!json_is_real(v))
		return -1;
	d = json_real_value(v);
	if (!(d > -1e15 && d < 1e15))
		return -1;
	*out = (int64_t)d;
	return 1;
}

static enum jwt_status check_claims(const struct jwt_policy *p, json_t *c, int64_t now)
{
	int64_t t;
	json_t *aud, *v;
	const char *iss;
	size_t i, j;
	int r;

	if ((r = numeric_date(c, "exp", &t)) < 0)
		return JWT_E_MALFORMED;
	if (!r && p->require_exp)
		return JWT_E_EXP_MISSING;
	/* exp + leeway past INT64_MAX is a token that never expires, not a
	 * wrapped (negative, so expired) date. */
	if (r && !__builtin_add_overflow(t, p->leeway, &t) && now >= t)
		return JWT_E_EXPIRED;
	if ((r = numeric_date(c, "nbf", &t)) < 0)
		return JWT_E_MALFORMED;
	if (r && now + p->leeway < t)
		return JWT_E_NOT_YET_VALID;
	if ((r = numeric_date(c, "iat", &t)) < 0)
		return JWT_E_MALFORMED;
	if (r && now + p->leeway < t)
		return JWT_E_NOT_YET_VALID;
	if (p->issuer && *p->issuer) {
		iss = json_string_value(json_object_get(c, "iss"));
		if (!iss || strcmp(iss, p->issuer) != 0)
			return JWT_E_ISSUER;
	}
	if (p->naud) {
		aud = json_object_get(c, "aud");
		if (json_is_string(aud)) {
			for (j = 0; j < p->naud; j++)
				if (strcmp(json_string_value(aud), p->audiences[j]) == 0)
					return JWT_OK;
		} else if (json_is_array(aud)) {
			json_array_foreach(aud, i, v)
				for (j = 0; json_is_string(v) && j < p->naud; j++)
					if (strcmp(json_string_value(v), p->audiences[j]) == 0)
						return JWT_OK;
		}
		return JWT_E_AUDIENCE;
	}
	return JWT_OK;
}

/* A compact JWS split at its dots, with the header parsed and checked. */
struct jws {
	const char *d1, *d2;           /* the two dots */
	json_t *hdr;
	int alg;
	const char *kid;               /* borrowed from hdr, NULL when absent */
};

/* Splits tok, decodes its header, checks alg against the mask algs and the
 * signature against ks. scratch holds len * 3 / 4 + 4 bytes. On JWT_OK
 * j->hdr is set and the caller json_decref()s it; on error it is NULL. */
static enum jwt_status jws_check(const struct jwt_keyset *ks, unsigned algs, const char *tok,
                                 size_t len, unsigned char *scratch, struct jws *j)
{
	size_t hlen, plen, slen, i;
	json_t *kidv;
	const char *alg_s;
	enum jwt_status st;
	long siglen;
	int tried = 0, kid_seen = 0, ok = 0;

	memset(j, 0, sizeof(*j));
	j->d1 = memchr(tok, '.', len);
	j->d2 = j->d1 ? memchr(j->d1 + 1, '.', len - (size_t)(j->d1 + 1 - tok)) : NULL;
	if (!j->d2 || memchr(j->d2 + 1, '.', len - (size_t)(j->d2 + 1 - tok)))
		return JWT_E_MALFORMED;
	hlen = (size_t)(j->d1 - tok);
	plen = (size_t)(j->d2 - j->d1 - 1);
	slen = len - (size_t)(j->d2 + 1 - tok);
	if (hlen == 0 || plen == 0 || slen == 0)
		return JWT_E_MALFORMED;

	st = JWT_E_MALFORMED;
	j->hdr = decode_json(tok, hlen, scratch);
	if (!j->hdr)
		goto fail;
	alg_s = json_string_value(json_object_get(j->hdr, "alg"));
	if (!alg_s)
		goto fail;
	/* No extension is understood, so a critical one must be refused
	 * (RFC 7515 4.1.11). */
	if (json_object_get(j->hdr, "crit"))
		goto fail;
	st = JWT_E_ALG;
	j->alg = jwt_alg_parse(alg_s);     /* "none" and friends are -1 */
	if (j->alg < 0 || !(algs & JWT_ALG_BIT(j->alg)))
		goto fail;
	kidv = json_object_get(j->hdr, "kid");
	if (kidv) {
		st = JWT_E_MALFORMED;
		j->kid = json_string_value(kidv);
		if (!j->kid)
			goto fail;
	}
	st = JWT_E_MALFORMED;
	siglen = jwt_b64url_decode(scratch, j->d2 + 1, slen);
	if (siglen <= 0)
		goto fail;
	for (i = 0; i < ks->n && !ok; i++) {
		const struct jwt_key *k = &ks->keys[i];

		if (j->kid && (!k->has_kid || strcmp(k->kid, j->kid) != 0))
			continue;
		kid_seen = 1;
		if (!key_fits(k, (enum jwt_sig_alg)j->alg))
			continue;
		tried = 1;
		ok = verify_sig(k, (enum jwt_sig_alg)j->alg, tok, (size_t)(j->d2 - tok), scratch,
		                (size_t)siglen);
	}
	if (ok)
		return JWT_OK;
	st = !kid_seen ? JWT_E_KID : !tried ? JWT_E_ALG : JWT_E_SIGNATURE;
 fail:
	json_decref(j->hdr);
	j->hdr = NULL;
	return st;
}

enum jwt_status jwt_verify_signature(const struct jwt_keyset *ks, unsigned algs,
                                     const char *tok, size_t len)
{
	unsigned char *scratch;
	enum jwt_status st;
	struct jws j;

	if (len > 65536)
		return JWT_E_TOO_LONG;
	scratch = malloc(len * 3 / 4 + 4);
	if (!scratch)
		return JWT_E_NOMEM;
	st = jws_check(ks, algs, tok, len, scratch, &j);
	json_decref(j.hdr);
	free(scratch);
	return st;
}

enum jwt_status jwt_verify_token(const struct jwt_keyset *ks, const struct jwt_policy *p,
                                 const char *tok, size_t len, int64_t now,
                                 json_t **claims)
{
	json_t *payload = NULL;
	unsigned char *scratch;
	enum jwt_status st;
	struct jws j;

	if (claims)
		*claims = NULL;
	if (len > (p->max_len ? p->max_len : JWT_DEF_MAX_TOKEN))
		return JWT_E_TOO_LONG;
	scratch = malloc(len * 3 / 4 + 4);
	if (!scratch)
		return JWT_E_NOMEM;
	st = jws_check(ks, p->algs, tok, len, scratch, &j);
	if (st != JWT_OK)
		goto out;
	st = JWT_E_MALFORMED;
	payload = decode_json(j.d1 + 1, (size_t)(j.d2 - j.d1 - 1), scratch);
	if (!payload)
		goto out;
	st = check_claims(p, payload, now);
	if (st == JWT_OK && claims) {
		*claims = payload;
		payload = NULL;
	}
 out:
	json_decref(j.hdr);
	json_decref(payload);
	free(scratch);
	return st;
}

/* ---- JWK export (keygen, tests) ---- */

static int jwk_put_b64(json_t *o, const char *name, const unsigned char *p, size_t n)
{
	char *s = malloc(n * 4 / 3 + 4);
	int r;

	if (!s)
		return -1;
	jwt_b64url_encode(s, p, n);
	r = json_object_set_new(o, name, json_string(s));
	free(s);
	return r;
}

static int jwk_put_bn(json_t *o, const char *name, EVP_PKEY *pkey, const char *param)
{
	BIGNUM *bn = NULL;
	unsigned char *buf;
	int n, r = -1;

	if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1)
		return -1;
	n = BN_num_bytes(bn);
	buf = malloc((size_t)n + 1);
	if (buf && BN_bn2bin(bn, buf) == n)
		r = jwk_put_b64(o, name, buf, (size_t)n);
	free(buf);
	BN_free(bn);
	return r;
}

/* The members every JWK of ours carries besides its key material. */
static void jwk_finish(json_t *o, const char *kid, const char *alg)
{
	json_object_set_new(o, "use", json_string("sig"));
	if (kid)
		json_object_set_new(o, "kid", json_string(kid));
	if (alg)
		json_object_set_new(o, "alg", json_string(alg));
}

json_t *jwt_jwk_public(EVP_PKEY *pkey, const char *kid, const char *alg)
{
	json_t *o = json_object();
	unsigned char pub[1 + 2 * 66];
	size_t publen = 0, size;
	int bits = EVP_PKEY_get_bits(pkey);

	if (!o)
		return NULL;
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		json_object_set_new(o, "kty", json_string("RSA"));
		if (jwk_put_bn(o, "n", pkey, OSSL_PKEY_PARAM_RSA_N) < 0 ||
		    jwk_put_bn(o, "e", pkey, OSSL_PKEY_PARAM_RSA_E) < 0)
			goto fail;
	} else if (EVP_PKEY_is_a(pkey, "EC")) {
		size = (size_t)(bits + 7) / 8;
		json_object_set_new(o, "kty", json_string("EC"));
		json_object_set_new(o, "crv", json_string(bits == 256 ? "P-256" :
		                                          bits == 384 ? "P-384" : "P-521"));
		if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
		                                    pub, sizeof(pub), &publen) != 1 ||
		    publen != 1 + 2 * size || pub[0] != 0x04 ||
		    jwk_put_b64(o, "x", pub + 1, size) < 0 ||
		    jwk_put_b64(o, "y", pub + 1 + size, size) < 0)
			goto fail;
	} else if (EVP_PKEY_is_a(pkey, "ED25519") || EVP_PKEY_is_a(pkey, "ED448")) {
		publen = sizeof(pub);
		json_object_set_new(o, "kty", json_string("OKP"));
		json_object_set_new(o, "crv", json_string(EVP_PKEY_is_a(pkey, "ED448") ?
		                                          "Ed448" : "Ed25519"));
		if (EVP_PKEY_get_raw_public_key(pkey, pub, &publen) != 1 ||
		    jwk_put_b64(o, "x", pub, publen) < 0)
			goto fail;
	} else {
		goto fail;
	}
	jwk_finish(o, kid, alg);
	return o;
 fail:
	json_decref(o);
	return NULL;
}

json_t *jwt_jwk_secret(const unsigned char *secret, size_t len, const char *kid,
                       const char *alg)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	json_object_set_new(o, "kty", json_string("oct"));
	if (jwk_put_b64(o, "k", secret, len) < 0) {
		json_decref(o);
		return NULL;
	}
	jwk_finish(o, kid, alg);
	return o;
}
