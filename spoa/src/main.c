/*
 * spogate-agent: the SPOE agent.
 *
 *   spogate-agent [-c agent.json] [--listen host:port|unix:/path] [--threads N]
 *                 [--metrics host:port] [--log-level L] [--check]
 *
 * Flags override the file; without a file the agent runs on defaults.
 * SIGTERM/SIGINT drain in-flight decisions and exit 0; SIGHUP reloads keys.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "addr.h"
#include "agent.h"
#include "grpc.h"
#include "log.h"
#include "metrics.h"
#include "stage.h"
#include "stages.h"
#include "version.h"
#include "worker.h"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: spogate-agent [-c agent.json] [--listen host:port|unix:/path] [--threads N]\n"
	        "                     [--metrics host:port] [--log-level error|warn|info|debug]\n"
	        "                     [--check]\n");
}

static void on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct agent *a = w->data;
	int i;

	(void)revents;
	log_info("signal %d: draining %d workers", w->signum, a->nworkers);
	for (i = 0; i < a->nworkers; i++)
		worker_stop(&a->workers[i]);
	ev_break(loop, EVBREAK_ALL);
}

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	/* Keys are swapped atomically; connections and decisions in flight
	 * keep the keys they started with. */
	log_info("SIGHUP: reloading keys");
	stages_reload();
}

static int parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config",    required_argument, NULL, 'c' },
		{ "listen",    required_argument, NULL, 'l' },
		{ "threads",   required_argument, NULL, 't' },
		{ "metrics",   required_argument, NULL, 'm' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "check",     no_argument,       NULL, 'k' },
		{ "help",      no_argument,       NULL, 'h' },
		{ "version",   no_argument,       NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *listen = NULL, *metrics = NULL, *level = NULL;
	struct agent a;
	ev_signal sig_term, sig_int, sig_hup;
	char err[1024];
	long threads = 0;
	int check = 0, opt, i, started = 0, rc = 0;

	memset(&a, 0, sizeof(a));
	a.unix_listener.fd = -1;
	if (stages_install(stage_table, stage_table_len) < 0) {
		fprintf(stderr, "spogate-agent: more than %d stages\n", STAGE_MAX);
		return 1;
	}
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': a.config_path = optarg; break;
		case 'l': listen = optarg; break;
		case 't':
			if (parse_int(optarg, 1, 64, &threads) < 0) {
				fprintf(stderr, "spogate-agent: --threads: \"%s\" is not 1..64\n", optarg);
				return 2;
			}
			break;
		case 'm': metrics = optarg; break;
		case 'L': level = optarg; break;
		case 'k': check = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': version_print(stdout, "spogate-agent"); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	config_defaults(&a.cfg);
	if (a.config_path && config_load(&a.cfg, a.config_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		config_free(&a.cfg);
		return 1;
	}
	if (listen && config_set_listen(&a.cfg, listen) < 0) {
		fprintf(stderr, "spogate-agent: --listen: \"%s\" is not host:port or "
		        "unix:/absolute/path (at most %d bytes)\n", listen, ADDR_UNIX_MAX);
		return 2;
	}
	if (metrics && addr_split(metrics, a.cfg.metrics_host, sizeof(a.cfg.metrics_host),
	                          &a.cfg.metrics_port) < 0) {
		fprintf(stderr, "spogate-agent: --metrics: \"%s\" is not host:port\n", metrics);
		return 2;
	}
	if (threads)
		a.cfg.threads = (int)threads;
	if (level) {
		int l = log_level_parse(level);

		if (l < 0) {
			fprintf(stderr, "spogate-agent: --log-level: \"%s\" is unknown\n", level);
			return 2;
		}
		a.cfg.log_level = l;
	}
	log_threshold = a.cfg.log_level;
	if (stages_configure(&a.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: error: %s\n", a.config_path ? a.config_path : "defaults", err);
		config_free(&a.cfg);
		return 1;
	}
	if (check) {
		printf("%s: configuration is valid\n", a.config_path ? a.config_path : "defaults");
		config_free(&a.cfg);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	a.main_loop = ev_default_loop(0);
	a.nworkers = a.cfg.threads;
	a.workers = calloc((size_t)a.nworkers, sizeof(*a.workers));
	if (!a.workers) {
		log_error("out of memory");
		return 1;
	}
	if (a.cfg.listen_unix[0] && listener_unix_open(&a.unix_listener, a.cfg.listen_unix) < 0) {
		rc = 1;
		goto out;
	}
	for (i = 0; i < a.nworkers; i++) {
		if (worker_init(&a.workers[i], &a, i) < 0) {
			rc = 1;
			goto out;
		}
	}
	/* The workers hold their own copies: once they all stop accepting,
	 * connecting fails at once and HAProxy goes to another agent. */
	listener_unix_close(&a.unix_listener);
	if (stages_start(&a) < 0) {
		rc = 1;
		goto out;
	}
	if (metrics_start(&a) < 0) {
		rc = 1;
		goto out;
	}
	for (i = 0; i < a.nworkers; i++, started++)
		if (worker_start(&a.workers[i]) < 0) {
			rc = 1;
			goto out_stop;
		}

	ev_signal_init(&sig_term, on_stop, SIGTERM);
	ev_signal_init(&sig_int, on_stop, SIGINT);
	ev_signal_init(&sig_hup, on_hup, SIGHUP);
	sig_term.data = sig_int.data = sig_hup.data = &a;
	ev_signal_start(a.main_loop, &sig_term);
	ev_signal_start(a.main_loop, &sig_int);
	ev_signal_start(a.main_loop, &sig_hup);
	if (a.cfg.listen_unix[0])
		log_info("spogate-agent listening on unix:%s with %d threads, max-frame-size %u",
		         a.cfg.listen_unix, a.nworkers, a.cfg.max_frame_size);
	else
		log_info("spogate-agent listening on %s:%d with %d threads, max-frame-size %u",
		         a.cfg.listen_host, a.cfg.listen_port, a.nworkers, a.cfg.max_frame_size);

	ev_run(a.main_loop, 0);
	goto out_join;

 out_stop:
	for (i = 0; i < started; i++)
		worker_stop(&a.workers[i]);
 out_join:
	for (i = 0; i < started; i++)
		worker_join(&a.workers[i]);
	metrics_stop(&a);
	log_info("spogate-agent stopped");
 out:
	/* Calls still in flight complete (their deadline is short) and post to
	 * loops that no longer run; then the stages' state can go. */
	rpc_drain();
	for (i = 0; i < a.nworkers; i++)
		if (a.workers[i].loop)
			worker_run_jobs(&a.workers[i]);
	for (i = 0; i < a.nworkers; i++)
		if (a.workers[i].loop)
			worker_destroy(&a.workers[i]);
	stages_stop(&a);
	rpc_stop();
	listener_unix_remove(&a.unix_listener);
	free(a.workers);
	config_free(&a.cfg);
	return rc;
}
