/* spogate-gen --reload tells the old worker from the new one by the "Pid:"
 * line of "show info" (config/src/reload.c): the line is found wherever it
 * is, and anything but a plain positive decimal is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "gen.h"

static long pid_of(const char *s)
{
	return gen_reload_info_pid(s, strlen(s));
}

static void test_the_pid_line_of_show_info_is_read(void **state)
{
	(void)state;
	assert_int_equal(pid_of("Name: HAProxy\nVersion: 3.2.26-1\nRelease_date: 2026/10/14\n"
	                        "Nbthread: 2\nNbproc: 1\nProcess_num: 1\nPid: 30905\n"
	                        "Uptime: 0d 0h00m01s\n"), 30905);
	assert_int_equal(pid_of("Pid: 7"), 7);
	assert_int_equal(pid_of("Pid: 4242\r\nUptime: 1\r\n"), 4242);
}

static void test_a_show_info_without_a_sound_pid_is_refused(void **state)
{
	(void)state;
	assert_int_equal(pid_of(""), -1);
	assert_int_equal(pid_of("Unknown command: 'show info'\n"), -1);
	assert_int_equal(pid_of("Pid: \n"), -1);
	assert_int_equal(pid_of("Pid: 0\n"), -1);
	assert_int_equal(pid_of("Pid: -12\n"), -1);
	assert_int_equal(pid_of("Pid: 12x\n"), -1);
	assert_int_equal(pid_of("Pid: 99999999999999999999\n"), -1);
	assert_int_equal(pid_of("XPid: 12\n"), -1);
	/* only the first len bytes count */
	assert_int_equal(gen_reload_info_pid("Pid: 123", 7), 12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_pid_line_of_show_info_is_read),
		cmocka_unit_test(test_a_show_info_without_a_sound_pid_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
