/* One test per class of input error: the exact diagnostics (file, line,
 * column, message) that spogate-gen prints for the inputs in
 * tests/golden/gen/errors/<case>.yaml are in <case>.err next to them.
 * UPDATE_GOLDEN=1 rewrites the .err files (review the diff). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen.h"

#define DIR "tests/golden/gen/errors/"

/* Runs the generator in --check mode; returns gen_run's status and the
 * printed diagnostics (caller frees). */
static int check(const char *gateway, const char *registry, char **text)
{
	struct gen_opts o = { 0 };
	struct gen_diags d;
	struct gen_output out;
	size_t len;
	FILE *f;
	int rc;

	o.gateway_file = gateway;
	o.registry_file = registry;
	o.base_dir = "/etc/spogate";
	gen_diags_init(&d);
	rc = gen_run(&o, 1, &d, &out);
	f = open_memstream(text, &len);
	assert_non_null(f);
	gen_diags_print(&d, f);
	fclose(f);
	gen_diags_free(&d);
	return rc;
}

static void expect_case(const char *name, const char *registry, int want_rc)
{
	char gw[256], reg[256], errf[256], want[16384];
	char *got = NULL;
	size_t n;
	FILE *f;
	int rc;

	snprintf(gw, sizeof(gw), DIR "%s.yaml", name);
	snprintf(errf, sizeof(errf), DIR "%s.err", name);
	if (registry)
		snprintf(reg, sizeof(reg), DIR "%s", registry);
	else
		snprintf(reg, sizeof(reg), DIR "registry.yaml");
	rc = check(gw, reg, &got);
	if (getenv("UPDATE_GOLDEN")) {
		f = fopen(errf, "w");
		assert_non_null(f);
		fputs(got, f);
		fclose(f);
	}
	f = fopen(errf, "r");
	if (!f)
		fail_msg("%s is missing (UPDATE_GOLDEN=1 creates it); got:\n%s", errf, got);
	n = fread(want, 1, sizeof(want) - 1, f);
	want[n] = '\0';
	fclose(f);
	if (strcmp(want, got) != 0)
		fail_msg("diagnostics for %s differ.\nwant:\n%sgot:\n%s", gw, want, got);
	free(got);
	assert_int_equal(rc, want_rc);
}

#define CASE(fn, name, reg, rc) \
	static void fn(void **state) { (void)state; expect_case(name, reg, rc); }

CASE(test_unknown_key_suggests_the_right_one, "unknown_key", NULL, -1)
CASE(test_wrong_types_are_named, "wrong_type", NULL, -1)
CASE(test_bad_rates_are_errors, "bad_rate", NULL, -1)
CASE(test_bad_durations_are_errors, "bad_duration", NULL, -1)
CASE(test_unknown_http_method_is_an_error, "unknown_method", NULL, -1)
CASE(test_route_to_unknown_service_is_an_error, "missing_service", NULL, -1)
CASE(test_invalid_path_globs_are_errors, "bad_glob", NULL, -1)
CASE(test_duplicate_route_is_an_error, "duplicate_route", NULL, -1)
CASE(test_shadowed_route_is_a_warning, "shadowed_route", NULL, 0)
CASE(test_star_origin_with_credentials_is_refused, "cors_credentials", NULL, -1)
CASE(test_permission_for_a_disallowed_method_is_an_error, "permission_method", NULL, -1)
CASE(test_yaml_syntax_error_has_libyaml_position, "syntax_error", NULL, -1)
CASE(test_empty_file_is_an_error, "empty", NULL, -1)
CASE(test_non_utf8_input_is_an_error, "non_utf8", NULL, -1)
CASE(test_deep_nesting_is_refused, "deep", NULL, -1)
CASE(test_duplicate_key_is_an_error, "duplicate_key", NULL, -1)
CASE(test_reserved_claim_var_is_refused, "reserved_claim", NULL, -1)
CASE(test_registry_errors_are_reported, "bad_registry", "bad_registry.reg.yaml", -1)
CASE(test_auth_and_authz_services_must_exist, "missing_auth_service", "missing_auth_service.reg.yaml", -1)
CASE(test_bad_trusted_proxies_are_errors, "bad_trusted_proxy", NULL, -1)
CASE(test_bad_agent_addresses_are_errors, "bad_agent_address", NULL, -1)
CASE(test_unknown_ratelimit_header_sets_and_public_per_user_are_reported, "rl_headers", NULL, -1)
CASE(test_bad_jwks_uri_oidc_issuer_and_refresh_are_errors, "bad_jwks_remote", NULL, -1)
CASE(test_jwks_ca_file_needs_a_jwks_uri, "jwks_ca_without_uri", NULL, -1)
CASE(test_duplicate_host_and_path_is_an_error, "duplicate_host_route", NULL, -1)
CASE(test_bad_tls_hosts_origins_and_admin_users_are_reported, "bad_tls", NULL, -1)
CASE(test_bad_sentinel_credentials_are_reported, "sentinel_auth", NULL, -1)
CASE(test_sentinel_username_needs_a_password, "sentinel_user_without_password", NULL, -1)
CASE(test_every_problem_of_both_files_is_reported, "many_errors", "bad_registry.reg.yaml", -1)

