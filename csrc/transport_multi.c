/* libcurl multi transport: many requests in flight from one Lua state, no threads.
 * add() queues a transfer and returns at once; poll() drives every transfer and hands back
 * the ones that finished. lua/ddb/scheduler.lua turns this into a transport whose request
 * yields. Like transport_curl.c it never calls back into Lua, and it classifies failures
 * the same way (applied "no" only when nothing can have left). */
#include "transport_multi.h"
#include "transport_curl.h"
#include "curl_handle.h"
#include "protocol.h"
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

enum { XFER_FREE, XFER_ACTIVE, XFER_DONE };

typedef struct xfer {
    CURL *easy;
    struct curl_slist *slist;
    curl_sink sink;    /* filled by curl_handle.c's callbacks */
    lua_Integer id;
    int state;
    CURLcode result;
    char errbuf[CURL_ERROR_SIZE];
} xfer;

typedef struct multi {
    CURLM *m;
    xfer **all;         /* every transfer ever made, reused once finished */
    size_t n, cap;
    size_t active;
    lua_Integer next_id;
    long connect_timeout_ms;
    size_t max_answer;
    char *ca_bundle;
    int closed;
} multi;

static multi *check_multi(lua_State *L)
{
    multi *mu = (multi *)luaL_checkudata(L, 1, MULTI_MT);
    if (mu->closed || mu->m == NULL)
        luaL_error(L, "multi transport is closed");
    return mu;
}

static void xfer_reset(xfer *x)
{
    curl_slist_free_all(x->slist);
    x->slist = NULL;
    x->sink.body.len = 0;
    x->sink.head.len = 0;
    /* a large answer should not pin its buffers */
    if (x->sink.body.cap > (1u << 20))
        ddb_buf_free(&x->sink.body);
    if (x->sink.head.cap > (1u << 20))
        ddb_buf_free(&x->sink.head);
    x->state = XFER_FREE;
}

static int multi_close(lua_State *L)
{
    multi *mu = (multi *)luaL_checkudata(L, 1, MULTI_MT);
    size_t i;
    for (i = 0; i < mu->n; i++) {
        xfer *x = mu->all[i];
        if (x->easy != NULL) {
            if (x->state == XFER_ACTIVE && mu->m != NULL)
                curl_multi_remove_handle(mu->m, x->easy);
            curl_easy_cleanup(x->easy);
        }
        curl_slist_free_all(x->slist);
        ddb_buf_free(&x->sink.body);
        ddb_buf_free(&x->sink.head);
        free(x);
    }
    free(mu->all);
    mu->all = NULL;
    mu->n = mu->cap = mu->active = 0;
    if (mu->m != NULL)
        curl_multi_cleanup(mu->m);
    mu->m = NULL;
    free(mu->ca_bundle);
    mu->ca_bundle = NULL;
    mu->closed = 1;
    return 0;
}

/* core.multi_new{ ca_bundle = path, connect_timeout_ms = n, max_connections = n,
 *                 max_answer_bytes = n } */
