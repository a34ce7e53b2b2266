/*
 * spogate-refsvc: the reference Auth and Authz service (stand-in for the
 * platform's real services in tests, `make run` and compose), plus the
 * token tools developers need around it.
 *
 *   spogate-refsvc serve --listen 127.0.0.1:9081 [--admin 127.0.0.1:9082]
 *                        [--jwks FILE] [--key PEM [--kid K] [--alg A]]...
 *                        [--issuer ISS] [--audience AUD]... [--policy FILE]
 *                        [--delay-ms N]
 *   spogate-refsvc mint --sub alice --key FILE --alg RS256 [--kid k1]
 *                       [--ttl 1h] [--iss ..] [--aud ..] [--roles a,b]
 *                       [--permissions a,b] [--scope "a b"] [--claim k=v]...
 *                       [--nbf T] [--exp T] [--iat T]
 *   spogate-refsvc keygen --dir DIR [--tag 1]
 *
 * The admin port answers GET /calls with {"validate":N,"check":M},
 * GET /reset (zeroes the counters) and GET /delay?ms=N (slows every
 * answer, for deadline tests).
 */
#ifndef SPOGATE_REFSVC_H
#define SPOGATE_REFSVC_H

int refsvc_serve(int argc, char **argv);
int refsvc_mint(int argc, char **argv);
int refsvc_keygen(int argc, char **argv);

/* "1h", "30m", "45s", "120" (seconds). Returns 0 or -1. */
int refsvc_parse_duration(const char *s, long long *out);

#endif
