/* Entry point of ddb.core: wires the C pieces into one Lua module and nothing else. */
#include "compat.h"
#include "av.h"
#include "exchange.h"
#include "json.h"
#include "http1.h"
#include "protocol.h"
#include "retry.h"
#include "signer.h"
#include "state.h"
#include "tokens.h"
#include "version.h"
#include "transport_curl.h"
#include "transport_multi.h"
#include "buf.h"

#include <errno.h>
#include <openssl/rand.h>
#include <time.h>

#define DDB_CORE_VERSION "0.1.0"

/* core.encode(value) -> json | nil, reason */
static int core_encode(lua_State *L)
{
    buf out;
    char err[160], local[2048];
    int rc;
    luaL_checkany(L, 1);
    /* a typical request is written on the stack, with no allocation */
    ddb_buf_init_in(&out, local, sizeof local);
    rc = ddb_json_encode(L, 1, &out, err, sizeof err);
    if (rc != 0) {
        ddb_buf_free(&out);
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushlstring(L, out.data, out.len);
    ddb_buf_free(&out);
    return 1;
}

/* core.decode(json [, { exact = bool, max_depth = n }]) -> value | nil, reason. exact reads
 * JSON a person wrote (numbers exact, null as ddb.null, a member given twice refused). */
static int core_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    json_decode_opts o = { NULL, NULL, 0, 0, NULL, NULL, 0 };
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "exact");
        o.exact = lua_toboolean(L, -1);
        if (o.exact)
            o.number = ddb_av_push_exact_number;
        lua_getfield(L, 2, "max_depth");
        o.max_depth = (int)luaL_optinteger(L, -1, 0);
        if (o.max_depth < 0 || o.max_depth > DDB_JSON_MAX_DEPTH)
            return luaL_argerror(L, 2, "max_depth out of range");
        lua_pop(L, 2);
    }
    return ddb_json_decode_opts(L, s, n, &o) ? 1 : 2;
}

static int core_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static int core_monotonic_ms(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec * 1e3 + (lua_Number)ts.tv_nsec / 1e6);
    return 1;
}

/* Blocking sleep for the plain-Lua transport only; yielding transports bring their own. */
static int core_sleep_ms(lua_State *L)
{
    lua_Number ms = luaL_checknumber(L, 1);
    struct timespec ts;
    if (ms <= 0)
        return 0;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)((ms - (lua_Number)ts.tv_sec * 1000) * 1e6);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

/* core.random_bytes(n) -> n bytes from OpenSSL's CSPRNG (write tokens must not collide) */
static int core_random_bytes(lua_State *L)
{
    unsigned char tmp[256];
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n > 0 && n <= (lua_Integer)sizeof tmp, 1, "between 1 and 256");
    if (RAND_bytes(tmp, (int)n) != 1)
        return luaL_error(L, "OpenSSL could not produce random bytes");
    lua_pushlstring(L, (const char *)tmp, (size_t)n);
    return 1;
}

static const char *http1_failure(int r)
{
    return r == HTTP1_TOO_LARGE ? "too large" : r == HTTP1_NO_MEMORY ? "out of memory"
                                                                      : "malformed";
}

/* core.http1_head(bytes) -> { status, head_len, content_length, chunked, close, no_body }
 * | false (incomplete) | nil, "malformed" | "too large": the one-call path's reader of
 * answer heads */
static int core_http1_head(lua_State *L)
{
    size_t n;
    const char *p = luaL_checklstring(L, 1, &n);
    http1_head h;
    int r = ddb_http1_parse_head(p, n, &h);
    if (r <= 0) {
        if (r == 0) {
            lua_pushboolean(L, 0);
            return 1;
        }
        lua_pushnil(L);
        lua_pushstring(L, http1_failure(r));
        return 2;
    }
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, h.status);
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, (lua_Integer)h.head_len);
    lua_setfield(L, -2, "head_len");
    lua_pushinteger(L, (lua_Integer)h.content_length);
    lua_setfield(L, -2, "content_length");
    lua_pushboolean(L, h.chunked);
    lua_setfield(L, -2, "chunked");
    lua_pushboolean(L, h.close);
    lua_setfield(L, -2, "close");
    lua_pushboolean(L, h.no_body);
    lua_setfield(L, -2, "no_body");
    return 1;
}

/* core.http1_dechunk(bytes[, from[, step[, max]]]) -> body, end | false (incomplete) | nil,
 * "malformed" | "too large": decodes a chunked body starting at byte from (1-based); end is
 * its last byte. The bytes go in as pieces of step bytes would arrive (default: all at
 * once), the decoder resuming where it stopped; max bounds the body (default: none). */
