/*
 * Unit tests of the JWKS fetcher's parsers: what an identity provider
 * sends back (Cache-Control, Content-Type, the discovery document, the key
 * set itself). The fetch itself is tested end to end in
 * tests/integration/test_auth_jwks_remote.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "jose_vectors.h"
#include "jwks_fetch.h"
#include "jwt_verify.h"

static long max_age(const char *s)
{
	return jwks_cache_max_age(s, strlen(s));
}

static void test_cache_control_max_age_is_read(void **state)
{
	(void)state;
	assert_int_equal(max_age("max-age=300"), 300);
	assert_int_equal(max_age("public, max-age=86400, must-revalidate"), 86400);
	assert_int_equal(max_age("Max-Age=\"60\""), 60);
	assert_int_equal(max_age("public"), -1);
	assert_int_equal(max_age(""), -1);
	assert_int_equal(max_age("max-age="), -1);
	assert_int_equal(max_age("max-age=abc"), -1);
	assert_int_equal(max_age("no-store, max-age=600"), -1);
	assert_int_equal(max_age("max-age=600, no-cache"), -1);
	/* Absurd values saturate instead of overflowing. */
	assert_true(max_age("max-age=99999999999999999999999") > 86400);
}

static int ctype(const char *s)
{
	return jwks_content_type_ok(s, strlen(s));
}

static void test_only_json_content_types_are_accepted(void **state)
{
	(void)state;
	assert_true(ctype("application/json"));
	assert_true(ctype("application/json; charset=utf-8"));
	assert_true(ctype("Application/JSON"));
	assert_true(ctype("application/jwk-set+json"));
	assert_false(ctype("text/html"));
	assert_false(ctype("text/plain; charset=utf-8"));
	assert_false(ctype("application/jsonp"));
	assert_false(ctype("application/+json"));
	assert_false(ctype(""));
}

static int etag(const char *s)
{
	return jwks_etag_ok(s, strlen(s));
}

static void test_only_strong_well_formed_etags_are_kept(void **state)
{
	char big[JWKS_ETAG_MAX + 2];

	(void)state;
	assert_true(etag("\"v1\""));
	assert_true(etag("\"\""));
	assert_true(etag("\"33a64df551425fcc55e4d42a148795d9f25f89d4\""));
	assert_true(etag("\"a/b-c_d!#$%&'()*+,.:;<=>?@[]^`{|}~\""));
	/* Weak tags, tags without quotes, inner quotes, spaces, control
	 * bytes and obs-text are not sent back. */
	assert_false(etag("W/\"v1\""));
	assert_false(etag("v1"));
	assert_false(etag("\"v1"));
	assert_false(etag("\""));
	assert_false(etag(""));
	assert_false(etag("\"a\"b\""));
	assert_false(etag("\"a b\""));
	assert_false(etag("\"a\tb\""));
	assert_false(etag("\"a\r\nX-Evil: 1\""));
	assert_false(etag("\"caf\xc3\xa9\""));
	assert_false(etag("\"v1\", \"v2\""));
	/* Bounded: JWKS_ETAG_MAX bytes at most. */
	memset(big, 'a', sizeof(big));
	big[0] = '"';
	big[JWKS_ETAG_MAX - 1] = '"';
	assert_true(jwks_etag_ok(big, JWKS_ETAG_MAX));
	big[JWKS_ETAG_MAX] = '"';
	big[JWKS_ETAG_MAX - 1] = 'a';
	assert_false(jwks_etag_ok(big, JWKS_ETAG_MAX + 1));
}

static int lastmod(const char *s, long long date)
{
	return jwks_last_modified_ok(s, strlen(s), date);
}

static void test_only_past_http_dates_are_kept_as_last_modified(void **state)
{
	const long long d = 1764633600;   /* Tue, 02 Dec 2025 00:00:00 GMT */

	(void)state;
	assert_true(lastmod("Tue, 02 Dec 2025 00:00:00 GMT", d));
	assert_true(lastmod("Mon, 01 Dec 2025 23:59:59 GMT", d));
	/* Later than the response's Date (RFC 9110 8.8.2.1): every change
	 * made before it would be answered 304. */
	assert_false(lastmod("Tue, 02 Dec 2025 00:00:01 GMT", d));
	assert_false(lastmod("Wed, 01 Jan 2100 00:00:00 GMT", d));
	assert_false(lastmod("yesterday-ish", d));
	assert_false(lastmod("", d));
	assert_false(lastmod("Tue, 02 Dec 2025 00:00:00 GMT\r\nX-Evil: 1", d));
	assert_false(lastmod("Tue, 02 Dec 2025 00:00:00 GMT                                      "
	                     "        ", d));
}

