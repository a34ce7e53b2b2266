/*
 * A small parser of HTTP structured-field Lists (RFC 8941 section 4.2.1),
 * enough to check the RateLimit-Policy and RateLimit fields as a client
 * library would read them: items that are strings, tokens, integers or
 * booleans, each with parameters. Inner lists, decimals and byte sequences
 * are refused (the fields never hold them).
 */
#ifndef SPOGATE_HARNESS_SF_H
#define SPOGATE_HARNESS_SF_H

#define H_SF_MAX_ITEMS  8
#define H_SF_MAX_PARAMS 8
#define H_SF_MAX_TEXT   64

enum h_sf_type { H_SF_STRING = 1, H_SF_TOKEN = 2, H_SF_INTEGER = 3, H_SF_BOOLEAN = 4 };

struct h_sf_value {
	enum h_sf_type type;
	long long integer;             /* integers and booleans */
	char text[H_SF_MAX_TEXT];      /* strings and tokens */
};

struct h_sf_item {
	struct h_sf_value v;
	int nparams;
	char key[H_SF_MAX_PARAMS][H_SF_MAX_TEXT];
	struct h_sf_value param[H_SF_MAX_PARAMS];
};

/* Parses s as a List. Returns the number of items (0 for an empty field),
 * or -1 when s is not a valid List of the supported kinds. */
int h_sf_list(const char *s, struct h_sf_item *out, int max);

/* The integer parameter key of it, or -1 when absent or not an integer. */
long long h_sf_param_int(const struct h_sf_item *it, const char *key);

#endif
