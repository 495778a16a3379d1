/* Retry policy: attempt bound, retry quota (token bucket) and full-jitter backoff. No sleeping. */
#ifndef DDB_RETRY_H
#define DDB_RETRY_H

#include <stdint.h>
#include "compat.h"
#include "visibility.h"

DDB_HIDDEN_BEGIN

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

int ddb_retry_lua_new(lua_State *L);
void ddb_retry_register(lua_State *L);

DDB_HIDDEN_END

#endif
