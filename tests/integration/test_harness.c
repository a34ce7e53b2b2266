/*
 * The harness leaks nothing: a test's processes end with it, whether it
 * fails, is killed by tests/run.sh's timeout (SIGTERM, then SIGKILL) or
 * returns without a teardown; and tests/run.sh counts a test that leaves a
 * process behind as a failure and kills that process.
 *
 * The "tests" here are this binary run again as a child with --hang,
 * --exit or --leak: each starts a real process (spogate-echo), writes its
 * pid to a file, and then hangs, exits without stopping it, or starts one
 * the harness does not know about.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static char self[4096];
/* What tests/run.sh runs: a link to this binary under another name, so
 * that its log is not this test's own log. */
static const char link_path[] = "/tmp/spogate-harness-child";

/* Child modes: start a stack with one echo, write its pid to pidfile. */
static int child(const char *mode, const char *pidfile)
{
	struct h_stack s;
	struct h_proc *p;
	FILE *f;

	h_stack_init(&s, "harness_child");
	p = h_start_echo(&s, "echo", s.echo_port);
	f = fopen(pidfile, "w");
	if (!f)
		return 3;
	fprintf(f, "%d\n", (int)p->pid);
	fclose(f);
	if (strcmp(mode, "--exit") == 0)
		return 1;               /* a failed test that skipped its teardown */
	if (strcmp(mode, "--leak") == 0) {
		/* a process started behind the harness's back, in its own
		 * group, that outlives the test */
		if (fork() == 0) {
			setpgid(0, 0);
			execl("/bin/sleep", "sleep", "300", (char *)NULL);
			_exit(127);
		}
		h_stack_stop(&s);
		return 0;
	}
	for (;;)
		pause();                /* --hang */
}

static pid_t read_pid(const char *path)
{
	FILE *f = fopen(path, "r");
	int pid = 0;

	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid;
}

static int gone(pid_t pid)
{
	int i;

	for (i = 0; i < 100; i++) {
		if (kill(pid, 0) < 0)
			return 1;
		usleep(20000);
	}
	return 0;
}

/* Runs this binary with mode in the background; returns its pid once the
 * echo it starts has written its pid to pidfile (*echo). */
static pid_t run_child(const char *mode, const char *pidfile, pid_t *echo)
{
	pid_t pid;
	int i;

	unlink(pidfile);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl(self, self, mode, pidfile, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 250 && !(*echo = read_pid(pidfile)); i++)
		usleep(20000);
	assert_true(*echo > 0);
	return pid;
}

static void test_sigterm_stops_the_stack(void **state)
{
	char pf[] = "/tmp/spogate-harness-term.pid";
	pid_t echo, pid = run_child("--hang", pf, &echo);
	int st;

	(void)state;
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
	assert_true(gone(echo));
	unlink(pf);
}

static void test_sigkill_of_the_test_kills_its_children(void **state)
{
	char pf[] = "/tmp/spogate-harness-kill.pid";
	pid_t echo, pid = run_child("--hang", pf, &echo);

	(void)state;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	assert_true(gone(echo));
	unlink(pf);
}

static void test_exit_without_teardown_stops_the_stack(void **state)
{
	char pf[] = "/tmp/spogate-harness-exit.pid";
	pid_t echo, pid = run_child("--exit", pf, &echo);
	int st;

	(void)state;
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	assert_true(gone(echo));
	unlink(pf);
}

static void test_run_sh_times_out_and_reaps(void **state)
{
	char pf[] = "/tmp/spogate-harness-timeout.pid", *out = NULL;
	pid_t echo;

	(void)state;
	unlink(pf);
	/* tests/run.sh one: the hanging child under a 3 s timeout */
	assert_int_not_equal(h_run(&out, "BUILD=%s TEST_TIMEOUT=3 tests/run.sh one %s --hang %s 2>&1",
	                           getenv("BUILD") ? getenv("BUILD") : "build", link_path, pf), 0);
	echo = read_pid(pf);
	assert_true(echo > 0);
	assert_true(gone(echo));
	/* the timeout alone: the harness had stopped the echo itself */
	assert_non_null(strstr(out, "0 passed, 1 failed"));
	free(out);
	assert_int_equal(h_run(&out, "grep -c 'timed out after 3s' %s/test-logs/spogate-harness-child.log",
	                       getenv("BUILD") ? getenv("BUILD") : "build"), 0);
	free(out);
	unlink(pf);
}

static void test_run_sh_reports_and_kills_a_leak(void **state)
{
	char pf[] = "/tmp/spogate-harness-leak.pid", *out = NULL;

	(void)state;
	unlink(pf);
	assert_int_not_equal(h_run(&out, "BUILD=%s tests/run.sh one %s --leak %s 2>&1",
	                           getenv("BUILD") ? getenv("BUILD") : "build", link_path, pf), 0);
	assert_non_null(strstr(out, "left processes running"));
	assert_non_null(strstr(out, "0 passed, 1 failed"));
	free(out);
	unlink(pf);
}

int main(int argc, char **argv)
{
	int rc;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sigterm_stops_the_stack),
		cmocka_unit_test(test_sigkill_of_the_test_kills_its_children),
		cmocka_unit_test(test_exit_without_teardown_stops_the_stack),
		cmocka_unit_test(test_run_sh_times_out_and_reaps),
		cmocka_unit_test(test_run_sh_reports_and_kills_a_leak),
	};

	if (!realpath(argv[0], self))
		return 2;
	if (argc == 3)
		return child(argv[1], argv[2]);
	unlink(link_path);
	if (symlink(self, link_path) < 0)
		return 2;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(link_path);
	return rc;
}
