/*
 * spogate-refsvc entry point and the token tools: mint (signed by libjwt,
 * an implementation independent of the agent's verifier; PS* and EdDSA,
 * which libjwt 1.10 lacks, by OpenSSL's signing calls) and keygen.
 */
#include "refsvc.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "jwt_verify.h"
#include "version.h"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: spogate-refsvc serve --listen HOST:PORT [--admin HOST:PORT] [--jwks FILE]\n"
	        "                            [--key PEM [--kid K] [--alg A]] [--issuer I]\n"
	        "                            [--audience A]... [--policy FILE] [--delay-ms N]\n"
	        "                            [--tls-cert PEM [--tls-key PEM] [--client-ca PEM]]\n"
	        "       spogate-refsvc mint --sub S --key FILE --alg ALG [--kid K] [--ttl 1h]\n"
	        "                           (ALG: HS*, RS*, ES*, PS256/384/512, EdDSA, Ed25519, Ed448)\n"
	        "                           [--count N: N tokens, subjects S0..S(N-1)]\n"
	        "                           [--iss I] [--aud A] [--roles a,b] [--permissions a,b]\n"
	        "                           [--scope \"a b\"] [--claim k=v]... [--nbf T] [--exp T]\n"
	        "                           [--iat T]   (T: unix seconds, or +N / -N from now;\n"
	        "                                        --exp none: no exp claim)\n"
	        "       spogate-refsvc keygen --dir DIR [--tag 1]\n");
}

int refsvc_parse_duration(const char *s, long long *out)
{
	char *end;
	long long v, mul = 1;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || v < 0)
		return -1;
	if (*end == 'h')
		mul = 3600;
	else if (*end == 'm')
		mul = 60;
	else if (*end == 'd')
		mul = 86400;
	else if (*end == 's' || *end == '\0')
		mul = 1;
	else
		return -1;
	if (*end && end[1])
		return -1;
	*out = v * mul;
	return 0;
}

/* "+N" / "-N" relative to now, else absolute unix seconds. */
static int parse_time(const char *s, long long now, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return -1;
	*out = (s[0] == '+' || s[0] == '-') ? now + v : v;
	return 0;
}

static json_t *split_list(const char *s)
{
	json_t *a = json_array();
	const char *p = s, *e;

	while (*p) {
		e = strchr(p, ',');
		if (!e)
			e = p + strlen(p);
		if (e > p)
			json_array_append_new(a, json_stringn(p, (size_t)(e - p)));
		p = *e ? e + 1 : e;
	}
	return a;
}

static unsigned char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	size_t n;

	if (!f)
		return NULL;
	buf = malloc(65537);
	n = buf ? fread(buf, 1, 65536, f) : 0;
	fclose(f);
	if (!buf)
		return NULL;
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Signs claims (a JSON text) with the PEM private key key[0..keylen) as
 * alg, PS256/384/512, EdDSA, Ed25519 or Ed448. Returns a malloc'd token or NULL. */
static char *sign_openssl(const char *alg, const unsigned char *key, size_t keylen,
                          const char *kid, const char *claims)
{
	json_t *hdr = json_pack("{s:s,s:s}", "alg", alg, "typ", "JWT");
	const EVP_MD *md = NULL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pkey = NULL;
	BIO *bio = BIO_new_mem_buf(key, (int)keylen);
	char *htext = NULL, *tok = NULL;
	unsigned char sig[1024];
	size_t siglen = sizeof(sig), hl, cl, n;

	if (kid)
		json_object_set_new(hdr, "kid", json_string(kid));
	htext = json_dumps(hdr, JSON_COMPACT);
	if (bio)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (!ctx || !htext || !pkey)
		goto out;
	if (strncmp(alg, "Ed", 2) != 0)   /* EdDSA, Ed25519, Ed448 hash inside */
		md = strcmp(alg, "PS256") == 0 ? EVP_sha256() :
		     strcmp(alg, "PS384") == 0 ? EVP_sha384() : EVP_sha512();
	hl = strlen(htext);
	cl = strlen(claims);
	n = (hl + cl) * 4 / 3 + sizeof(sig) * 4 / 3 + 16;
	tok = malloc(n);
	if (!tok)
		goto out;
	n = jwt_b64url_encode(tok, (const unsigned char *)htext, hl);
	tok[n++] = '.';
	n += jwt_b64url_encode(tok + n, (const unsigned char *)claims, cl);
	if (EVP_DigestSignInit(ctx, &pctx, md, NULL, pkey) != 1 ||
	    (md && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)) ||
	    EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)tok, n) != 1) {
		free(tok);
		tok = NULL;
		goto out;
	}
	tok[n++] = '.';
	jwt_b64url_encode(tok + n, sig, siglen);
 out:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	EVP_MD_CTX_free(ctx);
	free(htext);
	json_decref(hdr);
	return tok;
}

