/*
 * JSON Web Token verification (RFC 7515/7519), pure functions over bounded
 * inputs: no I/O except the key loaders, no event loop.
 *
 * Signatures are checked with OpenSSL 3 directly on keys parsed once at
 * load time. libjwt 1.10.2 takes the algorithm from the token, re-parses
 * the PEM key on every call and compares HMACs with strcmp(); here the
 * algorithm must be on the allow-list and match the selected key's type
 * before any cryptography runs, and HMACs are compared in constant time.
 *
 * The header is not called jwt.h so that libjwt's <jwt.h> stays reachable
 * for the tools that mint tokens with it (refsvc, tests).
 *
 * A keyset is immutable once built and reference counted, so a SIGHUP can
 * swap in a new one while decisions on other threads still use the old.
 */
#ifndef SPOGATE_JWT_VERIFY_H
#define SPOGATE_JWT_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#define JWT_DEF_MAX_TOKEN 8192
#define JWT_MAX_KEYS      64
#define JWT_KID_MAX       128

enum jwt_sig_alg {
	JWT_HS256 = 0, JWT_HS384 = 1, JWT_HS512 = 2,
	JWT_RS256 = 3, JWT_RS384 = 4, JWT_RS512 = 5,
	JWT_ES256 = 6, JWT_ES384 = 7, JWT_ES512 = 8,
	JWT_PS256 = 9, JWT_PS384 = 10, JWT_PS512 = 11,
	JWT_EDDSA = 12,                /* Ed25519 or Ed448, by the key's curve */
	JWT_ED25519 = 13,              /* RFC 9864 fully-specified names */
	JWT_ED448 = 14,
	JWT_NALGS = 15
};

#define JWT_ALG_BIT(a)  (1u << (a))
#define JWT_ALL_ALGS    ((1u << JWT_NALGS) - 1)

enum jwt_kty {
	JWT_KTY_OCT = 1,
	JWT_KTY_RSA = 2,
	JWT_KTY_EC  = 3,
	JWT_KTY_OKP = 4,               /* RFC 8037: Ed25519, Ed448 */
};

/* Verification outcome; each maps to one reason code of the contract. */
enum jwt_status {
	JWT_OK              = 0,
	JWT_E_MALFORMED     = 1,   /* not three base64url JSON segments */
	JWT_E_TOO_LONG      = 2,
	JWT_E_ALG           = 3,   /* none, unknown, not allowed, wrong key type */
	JWT_E_KID           = 4,   /* no key for this kid */
	JWT_E_SIGNATURE     = 5,
	JWT_E_EXPIRED       = 6,
	JWT_E_NOT_YET_VALID = 7,
	JWT_E_ISSUER        = 8,
	JWT_E_AUDIENCE      = 9,
	JWT_E_NOMEM         = 10,
	JWT_E_EXP_MISSING   = 11,  /* no exp while the policy requires one */
};

struct jwt_keyset;

/* What the claims must satisfy. Strings are borrowed (config-owned). */
struct jwt_policy {
	unsigned algs;                 /* JWT_ALG_BIT mask */
	const char *issuer;            /* NULL or "" = not checked */
	const char *const *audiences;  /* any one must match; naud 0 = not checked */
	size_t naud;
	int64_t leeway;                /* seconds, >= 0 */
	int require_exp;               /* a token without exp is refused */
	size_t max_len;                /* token bytes */
};

/* Parses "RS256" etc. Returns the algorithm or -1 (also for "none"). */
int jwt_alg_parse(const char *s);
/* The JWT_ALG_BIT mask an allow-list entry a admits: a itself, and for the
 * polymorphic EdDSA also Ed25519 and Ed448 (RFC 9864), which name the same
 * signatures more precisely. */
unsigned jwt_alg_allows(enum jwt_sig_alg a);
const char *jwt_alg_name(enum jwt_sig_alg a);
const char *jwt_status_str(enum jwt_status st);

/* An empty keyset with one reference. NULL on no memory. */
struct jwt_keyset *jwt_keyset_new(void);
void jwt_keyset_ref(struct jwt_keyset *ks);
/* Drops a reference; the last one frees the keys. Safe from any thread. */
void jwt_keyset_unref(struct jwt_keyset *ks);
size_t jwt_keyset_size(const struct jwt_keyset *ks);

/* Adds every usable key of a JWKS document ({"keys":[...]}): RSA n/e, EC
 * x/y/crv (P-256, P-384, P-521), OKP x/crv (Ed25519, Ed448), oct k.
 * Keys with "use" other than "sig", and (RFC 7517 section 5) keys whose
 * kty, crv or alg is not understood here, are skipped: a provider's set
 * may carry encryption keys or newer algorithms beside the ones we use.
 * Broken or weak material of a supported type refuses the whole document.
 * Returns the number added or -1 with err set. */
int jwt_keyset_add_jwks(struct jwt_keyset *ks, json_t *jwks, char *err, size_t errlen);
int jwt_keyset_add_jwks_file(struct jwt_keyset *ks, const char *path, char *err,
                             size_t errlen);

/* Adds a PEM public key (RSA, EC, Ed25519 or Ed448) or, for an HS algorithm, a raw secret
 * file. alg may be NULL (any algorithm of the key's type). kid may be NULL.
 * Returns 0 or -1 with err set. */
int jwt_keyset_add_pem_file(struct jwt_keyset *ks, const char *kid, const char *alg,
                            const char *path, char *err, size_t errlen);

/* Adds a shared secret (oct key). Returns 0 or -1. */
int jwt_keyset_add_secret(struct jwt_keyset *ks, const char *kid, const char *alg,
                          const unsigned char *secret, size_t len);

/* Verifies tok[0..len) against ks and p at time now (unix seconds).
 * On JWT_OK *claims (when claims is not NULL) receives the payload object,
 * which the caller frees with json_decref(); on any error it is NULL. The
 * signature is checked before any claim, so claim errors are only reported
 * for tokens the keyset actually signed. */
enum jwt_status jwt_verify_token(const struct jwt_keyset *ks, const struct jwt_policy *p,
                                 const char *tok, size_t len, int64_t now,
                                 json_t **claims);

/* Checks only the JWS signature of a compact token tok[0..len) against ks,
 * the algorithms in the mask algs: the payload may be any bytes (RFC 7515
 * appendix A.4, RFC 7520 section 4 sign plain text). Returns JWT_OK or the
 * error jwt_verify_token() would give for the same header and signature. */
enum jwt_status jwt_verify_signature(const struct jwt_keyset *ks, unsigned algs,
                                     const char *tok, size_t len);

/* base64url without padding. dst must hold ((n + 2) / 3) * 4 + 1 bytes;
 * returns the length written (NUL-terminated). */
size_t jwt_b64url_encode(char *dst, const unsigned char *src, size_t n);

/* Strict base64url decode (no padding, no whitespace). dst must hold
 * n * 3 / 4 + 1 bytes. Returns the decoded length or -1. */
long jwt_b64url_decode(unsigned char *dst, const char *src, size_t n);

/* The public JWK of an RSA, EC or OKP key, or of a shared secret, for keygen and
 * tests. Returns a new object (caller json_decref()s) or NULL. */
json_t *jwt_jwk_public(EVP_PKEY *pkey, const char *kid, const char *alg);
json_t *jwt_jwk_secret(const unsigned char *secret, size_t len, const char *kid,
                       const char *alg);

#endif