static int multi_create(lua_State *L)
{
    multi *mu;
    long max_conn = 0;
    if (ddb_curl_handle_global_init() != CURLE_OK)
        return luaL_error(L, "libcurl failed to initialise");
    mu = lua_newuserdata(L, sizeof *mu);
    memset(mu, 0, sizeof *mu);
    luaL_getmetatable(L, MULTI_MT);
    lua_setmetatable(L, -2);
    mu->connect_timeout_ms = 1000;
    mu->max_answer = (size_t)CURLT_MAX_ANSWER_DEFAULT;
    mu->next_id = 1;
    if (lua_istable(L, 1)) {
        lua_getfield(L, 1, "ca_bundle");
        if (!lua_isnil(L, -1)) {
            const char *ca = luaL_checkstring(L, -1);
            mu->ca_bundle = malloc(strlen(ca) + 1);
            if (mu->ca_bundle == NULL)
                return luaL_error(L, "out of memory");
            strcpy(mu->ca_bundle, ca);
        }
        lua_pop(L, 1);
        mu->connect_timeout_ms = ddb_curlt_opt_long(L, 1, "connect_timeout_ms", 1000, 1, 600000);
        max_conn = ddb_curlt_opt_long(L, 1, "max_connections", 0, 0, 1000000);
        mu->max_answer = (size_t)ddb_curlt_opt_long(L, 1, "max_answer_bytes",
                                                    CURLT_MAX_ANSWER_DEFAULT, CURLT_MAX_ANSWER_MIN,
                                                    CURLT_MAX_ANSWER_MAX);
    }
    mu->m = curl_multi_init();
    if (mu->m == NULL)
        return luaL_error(L, "libcurl could not create a multi handle");
    if (max_conn > 0)
        curl_multi_setopt(mu->m, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_conn);
    return 1;
}

/* A finished or never-used transfer, or a new one; NULL when memory runs out. */
static xfer *take_xfer(multi *mu)
{
    size_t i;
    xfer *x;
    for (i = 0; i < mu->n; i++)
        if (mu->all[i]->state == XFER_FREE)
            return mu->all[i];
    if (mu->n == mu->cap) {
        size_t cap = mu->cap ? mu->cap * 2 : 16;
        xfer **p = realloc(mu->all, cap * sizeof *p);
        if (p == NULL)
            return NULL;
        mu->all = p;
        mu->cap = cap;
    }
    x = calloc(1, sizeof *x);
    if (x == NULL)
        return NULL;
    x->easy = curl_easy_init();
    if (x->easy == NULL) {
        free(x);
        return NULL;
    }
    ddb_buf_init(&x->sink.body);
    ddb_buf_init(&x->sink.head);
    x->state = XFER_FREE;
    mu->all[mu->n++] = x;
    return x;
}

/* m:add(url, header_lines, body, timeout_ms) -> id | nil, err. Never blocks. */
static int multi_add(lua_State *L)
{
    multi *mu = check_multi(L);
    const char *url = luaL_checkstring(L, 2);
    size_t body_len;
    const char *body;
    long timeout_ms;
    xfer *x;
    CURL *e;
    CURLMcode mc;

    luaL_checktype(L, 3, LUA_TTABLE);
    body = luaL_checklstring(L, 4, &body_len);
    timeout_ms = (long)luaL_optnumber(L, 5, 10000);
    if (timeout_ms < 1)
        timeout_ms = 1;
    x = take_xfer(mu);
    if (x == NULL)
        return luaL_error(L, "out of memory");
    /* The header list belongs to x from here; a Lua error below leaves it there, freed
     * when x is next reset or the multi is closed. */
    ddb_curlt_build_headers(L, 3, &x->slist);
    e = x->easy;
    x->sink.body.len = 0;
    x->sink.head.len = 0;
    x->errbuf[0] = '\0';
    x->sink.sends = 0;
    x->sink.too_large = SINK_FITS;
    x->sink.max_answer = mu->max_answer;
    x->result = CURLE_OK;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->slist);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)x);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     mu->connect_timeout_ms < timeout_ms ? mu->connect_timeout_ms : timeout_ms);
    ddb_curl_handle_setup(e, &x->sink, x->errbuf, mu->ca_bundle);
    /* a Content-Length over the limit is refused before any of the body is read */
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->sink.max_answer);
    mc = curl_multi_add_handle(mu->m, e);
    if (mc != CURLM_OK) {
        xfer_reset(x);
        lua_pushnil(L);
        ddb_proto_push_error(L, "NetworkError", curl_multi_strerror(mc), 0, PROTO_APPLIED_NO,
                             "transient");
        return 2;
    }
    x->state = XFER_ACTIVE;
    x->id = mu->next_id++;
    mu->active++;
    lua_pushinteger(L, x->id);
    return 1;
}