static int disco(const char *doc, const char *iss, char *uri)
{
	char err[256];

	return jwks_discovery_parse(doc, strlen(doc), iss, uri, JWKS_URI_MAX, err, sizeof(err));
}

static void test_discovery_needs_the_exact_issuer_and_an_https_jwks_uri(void **state)
{
	char uri[JWKS_URI_MAX];

	(void)state;
	assert_int_equal(disco("{\"issuer\":\"https://idp/realms/x\","
	                       "\"jwks_uri\":\"https://idp/realms/x/certs\"}",
	                       "https://idp/realms/x", uri), 0);
	assert_string_equal(uri, "https://idp/realms/x/certs");
	/* OIDC Discovery 4.3: a document for another issuer is refused. */
	assert_int_equal(disco("{\"issuer\":\"https://evil\",\"jwks_uri\":\"https://evil/k\"}",
	                       "https://idp/realms/x", uri), -1);
	assert_int_equal(disco("{\"issuer\":\"https://idp/realms/x/\","
	                       "\"jwks_uri\":\"https://idp/k\"}", "https://idp/realms/x", uri), -1);
	assert_int_equal(disco("{\"issuer\":\"https://idp\",\"jwks_uri\":\"http://idp/k\"}",
	                       "https://idp", uri), -1);
	assert_int_equal(disco("{\"issuer\":\"https://idp\"}", "https://idp", uri), -1);
	assert_int_equal(disco("[1,2]", "https://idp", uri), -1);
	assert_int_equal(disco("{broken", "https://idp", uri), -1);
}

static void test_key_sets_from_a_provider_are_parsed_or_refused(void **state)
{
	enum jwks_outcome o;
	struct jwt_keyset *ks;
	char err[256];

	(void)state;
	ks = jwks_parse(rfc7520_jwks, strlen(rfc7520_jwks), &o, err, sizeof(err));
	assert_non_null(ks);
	assert_int_equal(o, JWKS_OK);
	assert_int_equal(jwt_keyset_size(ks), 3);
	jwt_keyset_unref(ks);
	ks = jwks_parse(rfc8037_jwks, strlen(rfc8037_jwks), &o, err, sizeof(err));
	assert_non_null(ks);
	assert_int_equal(jwt_verify_signature(ks, JWT_ALL_ALGS, rfc8037_a4, strlen(rfc8037_a4)),
	                 JWT_OK);
	jwt_keyset_unref(ks);
	assert_null(jwks_parse("{\"keys\":[", 9, &o, err, sizeof(err)));
	assert_int_equal(o, JWKS_E_JSON);
	assert_null(jwks_parse("{\"keys\":[]}", 11, &o, err, sizeof(err)));
	assert_int_equal(o, JWKS_E_KEYS);
	assert_non_null(strstr(err, "no usable"));
	assert_null(jwks_parse("<html></html>", 13, &o, err, sizeof(err)));
	assert_int_equal(o, JWKS_E_JSON);
	/* Only encryption keys: nothing to verify with. */
	{
		static const char enc[] =
			"{\"keys\":[{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AA\",\"e\":\"AQAB\"}]}";

		assert_null(jwks_parse(enc, strlen(enc), &o, err, sizeof(err)));
	}
	assert_int_equal(o, JWKS_E_KEYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache_control_max_age_is_read),
		cmocka_unit_test(test_only_json_content_types_are_accepted),
		cmocka_unit_test(test_only_strong_well_formed_etags_are_kept),
		cmocka_unit_test(test_only_past_http_dates_are_kept_as_last_modified),
		cmocka_unit_test(test_discovery_needs_the_exact_issuer_and_an_https_jwks_uri),
		cmocka_unit_test(test_key_sets_from_a_provider_are_parsed_or_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
