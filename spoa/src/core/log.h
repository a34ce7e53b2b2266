/*
 * Logging to stderr, one line per event, with a level threshold that is
 * read without a lock (it only changes at start-up).
 */
#ifndef SPOGATE_LOG_H
#define SPOGATE_LOG_H

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN  = 1,
	LOG_LVL_INFO  = 2,
	LOG_LVL_DEBUG = 3,
};

extern int log_threshold;

/* Parses "error", "warn", "info", "debug". Returns the level or -1. */
int log_level_parse(const char *s);

void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_threshold >= LOG_LVL_DEBUG) \
		log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

#endif