static int core_http1_dechunk(lua_State *L)
{
    size_t n, k;
    const char *p = luaL_checklstring(L, 1, &n);
    lua_Integer from = luaL_optinteger(L, 2, 1);
    lua_Integer step = luaL_optinteger(L, 3, (lua_Integer)n + 1);
    lua_Integer max = luaL_optinteger(L, 4, 0);
    http1_chunks c;
    buf out;
    int r = 0;
    luaL_argcheck(L, from >= 1 && (size_t)from <= n + 1, 2, "out of range");
    luaL_argcheck(L, step >= 1, 3, "at least 1");
    luaL_argcheck(L, max >= 0, 4, "not negative");
    ddb_http1_chunks_init(&c, (size_t)max);
    c.pos = (size_t)from - 1;
    ddb_buf_init(&out);
    for (k = c.pos;; k = k + (size_t)step < n ? k + (size_t)step : n) {
        r = ddb_http1_dechunk(&c, p, k, &out);
        if (r != 0 || k == n)
            break;
    }
    if (r == 1) {
        lua_pushlstring(L, out.data ? out.data : "", out.len);
        lua_pushinteger(L, (lua_Integer)c.pos);
    } else if (r == 0) {
        lua_pushboolean(L, 0);
        lua_pushnil(L);
    } else {
        lua_pushnil(L);
        lua_pushstring(L, http1_failure(r));
    }
    ddb_buf_free(&out);
    return 2;
}

static void set_mt_field(lua_State *L, const char *field, const char *name)
{
    luaL_getmetatable(L, name);
    lua_setfield(L, -2, field);
}

DDB_EXPORT int luaopen_ddb_core(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"encode", core_encode},
        {"decode", core_decode},
        {"marshal", ddb_av_lua_marshal},
        {"marshal_item", ddb_av_lua_marshal_item},
        {"key_av", ddb_av_lua_key},
        {"unmarshal", ddb_av_lua_unmarshal},
        {"unmarshal_item", ddb_av_lua_unmarshal_item},
        {"av_equal", ddb_av_lua_equal},
        {"item_size", ddb_av_lua_item_size},
        {"item_av", ddb_av_lua_item_av},
        {"plan_diff", ddb_av_lua_plan_diff},
        {"update_plan", ddb_av_lua_update_plan},
        {"get_body", ddb_av_lua_get_body},
        {"number_canonical", ddb_av_lua_number_canonical},
        {"signer_new", ddb_signer_lua_new},
        {"retry_new", ddb_retry_lua_new},
        {"curl_new", ddb_curlt_lua_new},
        {"multi_new", ddb_multi_lua_new},
        {"parse_response", ddb_proto_lua_parse_response},
        {"error", ddb_proto_lua_error},
        {"crc32", ddb_proto_lua_crc32},
        {"http1_head", core_http1_head},
        {"http1_dechunk", core_http1_dechunk},
        {"exchange_new", ddb_exchange_lua_new},
        {"now", core_now},
        {"monotonic_ms", core_monotonic_ms},
        {"sleep_ms", core_sleep_ms},
        {"random_bytes", core_random_bytes},
        {"history_push", ddb_tokens_lua_history_push},
        {"history_tokens", ddb_tokens_lua_history_tokens},
        {"version_parse", ddb_version_lua_parse},
        {"version_add", ddb_version_lua_add},
        {NULL, NULL}
    };
    ddb_av_register(L);
    ddb_av_doc_register(L);
    ddb_signer_register(L);
    ddb_retry_register(L);
    ddb_curlt_register(L);
    ddb_exchange_register(L);
    luaL_newlib(L, funcs);
    ddb_tokens_register(L);
    ddb_state_register(L);
    lua_newtable(L);
    set_mt_field(L, "list", JSON_LIST_MT);
    set_mt_field(L, "map", JSON_MAP_MT);
    set_mt_field(L, "number", AV_NUMBER_MT);
    set_mt_field(L, "binary", AV_BINARY_MT);
    set_mt_field(L, "null", AV_NULL_MT);
    set_mt_field(L, "string_set", AV_SS_MT);
    set_mt_field(L, "number_set", AV_NS_MT);
    set_mt_field(L, "binary_set", AV_BS_MT);
    lua_setfield(L, -2, "mt");
    lua_getfield(L, LUA_REGISTRYINDEX, AV_NULL_KEY);
    lua_setfield(L, -2, "null");
    lua_pushliteral(L, DDB_CORE_VERSION);
    lua_setfield(L, -2, "_VERSION");
    /* the answer limits, for the Lua transports and the option checks */
    lua_pushinteger(L, CURLT_MAX_ANSWER_DEFAULT);
    lua_setfield(L, -2, "MAX_ANSWER_BYTES");
    lua_pushinteger(L, CURLT_MAX_ANSWER_MIN);
    lua_setfield(L, -2, "MAX_ANSWER_BYTES_MIN");
    lua_pushinteger(L, CURLT_MAX_ANSWER_MAX);
    lua_setfield(L, -2, "MAX_ANSWER_BYTES_MAX");
    lua_pushinteger(L, HTTP1_MAX_HEAD);
    lua_setfield(L, -2, "MAX_HEAD_BYTES");
    return 1;
}