int refsvc_mint(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sub", required_argument, NULL, 's' },
		{ "key", required_argument, NULL, 'k' },
		{ "alg", required_argument, NULL, 'a' },
		{ "kid", required_argument, NULL, 'K' },
		{ "ttl", required_argument, NULL, 't' },
		{ "iss", required_argument, NULL, 'i' },
		{ "aud", required_argument, NULL, 'u' },
		{ "roles", required_argument, NULL, 'r' },
		{ "permissions", required_argument, NULL, 'p' },
		{ "scope", required_argument, NULL, 'S' },
		{ "claim", required_argument, NULL, 'c' },
		{ "nbf", required_argument, NULL, 'n' },
		{ "exp", required_argument, NULL, 'e' },
		{ "iat", required_argument, NULL, 'I' },
		{ "count", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 }
	};
	const char *keyfile = NULL, *alg = "RS256", *kid = NULL, *sub = "";
	long count = 0, n;
	json_t *claims = json_object();
	long long now = (long long)time(NULL), ttl = 3600, t;
	int opt, exp_set = 0, iat_set = 0, rc = 1;
	unsigned char *key = NULL;
	size_t keylen = 0;
	jwt_alg_t jalg;
	jwt_t *jwt = NULL;
	char *grants = NULL, *tok = NULL;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sub = optarg;
			json_object_set_new(claims, "sub", json_string(optarg));
			break;
		case 'C':
			/* --count N: N tokens, one a line, for subjects <sub>0..<sub>N-1 */
			count = strtol(optarg, NULL, 10);
			if (count < 1 || count > 1000000)
				goto bad;
			break;
		case 'k': keyfile = optarg; break;
		case 'a': alg = optarg; break;
		case 'K': kid = optarg; break;
		case 't':
			if (refsvc_parse_duration(optarg, &ttl) < 0)
				goto bad;
			break;
		case 'i': json_object_set_new(claims, "iss", json_string(optarg)); break;
		case 'u': json_object_set_new(claims, "aud", json_string(optarg)); break;
		case 'r': json_object_set_new(claims, "roles", split_list(optarg)); break;
		case 'p': json_object_set_new(claims, "permissions", split_list(optarg)); break;
		case 'S': json_object_set_new(claims, "scope", json_string(optarg)); break;
		case 'c': {
			const char *eq = strchr(optarg, '=');
			char *name;

			if (!eq)
				goto bad;
			name = strndup(optarg, (size_t)(eq - optarg));
			/* Backslash escapes let a test put CR/LF into a claim. */
			{
				size_t n = strlen(eq + 1), i, o = 0;
				char *v = malloc(n + 1);

				for (i = 0; i < n; i++) {
					if (eq[1 + i] == '\\' && i + 1 < n) {
						char c = eq[1 + ++i];

						v[o++] = c == 'r' ? '\r' : c == 'n' ? '\n' : c;
					} else {
						v[o++] = eq[1 + i];
					}
				}
				json_object_set_new(claims, name, json_stringn(v, o));
				free(v);
			}
			free(name);
			break;
		}
		case 'n':
			if (parse_time(optarg, now, &t) < 0)
				goto bad;
			json_object_set_new(claims, "nbf", json_integer(t));
			break;
		case 'e':
			exp_set = strcmp(optarg, "none") == 0;
			if (exp_set)
				break;                  /* a token without exp */
			if (parse_time(optarg, now, &t) < 0)
				goto bad;
			json_object_set_new(claims, "exp", json_integer(t));
			exp_set = 1;
			break;
		case 'I':
			if (parse_time(optarg, now, &t) < 0)
				goto bad;
			json_object_set_new(claims, "iat", json_integer(t));
			iat_set = 1;
			break;
		default:
			goto bad;
		}
	}
	if (!exp_set)
		json_object_set_new(claims, "exp", json_integer(now + ttl));
	if (!iat_set)
		json_object_set_new(claims, "iat", json_integer(now));
	jalg = jwt_str_alg(alg);
	if ((alg[0] == 'P' || strncmp(alg, "Ed", 2) == 0) && jwt_alg_parse(alg) >= 0) {
		if (!keyfile) {
			fprintf(stderr, "spogate-refsvc mint: --alg and --key are required\n");
			goto bad;
		}
		if (!(key = read_all(keyfile, &keylen))) {
			fprintf(stderr, "spogate-refsvc mint: %s: %s\n", keyfile, strerror(errno));
			goto out;
		}
		grants = json_dumps(claims, JSON_COMPACT);
		tok = grants ? sign_openssl(alg, key, keylen, kid, grants) : NULL;
		if (!tok) {
			fprintf(stderr, "spogate-refsvc mint: signing failed (key does not fit %s?)\n",
			        alg);
			goto out;
		}
		printf("%s\n", tok);
		rc = 0;
		goto out;
	}
	if (strcmp(alg, "none") == 0) {
		jalg = JWT_ALG_NONE;
	} else if (jalg == JWT_ALG_INVAL || jalg == JWT_ALG_NONE || !keyfile) {
		fprintf(stderr, "spogate-refsvc mint: --alg and --key are required\n");
		goto bad;
	} else if (!(key = read_all(keyfile, &keylen))) {
		fprintf(stderr, "spogate-refsvc mint: %s: %s\n", keyfile, strerror(errno));
		goto out;
	}
	for (n = 0; n < (count ? count : 1); n++) {
		if (count) {
			char s2[300];

			snprintf(s2, sizeof(s2), "%.256s%ld", sub, n);
			json_object_set_new(claims, "sub", json_string(s2));
		}
		free(grants);
		grants = json_dumps(claims, JSON_COMPACT);
		jwt_free(jwt);
		jwt = NULL;
		if (jwt_new(&jwt) || jwt_add_grants_json(jwt, grants) ||
		    (kid && jwt_add_header(jwt, "kid", kid)) ||
		    jwt_set_alg(jwt, jalg, jalg == JWT_ALG_NONE ? NULL : key,
		                jalg == JWT_ALG_NONE ? 0 : (int)keylen)) {
			fprintf(stderr, "spogate-refsvc mint: libjwt refused the key or claims\n");
			goto out;
		}
		free(tok);
		tok = jwt_encode_str(jwt);
		if (!tok) {
			fprintf(stderr, "spogate-refsvc mint: signing failed (key does not fit %s?)\n",
			        alg);
			goto out;
		}
		printf("%s\n", tok);
	}
	rc = 0;
	goto out;
 bad:
	usage(stderr);
	rc = 2;
 out:
	free(tok);
	free(grants);
	jwt_free(jwt);
	free(key);
	json_decref(claims);
	return rc;
}

