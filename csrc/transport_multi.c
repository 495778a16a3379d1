/* The scheduler's transport: many requests in flight from one Lua state, no threads.
 * call() signs a DynamoDB request and starts it on the scheduler's own HTTP/1.1 (pool.c: a
 * connection libcurl made, the bytes moved and the answer read by the module, as the one-call
 * path does); add() starts any other request as one of libcurl's own transfers on its multi
 * interface, as do calls to a URL the own HTTP/1.1 does not serve (a path, a proxy). poll()
 * moves everything and names what finished; finish() gives a finished one's result, in the
 * shape of the blocking transport's request() or call(). lua/ddb/scheduler.lua turns this
 * into a transport that yields. Like transport_curl.c it never calls back into Lua, and it
 * classifies failures the same way (applied "no" only when nothing can have left). */
#include "transport_multi.h"
#include "transport_curl.h"
#include "curl_handle.h"
#include "protocol.h"
#include "signer.h"
#include "wire.h"
#include "pool.h"
#include "http1.h"
#include "buf.h"

#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

enum { OP_FREE, OP_ACTIVE, OP_DONE };
/* what finish() returns for an op: request()'s results or call()'s */
enum { SHAPE_REQUEST, SHAPE_CALL };

typedef struct op op;
struct op {
    int state;
    int shape;
    int own;             /* on the pool's own HTTP/1.1, not a libcurl transfer */
    lua_Integer id;      /* its index in the multi's list, plus one */
    /* a libcurl transfer */
    CURL *easy;
    struct curl_slist *slist;
    curl_sink sink;      /* filled by curl_handle.c's callbacks */
    CURLcode result;
    char errbuf[CURL_ERROR_SIZE];
    /* a call on the pool */
    pool_call call;
    struct op *next_free;    /* FREE (every FREE op is listed): the next on the free list */
};

