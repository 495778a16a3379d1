/* Retry policy in the shape of the AWS SDKs' "standard" mode, sized for DynamoDB. */
#include "retry.h"

#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Defaults and where they come from (see README "Retries"):
 * - 10 attempts: DynamoDB's default in the AWS SDKs (botocore's legacy retry table and the
 *   Java SDK give DynamoDB 10 where other services get 3-5).
 * - 25 ms base: the Java SDK's DynamoDB base delay; 500 ms for throttling errors is the
 *   SDKs' throttled base; we use 100 ms so a request path is not parked for seconds.
 * - 1 s cap: request paths; the SDKs' 20 s cap suits batch jobs and can be set per client.
 * - quota 500 tokens, 5 per retry, 10 per timeout retry, 1 back per success: standard mode. */
static void retry_init(retry_policy *r, uint64_t seed)
{
    r->max_attempts = 10;
    r->base_ms = 25;
    r->throttle_base_ms = 100;
    r->cap_ms = 1000;
    r->quota_max = 500;
    r->quota = 500;
    r->retry_cost = 5;
    r->timeout_cost = 10;
    r->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
}

static uint64_t retry_seed(void)
{
    struct timespec ts;
    uint64_t s;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec ^
        ((uint64_t)getpid() << 32);
    return s ? s : 1;
}

/* Uniform in [0, 1). */
static double retry_random(retry_policy *r)
{
    /* xorshift64*: per-policy state, so threads with their own clients never share it */
    uint64_t x = r->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->rng = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

/* Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]. */
static double retry_backoff(retry_policy *r, double base_ms, double cap_ms, int attempt)
{
    double window;
    if (attempt < 1)
        attempt = 1;
    window = base_ms * ldexp(1.0, attempt > 30 ? 30 : attempt - 1);
    if (window > cap_ms)
        window = cap_ms;
    return retry_random(r) * window;
}

static retry_policy *check_retry(lua_State *L)
{
    return (retry_policy *)luaL_checkudata(L, 1, RETRY_MT);
}

static double opt_field(lua_State *L, int t, const char *name, double def, double lo, double hi)
{
    double v;
    lua_getfield(L, t, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "retry option '%s' must be a number", name);
    v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(v >= lo && v <= hi))
        luaL_error(L, "retry option '%s' must be between %f and %f", name, lo, hi);
    return v;
}

/* core.retry_new{ max_attempts=, base_ms=, throttle_base_ms=, cap_ms=, quota=, seed= } */
int ddb_retry_lua_new(lua_State *L)
{
    retry_policy *r;
    int t = lua_istable(L, 1) ? 1 : 0;
    if (!t && !lua_isnoneornil(L, 1))
        return luaL_argerror(L, 1, "retry options must be a table");
    r = lua_newuserdata(L, sizeof *r);
    memset(r, 0, sizeof *r);
    retry_init(r, retry_seed());
    luaL_getmetatable(L, RETRY_MT);
    lua_setmetatable(L, -2);
    if (t) {
        r->max_attempts = (int)opt_field(L, t, "max_attempts", r->max_attempts, 1, 100);
        r->base_ms = opt_field(L, t, "base_ms", r->base_ms, 0, 60000);
        r->throttle_base_ms = opt_field(L, t, "throttle_base_ms", r->throttle_base_ms, 0, 60000);
        r->cap_ms = opt_field(L, t, "cap_ms", r->cap_ms, 0, 600000);
        r->quota_max = (int)opt_field(L, t, "quota", r->quota_max, 0, 1e9);
        r->quota = r->quota_max;
        r->rng = (uint64_t)opt_field(L, t, "seed", 0, 0, 9007199254740992.0);
        if (r->rng == 0)
            r->rng = retry_seed();
    }
    return 1;
}

/* policy:next(attempt, retry_class) -> delay_ms | nil, reason
 * attempt is the number of the attempt that just failed. Takes quota on success. */
static int retry_next(lua_State *L)
{
    retry_policy *r = check_retry(L);
    int attempt = (int)luaL_checkinteger(L, 2);
    const char *cls = luaL_checkstring(L, 3);
    int cost;
    double base;
    if (strcmp(cls, "none") == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "not retryable");
        return 2;
    }
    if (attempt >= r->max_attempts) {
        lua_pushnil(L);
        lua_pushliteral(L, "max_attempts");
        return 2;
    }
    cost = strcmp(cls, "timeout") == 0 ? r->timeout_cost : r->retry_cost;
    /* throttling is the server asking for less traffic: it never drains the quota, and
     * reports a cost of 0 so that success(spent) gives back only what was taken */
    if (strcmp(cls, "throttle") == 0) {
        cost = 0;
    } else {
        if (r->quota < cost) {
            lua_pushnil(L);
            lua_pushliteral(L, "retry_quota");
            return 2;
        }
        r->quota -= cost;
    }
    base = strcmp(cls, "throttle") == 0 ? r->throttle_base_ms : r->base_ms;
    lua_pushnumber(L, retry_backoff(r, base, r->cap_ms, attempt));
    lua_pushinteger(L, cost);
    return 2;
}

/* policy:success(refund) -- a success after retries returns what they took; others 1 token */
static int retry_success(lua_State *L)
{
    retry_policy *r = check_retry(L);
    lua_Integer refund = luaL_optinteger(L, 2, 1);
    luaL_argcheck(L, refund >= 0, 2, "refund must not be negative");
    /* compared before adding: a huge refund must not overflow the int */
    if (refund >= (lua_Integer)(r->quota_max - r->quota))
        r->quota = r->quota_max;
    else
        r->quota += (int)refund;
    return 0;
}

/* policy:backoff(base_ms, cap_ms, attempt) -> ms, for callers with their own loops */
static int retry_lua_backoff(lua_State *L)
{
    retry_policy *r = check_retry(L);
    double base = luaL_checknumber(L, 2), cap = luaL_checknumber(L, 3);
    int attempt = (int)luaL_checkinteger(L, 4);
    lua_pushnumber(L, retry_backoff(r, base, cap, attempt));
    return 1;
}

static int retry_info(lua_State *L)
{
    retry_policy *r = check_retry(L);
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, r->max_attempts);
    lua_setfield(L, -2, "max_attempts");
    lua_pushnumber(L, r->base_ms);
    lua_setfield(L, -2, "base_ms");
    lua_pushnumber(L, r->throttle_base_ms);
    lua_setfield(L, -2, "throttle_base_ms");
    lua_pushnumber(L, r->cap_ms);
    lua_setfield(L, -2, "cap_ms");
    lua_pushinteger(L, r->quota);
    lua_setfield(L, -2, "quota");
    lua_pushinteger(L, r->quota_max);
    lua_setfield(L, -2, "quota_max");
    return 1;
}

static int retry_random_lua(lua_State *L)
{
    lua_pushnumber(L, retry_random(check_retry(L)));
    return 1;
}

void ddb_retry_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"next", retry_next},
        {"success", retry_success},
        {"backoff", retry_lua_backoff},
        {"info", retry_info},
        {"random", retry_random_lua},
        {NULL, NULL}
    };
    if (ddb_compat_newmetatable(L, RETRY_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}