/* The error of one failed transfer, classified as the easy transport does. */
static void push_error(lua_State *L, xfer *x)
{
    ddb_curlt_push_error(L, x->easy, x->result, x->sink.too_large, x->sink.max_answer, x->errbuf,
                         sizeof x->errbuf);
}

/* Moves every finished transfer out of the multi handle (state DONE). */
static int harvest(multi *mu)
{
    CURLMsg *msg;
    int left, found = 0;
    while ((msg = curl_multi_info_read(mu->m, &left)) != NULL) {
        xfer *x = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x == NULL)
            continue;
        x->result = msg->data.result;
        curl_multi_remove_handle(mu->m, x->easy);
        x->state = XFER_DONE;
        mu->active--;
        found++;
    }
    return found;
}

/* m:poll(timeout_ms) -> list of { id, status, headers, body, maybe_resent } | { id, err }.
 * Waits at most timeout_ms for at least one transfer to finish; returns an empty list when
 * none did (or none is in flight). */
static int multi_poll(lua_State *L)
{
    multi *mu = check_multi(L);
    int timeout = (int)luaL_optinteger(L, 2, 0);
    int running = 0, n = 0;
    size_t i;

    curl_multi_perform(mu->m, &running);
    if (!harvest(mu) && mu->active > 0 && timeout > 0) {
        curl_multi_poll(mu->m, NULL, 0, timeout, NULL);
        curl_multi_perform(mu->m, &running);
        harvest(mu);
    }
    lua_newtable(L);
    for (i = 0; i < mu->n; i++) {
        xfer *x = mu->all[i];
        if (x->state != XFER_DONE)
            continue;
        lua_createtable(L, 0, 5);
        lua_pushinteger(L, x->id);
        lua_setfield(L, -2, "id");
        if (x->result == CURLE_OK) {
            long status = 0;
            curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
            lua_pushinteger(L, status);
            lua_setfield(L, -2, "status");
            ddb_curlt_push_headers(L, &x->sink.head);
            lua_setfield(L, -2, "headers");
            lua_pushlstring(L, x->sink.body.data ? x->sink.body.data : "", x->sink.body.len);
            lua_setfield(L, -2, "body");
            lua_pushboolean(L, 0);     /* on_prereq refuses every silent resend */
            lua_setfield(L, -2, "maybe_resent");
        } else {
            push_error(L, x);
            lua_setfield(L, -2, "err");
        }
        lua_rawseti(L, -2, ++n);
        /* only now: a memory error above leaves it DONE, reported by the next poll */
        xfer_reset(x);
    }
    return 1;
}

/* m:pending() -> transfers in flight */
static int multi_pending(lua_State *L)
{
    multi *mu = check_multi(L);
    lua_pushinteger(L, (lua_Integer)mu->active);
    return 1;
}

static int multi_tostring(lua_State *L)
{
    multi *mu = (multi *)luaL_checkudata(L, 1, MULTI_MT);
    lua_pushfstring(L, "ddb{multi}: %s, %d in flight", mu->closed ? "closed" : "open",
                    (int)mu->active);
    return 1;
}

static void multi_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"add", multi_add},
        {"poll", multi_poll},
        {"pending", multi_pending},
        {"close", multi_close},
        {NULL, NULL}
    };
    if (ddb_compat_newmetatable(L, MULTI_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, multi_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, multi_tostring);
        lua_setfield(L, -2, "__tostring");
#if LUA_VERSION_NUM >= 504
        lua_pushcfunction(L, multi_close);
        lua_setfield(L, -2, "__close");
#endif
    }
    lua_pop(L, 1);
}

/* core.multi_new: registers the metatable on first use, so that ddb_core.c needs only one
 * luaL_Reg entry for this file. */
int ddb_multi_lua_new(lua_State *L)
{
    multi_register(L);
    return multi_create(L);
}