static void test_ten_megabyte_file_is_refused(void **state)
{
	char path[] = "/tmp/spogate-big-XXXXXX", want[512];
	char *got = NULL, *line;
	int fd;
	size_t i;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	line = malloc(1024 * 1024);
	assert_non_null(line);
	memset(line, '#', 1024 * 1024);
	line[1024 * 1024 - 1] = '\n';
	for (i = 0; i < 10; i++)
		assert_int_equal(write(fd, line, 1024 * 1024), 1024 * 1024);
	close(fd);
	free(line);
	assert_int_equal(check(path, DIR "registry.yaml", &got), -1);
	snprintf(want, sizeof(want), "%s:1:1: error: file is too large (10485760 bytes, "
		 "limit 1048576 bytes)\n", path);
	unlink(path);
	assert_string_equal(got, want);
	free(got);
}

static void test_missing_file_is_reported(void **state)
{
	char *got = NULL;

	(void)state;
	assert_int_equal(check(DIR "does-not-exist.yaml", DIR "registry.yaml", &got), -1);
	assert_string_equal(got, DIR "does-not-exist.yaml: error: cannot open: No such file or directory\n");
	free(got);
}

static void test_glob_coverage(void **state)
{
	(void)state;
	assert_true(gen_glob_covers("/**", "/a/b"));
	assert_true(gen_glob_covers("/a/**", "/a"));
	assert_true(gen_glob_covers("/a/**", "/a/*/c"));
	assert_true(gen_glob_covers("/a/*", "/a/b"));
	assert_true(gen_glob_covers("/a/*/c", "/a/b/c"));
	assert_false(gen_glob_covers("/a/*", "/a/**"));
	assert_false(gen_glob_covers("/a/b", "/a/*"));
	assert_false(gen_glob_covers("/a/*", "/a/b/c"));
	assert_false(gen_glob_covers("/a", "/a/b"));
	assert_false(gen_glob_covers("/a/b/**", "/a/**"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unknown_key_suggests_the_right_one),
		cmocka_unit_test(test_wrong_types_are_named),
		cmocka_unit_test(test_bad_rates_are_errors),
		cmocka_unit_test(test_bad_durations_are_errors),
		cmocka_unit_test(test_unknown_http_method_is_an_error),
		cmocka_unit_test(test_route_to_unknown_service_is_an_error),
		cmocka_unit_test(test_invalid_path_globs_are_errors),
		cmocka_unit_test(test_duplicate_route_is_an_error),
		cmocka_unit_test(test_shadowed_route_is_a_warning),
		cmocka_unit_test(test_star_origin_with_credentials_is_refused),
		cmocka_unit_test(test_permission_for_a_disallowed_method_is_an_error),
		cmocka_unit_test(test_yaml_syntax_error_has_libyaml_position),
		cmocka_unit_test(test_empty_file_is_an_error),
		cmocka_unit_test(test_non_utf8_input_is_an_error),
		cmocka_unit_test(test_deep_nesting_is_refused),
		cmocka_unit_test(test_duplicate_key_is_an_error),
		cmocka_unit_test(test_reserved_claim_var_is_refused),
		cmocka_unit_test(test_bad_jwks_uri_oidc_issuer_and_refresh_are_errors),
		cmocka_unit_test(test_jwks_ca_file_needs_a_jwks_uri),
		cmocka_unit_test(test_registry_errors_are_reported),
		cmocka_unit_test(test_unknown_ratelimit_header_sets_and_public_per_user_are_reported),
		cmocka_unit_test(test_auth_and_authz_services_must_exist),
		cmocka_unit_test(test_bad_trusted_proxies_are_errors),
		cmocka_unit_test(test_bad_agent_addresses_are_errors),
		cmocka_unit_test(test_duplicate_host_and_path_is_an_error),
		cmocka_unit_test(test_bad_tls_hosts_origins_and_admin_users_are_reported),
		cmocka_unit_test(test_bad_sentinel_credentials_are_reported),
		cmocka_unit_test(test_sentinel_username_needs_a_password),
		cmocka_unit_test(test_every_problem_of_both_files_is_reported),
		cmocka_unit_test(test_ten_megabyte_file_is_refused),
		cmocka_unit_test(test_missing_file_is_reported),
		cmocka_unit_test(test_glob_coverage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
