/* Retry policy: attempt bound, retry quota (token bucket) and full-jitter backoff. No sleeping. */
#ifndef DDB_RETRY_H
#define DDB_RETRY_H

#include <stdint.h>
#include "compat.h"

#define RETRY_MT "ddb{retry}"

typedef struct retry_policy {
    int max_attempts;
    double base_ms;           /* first backoff window for transient errors */
    double throttle_base_ms;  /* first backoff window for throttling */
    double cap_ms;            /* no single wait exceeds this */
    int quota;                /* tokens left */
    int quota_max;
    int retry_cost;
    int timeout_cost;
    uint64_t rng;
} retry_policy;

void retry_init(retry_policy *r, uint64_t seed);
/* Uniform in [0, 1). */
double retry_random(retry_policy *r);
/* Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]. */
double retry_backoff(retry_policy *r, double base_ms, double cap_ms, int attempt);
uint64_t retry_seed(void);

int retry_lua_new(lua_State *L);
void retry_register(lua_State *L);

#endif
