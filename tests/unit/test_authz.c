/*
 * Unit tests of the permission grant matching used by authz.mode claims.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "authz.h"

static int m(const char *grant, const char *perm)
{
	return authz_grant_matches(grant, perm, strlen(perm));
}

static void test_exact_grant_matches_only_itself(void **state)
{
	(void)state;
	assert_true(m("blog.read", "blog.read"));
	assert_false(m("blog.read", "blog.readx"));
	assert_false(m("blog.read", "blog.rea"));
	assert_false(m("blog.read", "blog.write"));
	assert_false(m("", "blog.read"));
}

static void test_wildcards_cover_a_prefix_segment_or_everything(void **state)
{
	(void)state;
	assert_true(m("*", "anything.at.all"));
	assert_true(m("blog.*", "blog.read"));
	assert_true(m("blog.*", "blog.post.delete"));
	assert_false(m("blog.*", "blog"));
	assert_false(m("blog.*", "blogx.read"));
	assert_false(m("blog*", "blog.read"));      /* only ".*" is a wildcard */
	assert_false(m("b*", "blog.read"));
}

static void test_permission_is_length_bounded_not_nul_terminated(void **state)
{
	(void)state;
	/* perm points into a NOTIFY frame: only len bytes count */
	assert_true(authz_grant_matches("user.read", "user.readXXXX", 9));
	assert_false(authz_grant_matches("user.read", "user.readXXXX", 8));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_grant_matches_only_itself),
		cmocka_unit_test(test_wildcards_cover_a_prefix_segment_or_everything),
		cmocka_unit_test(test_permission_is_length_bounded_not_nul_terminated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
