/* The release every spogate binary reports with --version. */
#ifndef SPOGATE_VERSION_H
#define SPOGATE_VERSION_H

#include <stdio.h>

#define SPOGATE_VERSION "0.2.0"

/* Prints "<prog> <version>" and the SPOP version the agent speaks on f. */
void version_print(FILE *f, const char *prog);

#endif