typedef struct multi {
    CURLM *m;            /* libcurl's own transfers */
    op **all;            /* every op ever made, reused once finished */
    size_t n, cap;
    op *free_ops;        /* the FREE ones, the last freed first */
    size_t active;       /* libcurl transfers in flight */
    pool pool;           /* the own HTTP/1.1's connections */
    struct curl_waitfd *wfds;   /* the pool's sockets, for curl_multi_poll */
    size_t capwfds;
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

/* A large answer should not pin its buffers. */
static void shrink(buf *b)
{
    if (b->cap > (1u << 20))
        ddb_buf_free(b);
}

/* o on the multi's free list; it is FREE from now until activate() */
static void list_free(multi *mu, op *o)
{
    o->next_free = mu->free_ops;
    mu->free_ops = o;
    o->state = OP_FREE;
}

static void op_reset(multi *mu, op *o)
{
    curl_slist_free_all(o->slist);
    o->slist = NULL;
    o->sink.body.len = 0;
    o->sink.head.len = 0;
    shrink(&o->sink.body);
    shrink(&o->sink.head);
    shrink(&o->call.out);
    shrink(&o->call.in);
    shrink(&o->call.body);
    o->call.state = PCALL_IDLE;
    if (o->state != OP_FREE)   /* a FREE one (not started after all) is listed already */
        list_free(mu, o);
}

static int multi_close(lua_State *L)
{
    multi *mu = (multi *)luaL_checkudata(L, 1, MULTI_MT);
    size_t i;
    ddb_pool_close(&mu->pool);
    for (i = 0; i < mu->n; i++) {
        op *o = mu->all[i];
        if (o->easy != NULL) {
            if (o->state == OP_ACTIVE && !o->own && mu->m != NULL)
                curl_multi_remove_handle(mu->m, o->easy);
            curl_easy_cleanup(o->easy);
        }
        curl_slist_free_all(o->slist);
        ddb_buf_free(&o->sink.body);
        ddb_buf_free(&o->sink.head);
        ddb_pool_call_free(&o->call);
        free(o);
    }
    free(mu->all);
    mu->all = NULL;
    mu->free_ops = NULL;
    mu->n = mu->cap = mu->active = 0;
    free(mu->wfds);
    mu->wfds = NULL;
    mu->capwfds = 0;
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
    if (ddb_pool_init(&mu->pool, mu->ca_bundle, mu->connect_timeout_ms, mu->max_answer,
                      (size_t)max_conn) != 0)
        return luaL_error(L, "libcurl could not create a share handle");
    mu->m = curl_multi_init();
    if (mu->m == NULL)
        return luaL_error(L, "libcurl could not create a multi handle");
    if (max_conn > 0)
        curl_multi_setopt(mu->m, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_conn);
    return 1;
}

/* A finished or never-used op, or a new one: the free list's first, so that no call scans
 * them all. It stays listed until activate(), so that a Lua error raised between the two
 * leaves it there for the next call. NULL when memory runs out. */
static op *take_op(multi *mu)
{
    op *o = mu->free_ops;
    if (o != NULL)
        return o;
    if (mu->n == mu->cap) {
        size_t cap = mu->cap ? mu->cap * 2 : 16;
        op **p = realloc(mu->all, cap * sizeof *p);
        if (p == NULL)
            return NULL;
        mu->all = p;
        mu->cap = cap;
    }
    o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    ddb_buf_init(&o->sink.body);
    ddb_buf_init(&o->sink.head);
    ddb_pool_call_init(&o->call);
    o->id = (lua_Integer)mu->n + 1;
    mu->all[mu->n++] = o;
    list_free(mu, o);
    return o;
}

/* o (take_op's, nothing taken since) in flight: off the free list. */
static void activate(multi *mu, op *o)
{
    if (o->state == OP_FREE) {
        op **at = &mu->free_ops;
        while (*at != o)   /* the first, but for a caller that broke the rule */
            at = &(*at)->next_free;
        *at = o->next_free;
        o->next_free = NULL;
    }
    o->state = OP_ACTIVE;
}

static int push_start_error(lua_State *L, const char *message)
{
    lua_pushnil(L);
    ddb_proto_push_error(L, "NetworkError", message, 0, PROTO_APPLIED_NO, "transient");
    return 2;
}

/* Starts o as a libcurl transfer (its header list in o->slist): id | nil, err. */
static int start_transfer(lua_State *L, multi *mu, op *o, const char *url, const char *body,
                          size_t body_len, long timeout_ms)
{
    CURL *e;
    CURLMcode mc;
    if (o->easy == NULL && (o->easy = curl_easy_init()) == NULL) {
        op_reset(mu, o);
        return push_start_error(L, "libcurl could not create a handle");
    }
    e = o->easy;
    o->own = 0;
    o->sink.body.len = 0;
    o->sink.head.len = 0;
    o->errbuf[0] = '\0';
    o->sink.sends = 0;
    o->sink.too_large = SINK_FITS;
    o->sink.max_answer = mu->max_answer;
    o->result = CURLE_OK;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, o->slist);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)o);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     mu->connect_timeout_ms < timeout_ms ? mu->connect_timeout_ms : timeout_ms);
    ddb_curl_handle_setup(e, &o->sink, o->errbuf, mu->ca_bundle);
    /* a Content-Length over the limit is refused before any of the body is read */
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->sink.max_answer);
    mc = curl_multi_add_handle(mu->m, e);
    if (mc != CURLM_OK) {
        op_reset(mu, o);
        return push_start_error(L, curl_multi_strerror(mc));
    }
    activate(mu, o);
    mu->active++;
    lua_pushinteger(L, o->id);
    return 1;
}

/* m:add(url, header_lines, body, timeout_ms) -> id | nil, err. Never blocks; finish(id)
 * gives request()'s results: status, headers, body, maybe_resent | nil, err. */
static int multi_add(lua_State *L)
{
    multi *mu = check_multi(L);
    const char *url = luaL_checkstring(L, 2);
    size_t body_len;
    const char *body;
    long timeout_ms;
    op *o;

    luaL_checktype(L, 3, LUA_TTABLE);
    body = luaL_checklstring(L, 4, &body_len);
    timeout_ms = ddb_curlt_timeout_arg(L, 5);
    o = take_op(mu);
    if (o == NULL)
        return luaL_error(L, "out of memory");
    /* The header list belongs to o from here; a Lua error below leaves it there, freed
     * when o is next reset or the multi is closed. */
    ddb_curlt_build_headers(L, 3, &o->slist);
    o->shape = SHAPE_REQUEST;
    return start_transfer(L, mu, o, url, body, body_len, timeout_ms);
}

/* m:call(signer, url, operation, body, timeout_ms) -> id | nil, err: a DynamoDB request
 * signed and started; finish(id, plain) gives the blocking transport's call() results. Never
 * blocks. */
