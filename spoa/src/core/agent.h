/*
 * The agent process: configuration, worker threads and the main loop that
 * owns signals and the metrics listener.
 */
#ifndef SPOGATE_AGENT_H
#define SPOGATE_AGENT_H

#include <ev.h>

#include "config.h"
#include "listener.h"

struct worker;

struct agent {
	struct agent_config cfg;
	struct worker *workers;
	int nworkers;
	struct ev_loop *main_loop;
	const char *config_path;       /* NULL when running on defaults */
	struct listener_unix unix_listener; /* with cfg.listen_unix */
};

#endif