/* Opens path for writing, readable by its owner only when secret (also
 * when the file existed with wider permissions). The caller fcloses. */
static FILE *create_file(const char *path, int secret)
{
	mode_t mode = secret ? 0600 : 0644;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	FILE *f;

	if (fd < 0)
		return NULL;
	if ((secret && fchmod(fd, mode) < 0) || !(f = fdopen(fd, "w"))) {
		close(fd);
		return NULL;
	}
	return f;
}

static int write_pem(const char *dir, const char *name, EVP_PKEY *k, int priv)
{
	char path[1024];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = create_file(path, priv);
	if (!f)
		return -1;
	ok = priv ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL)
	          : PEM_write_PUBKEY(f, k);
	fclose(f);
	return ok ? 0 : -1;
}

/* <prefix><tag>.pem (private) and <prefix><tag>.pub.pem. */
static int write_pair(const char *dir, const char *prefix, const char *tag, EVP_PKEY *k)
{
	char name[256];

	snprintf(name, sizeof(name), "%s%s.pem", prefix, tag);
	if (write_pem(dir, name, k, 1) < 0)
		return -1;
	snprintf(name, sizeof(name), "%s%s.pub.pem", prefix, tag);
	return write_pem(dir, name, k, 0);
}

int refsvc_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "tag", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 }
	};
	const char *dir = NULL, *tag = "1";
	EVP_PKEY *rsa = NULL, *ec = NULL, *ed = NULL;
	unsigned char raw[32];
	char secret[64], kid[64], path[1024];
	json_t *jwks = NULL, *keys;
	FILE *f;
	int opt, rc = 1;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'd': dir = optarg; break;
		case 't': tag = optarg; break;
		default: usage(stderr); return 2;
		}
	}
	if (!dir) {
		usage(stderr);
		return 2;
	}
	mkdir(dir, 0700);
	rsa = EVP_RSA_gen(2048);
	ec = EVP_EC_gen("P-256");
	ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!rsa || !ec || !ed || RAND_bytes(raw, sizeof(raw)) != 1)
		goto out;
	/* The HS secret is the text of the file: 43 base64url characters. */
	jwt_b64url_encode(secret, raw, sizeof(raw));
	jwks = json_object();
	keys = json_array();
	json_object_set_new(jwks, "keys", keys);
	snprintf(kid, sizeof(kid), "rsa%s", tag);
	json_array_append_new(keys, jwt_jwk_public(rsa, kid, "RS256"));
	snprintf(kid, sizeof(kid), "ec%s", tag);
	json_array_append_new(keys, jwt_jwk_public(ec, kid, "ES256"));
	snprintf(kid, sizeof(kid), "hs%s", tag);
	json_array_append_new(keys, jwt_jwk_secret((unsigned char *)secret, strlen(secret),
	                                           kid, "HS256"));
	snprintf(kid, sizeof(kid), "ed%s", tag);
	json_array_append_new(keys, jwt_jwk_public(ed, kid, "EdDSA"));
	/* The RSA key once more, labelled for PS256 alone. */
	snprintf(kid, sizeof(kid), "ps%s", tag);
	json_array_append_new(keys, jwt_jwk_public(rsa, kid, "PS256"));
	if (write_pair(dir, "rsa", tag, rsa) < 0 || write_pair(dir, "ec", tag, ec) < 0 ||
	    write_pair(dir, "ed", tag, ed) < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/hs%s.key", dir, tag);
	f = create_file(path, 1);
	if (!f || fputs(secret, f) < 0) {
		if (f)
			fclose(f);
		goto out;
	}
	fclose(f);
	/* The JWKS holds the HS secret too. */
	snprintf(path, sizeof(path), "%s/jwks%s.json", dir, tag);
	f = create_file(path, 1);
	if (!f || json_dumpf(jwks, f, JSON_INDENT(2)) < 0) {
		if (f)
			fclose(f);
		goto out;
	}
	if (fclose(f) != 0)
		goto out;
	printf("%s: rsa%s.pem ec%s.pem ed%s.pem hs%s.key jwks%s.json (private, 0600), rsa%s.pub.pem "
	       "ec%s.pub.pem ed%s.pub.pem\n", dir, tag, tag, tag, tag, tag, tag, tag, tag);
	rc = 0;
 out:
	if (rc)
		fprintf(stderr, "spogate-refsvc keygen: cannot write keys to %s\n", dir);
	json_decref(jwks);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ed);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "serve") == 0)
		return refsvc_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "mint") == 0)
		return refsvc_mint(argc - 1, argv + 1);
	if (strcmp(argv[1], "keygen") == 0)
		return refsvc_keygen(argc - 1, argv + 1);
	if (strcmp(argv[1], "--version") == 0) {
		version_print(stdout, "spogate-refsvc");
		return 0;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