static int multi_call(lua_State *L)
{
    multi *mu = check_multi(L);
    signer *s = ddb_signer_check(L, 2);
    const char *url = luaL_checkstring(L, 3);
    size_t oplen, body_len;
    const char *opname = luaL_checklstring(L, 4, &oplen);
    const char *body = luaL_checklstring(L, 5, &body_len);
    long timeout_ms = ddb_curlt_timeout_arg(L, 6);
    signer_lines lines;
    op *o;

    /* signing may raise: before anything is taken */
    ddb_signer_sign(L, s, opname, oplen, body, body_len, 0, &lines);
    o = take_op(mu);
    if (o == NULL)
        return luaL_error(L, "out of memory");
    o->shape = SHAPE_CALL;
    if (!ddb_wire_accepts(url)) {
        if (ddb_curlt_copy_lines(lines.line, (size_t)lines.n, &o->slist) != 0) {
            op_reset(mu, o);
            return push_start_error(L, "out of memory building the request (nothing was sent)");
        }
        return start_transfer(L, mu, o, url, body, body_len, timeout_ms);
    }
    o->own = 1;
    if (ddb_http1_post(&o->call.out, "/", 1, lines.line, (size_t)lines.n, body, body_len) != 0 ||
        ddb_pool_start(&mu->pool, &o->call, url, timeout_ms) != 0) {
        op_reset(mu, o);
        return push_start_error(L, "out of memory building the request (nothing was sent)");
    }
    activate(mu, o);
    lua_pushinteger(L, o->id);
    return 1;
}

/* Moves every finished libcurl transfer out of the multi handle (DONE), listing its id in
 * the table at the top of the stack after the n there; returns the new count. */
static int harvest(lua_State *L, multi *mu, int n)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(mu->m, &left)) != NULL) {
        op *o = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&o);
        if (o == NULL)
            continue;
        o->result = msg->data.result;
        curl_multi_remove_handle(mu->m, o->easy);
        o->state = OP_DONE;
        mu->active--;
        lua_pushinteger(L, o->id);
        lua_rawseti(L, -2, ++n);
    }
    return n;
}

/* The same for the pool's calls that ended. */
static int harvest_pool(lua_State *L, multi *mu, int n)
{
    size_t i, k;
    pool_call **done = ddb_pool_take_finished(&mu->pool, &k);
    for (i = 0; i < k; i++) {
        op *o = (op *)(void *)((char *)done[i] - offsetof(op, call));
        o->state = OP_DONE;
        lua_pushinteger(L, o->id);
        lua_rawseti(L, -2, ++n);
    }
    return n;
}

/* Waits up to timeout_ms on the pool's sockets, and on libcurl's when transfers are in
 * flight (then the pool's wait set, one epoll descriptor on Linux, is among curl_multi_poll's
 * extra descriptors), then moves what is ready. */
static void wait_and_move(multi *mu, int timeout_ms)
{
    pool *p = &mu->pool;
    size_t i;
    if (ddb_pool_busy(p) > 0 && ddb_pool_wait_set(p, &timeout_ms) != 0)
        timeout_ms = 0;   /* no memory for the poll set: only what is ready without waiting */
    if (mu->active > 0) {
        int running = 0;
        if (p->nfds > mu->capwfds) {
            struct curl_waitfd *w = realloc(mu->wfds, p->nfds * sizeof *w);
            if (w == NULL) {
                p->nfds = 0;   /* the pool waits for the next pass */
            } else {
                mu->wfds = w;
                mu->capwfds = p->nfds;
            }
        }
        for (i = 0; i < p->nfds; i++) {
            mu->wfds[i].fd = p->fds[i].fd;
            mu->wfds[i].events = p->fds[i].events;
            mu->wfds[i].revents = 0;
        }
        curl_multi_poll(mu->m, mu->wfds, (unsigned)p->nfds, timeout_ms, NULL);
        for (i = 0; i < p->nfds; i++)
            p->fds[i].revents = mu->wfds[i].revents;
        curl_multi_perform(mu->m, &running);
    } else if (ddb_pool_busy(p) > 0) {
        ddb_pool_wait(p, timeout_ms);
    }
    if (ddb_pool_busy(p) > 0)
        ddb_pool_progress(p);
}

/* m:poll(timeout_ms, list) -> n: moves every request in flight, waiting at most timeout_ms
 * for one to finish when none has, and lists the ids of those that finished in list[1..n]
 * (list is the caller's, reused; entries past n are left as they were). */
static int multi_poll(lua_State *L)
{
    multi *mu = check_multi(L);
    int timeout = (int)luaL_optinteger(L, 2, 0);
    int running = 0, n = 0;

    luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    if (mu->active > 0) {
        curl_multi_perform(mu->m, &running);
        n = harvest(L, mu, n);
    }
    n = harvest_pool(L, mu, n);
    if (mu->active > 0 || ddb_pool_busy(&mu->pool) > 0) {
        wait_and_move(mu, n > 0 ? 0 : timeout < 0 ? 0 : timeout);
        n = harvest(L, mu, n);
        n = harvest_pool(L, mu, n);
    }
    lua_pushinteger(L, n);
    return 1;
}

/* The results of a finished libcurl transfer. */
static int finish_transfer(lua_State *L, multi *mu, op *o, const char *plain)
{
    long status = 0;
    if (o->result != CURLE_OK) {
        lua_pushnil(L);
        ddb_curlt_push_error(L, o->easy, o->result, o->sink.too_large, o->sink.max_answer,
                             o->errbuf, sizeof o->errbuf);
        return 2;
    }
    curl_easy_getinfo(o->easy, CURLINFO_RESPONSE_CODE, &status);
    if (o->shape == SHAPE_CALL)   /* resent: never (on_prereq) */
        return ddb_curlt_push_answer(L, (int)status, &o->sink.head,
                                     o->sink.body.data ? o->sink.body.data : "",
                                     o->sink.body.len, plain, 0);
    (void)mu;
    lua_pushinteger(L, status);
    ddb_curlt_push_headers(L, &o->sink.head);
    lua_pushlstring(L, o->sink.body.data ? o->sink.body.data : "", o->sink.body.len);
    lua_pushboolean(L, 0);     /* maybe_resent: on_prereq refuses every silent resend */
    return 4;
}

/* The results of a finished call on the pool. */
static int finish_own(lua_State *L, multi *mu, op *o, const char *plain)
{
    pool_call *c = &o->call;
    buf head;
    const char *body;
    size_t len;
    switch (c->failed) {
    case PCALL_CONNECT_FAILED:
        /* no easy handle: nothing had been sent, whatever the code */
        lua_pushnil(L);
        ddb_curlt_push_error(L, NULL, c->rc, SINK_FITS, mu->max_answer, c->message,
                             sizeof c->message);
        return 2;
    case PCALL_FAILED:
        lua_pushnil(L);
        ddb_curlt_push_failure(L, c->code, c->message, c->applied, c->retry_class, CURLE_OK);
        return 2;
    default:
        break;
    }
    head = ddb_buf_view(c->in.data, c->ans.head.head_len);
    body = ddb_answer_body(&c->ans, &len);
    return ddb_curlt_push_answer(L, c->ans.head.status, &head, body, len, plain, 0);
}

/* m:finish(id[, plain]) -> the results of a finished request (add: request()'s; call:
 * call()'s, plain naming a member of the answer to give as plain values), once. */
static int multi_finish(lua_State *L)
{
    multi *mu = check_multi(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    const char *plain = luaL_optstring(L, 3, NULL);
    op *o;
    int nret;
    if (id < 1 || (size_t)id > mu->n || mu->all[id - 1]->state != OP_DONE)
        return luaL_error(L, "no finished request %d", (int)id);
    o = mu->all[id - 1];
    nret = o->own ? finish_own(L, mu, o, plain) : finish_transfer(L, mu, o, plain);
    /* only now: a memory error above leaves it DONE, for another finish or close */
    op_reset(mu, o);
    return nret;
}

/* m:pending() -> requests in flight, and finished ones the next poll() will name */
static int multi_pending(lua_State *L)
{
    multi *mu = check_multi(L);
    lua_pushinteger(L, (lua_Integer)(mu->active + ddb_pool_busy(&mu->pool) +
                                     mu->pool.nfinished));
    return 1;
}

/* m:stats() -> { connections = the own HTTP/1.1's connections made, open = those open now } */
static int multi_stats(lua_State *L)
{
    multi *mu = check_multi(L);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)mu->pool.connects);
    lua_setfield(L, -2, "connections");
    lua_pushinteger(L, (lua_Integer)mu->pool.open);
    lua_setfield(L, -2, "open");
    return 1;
}

static int multi_tostring(lua_State *L)
{
    multi *mu = (multi *)luaL_checkudata(L, 1, MULTI_MT);
    lua_pushfstring(L, "ddb{multi}: %s, %d in flight", mu->closed ? "closed" : "open",
                    (int)(mu->active + ddb_pool_busy(&mu->pool)));
    return 1;
}

static void multi_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"add", multi_add},
        {"call", multi_call},
        {"poll", multi_poll},
        {"finish", multi_finish},
        {"pending", multi_pending},
        {"stats", multi_stats},
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
