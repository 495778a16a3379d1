/* The HTTP/1.1 of a transport that moves bytes itself in Lua (ddb.transport.ngx): the request
 * built in one buffer, the answer read by answer.c as the bytes arrive, and the result
 * parsed as the libcurl transport's call() parses it. No I/O and no call into Lua, so a
 * cosocket may yield between any two calls. */
#include "exchange.h"
#include "answer.h"
#include "signer.h"
#include "protocol.h"
#include "transport_curl.h"

#include <stdio.h>
#include <string.h>

typedef struct exchange {
    buf out;                 /* the request */
    buf in;                  /* the answer as received */
    buf body;                /* a chunked answer's body, decoded */
    answer ans;
    size_t max;
    int state;               /* what the answer is: one of the below */
} exchange;

enum { X_IDLE = 0, X_READING, X_DONE, X_FAILED };

static exchange *check_exchange(lua_State *L)
{
    exchange *x = (exchange *)luaL_checkudata(L, 1, EXCHANGE_MT);
    return x;
}

/* core.exchange_new(max_answer_bytes) -> exchange */
int ddb_exchange_lua_new(lua_State *L)
{
    lua_Integer max = luaL_checkinteger(L, 1);
    exchange *x;
    luaL_argcheck(L, max >= 1, 1, "at least 1");
    x = (exchange *)lua_newuserdata(L, sizeof *x);
    memset(x, 0, sizeof *x);
    ddb_buf_init(&x->out);
    ddb_buf_init(&x->in);
    ddb_buf_init(&x->body);
    x->max = (size_t)max;
    luaL_getmetatable(L, EXCHANGE_MT);
    lua_setmetatable(L, -2);
    return 1;
}

static int exchange_gc(lua_State *L)
{
    exchange *x = check_exchange(L);
    ddb_buf_free(&x->out);
    ddb_buf_free(&x->in);
    ddb_buf_free(&x->body);
    x->state = X_IDLE;
    return 0;
}

/* A large answer should not pin its buffers while the exchange waits in a pool; once they
 * are freed, the answer is gone (a new one must be started). */
static void shrink(exchange *x)
{
    if (x->in.cap <= (1u << 20) && x->body.cap <= (1u << 20))
        return;
    ddb_buf_free(&x->in);
    ddb_buf_free(&x->body);
    x->state = X_IDLE;
}

static void start(exchange *x)
{
    shrink(x);
    ddb_answer_start(&x->ans, &x->in, &x->body, x->max);
    x->state = X_READING;
}

/* x:start() begins reading a new answer (for a request built elsewhere). */
static int exchange_start(lua_State *L)
{
    start(check_exchange(L));
    return 0;
}

/* x:request(signer, operation, body[, path]) -> the whole signed DynamoDB request, as one
 * string ("POST path HTTP/1.1", the signer's lines, Content-Length, the body), and begins
 * reading its answer. */
static int exchange_request(lua_State *L)
{
    exchange *x = check_exchange(L);
    signer *s = ddb_signer_check(L, 2);
    size_t oplen, body_len, path_len;
    const char *op = luaL_checklstring(L, 3, &oplen);
    const char *body = luaL_checklstring(L, 4, &body_len);
    const char *path = luaL_optlstring(L, 5, "/", &path_len);
    signer_lines lines;

    ddb_signer_sign(L, s, op, oplen, body, body_len, 0, &lines);
    if (ddb_http1_post(&x->out, path, path_len, lines.line, (size_t)lines.n, body, body_len))
        return luaL_error(L, "out of memory building the request");
    start(x);
    lua_pushlstring(L, x->out.data, x->out.len);
    if (x->out.cap > (1u << 20))
        ddb_buf_free(&x->out);
    return 1;
}

/* What feed and closed return for r: true (the answer is complete), false (more bytes are
 * needed), or nil and the error (applied = "maybe": the request has left). */
static int push_outcome(lua_State *L, exchange *x, int r)
{
    const char *code, *cls;
    char message[160];
    if (r == ANSWER_MORE) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (r == ANSWER_DONE) {
        x->state = X_DONE;
        lua_pushboolean(L, 1);
        return 1;
    }
    x->state = X_FAILED;
    ddb_answer_failure(&x->ans, r, &code, &cls, message, sizeof message);
    lua_pushnil(L);
    ddb_proto_push_error(L, code, message, 0, PROTO_APPLIED_MAYBE, cls);
    return 2;
}

static void check_reading(lua_State *L, exchange *x)
{
    if (x->state != X_READING)
        luaL_error(L, "the exchange is not reading an answer (start it first)");
}

/* x:feed(bytes) -> true | false | nil, err: the bytes received next. */
static int exchange_feed(lua_State *L)
{
    exchange *x = check_exchange(L);
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    check_reading(L, x);
    return push_outcome(L, x, ddb_answer_feed(&x->ans, p, n));
}

/* x:closed() -> true | nil, err: the server closed the connection. */
static int exchange_closed(lua_State *L)
{
    exchange *x = check_exchange(L);
    check_reading(L, x);
    return push_outcome(L, x, ddb_answer_closed(&x->ans));
}

static void check_done(lua_State *L, exchange *x)
{
    if (x->state != X_DONE)
        luaL_error(L, "the exchange has no complete answer");
}

/* x:keep() -> whether the connection may carry another request. */
static int exchange_keep(lua_State *L)
{
    exchange *x = check_exchange(L);
    check_done(L, x);
    lua_pushboolean(L, ddb_answer_keep(&x->ans));
    return 1;
}

static buf head_of(const exchange *x)
{
    return ddb_buf_view(x->in.data, x->ans.head.head_len);
}

/* x:answer() -> status, headers (lowercase names, trimmed values, the last of repeated
 * ones), body. */
static int exchange_answer(lua_State *L)
{
    exchange *x = check_exchange(L);
    buf head;
    const char *body;
    size_t len;
    check_done(L, x);
    head = head_of(x);
    body = ddb_answer_body(&x->ans, &len);
    lua_pushinteger(L, x->ans.head.status);
    ddb_curlt_push_headers(L, &head);
    lua_pushlstring(L, body, len);
    shrink(x);   /* what was pushed is Lua's copy */
    return 3;
}

/* x:result([plain]) -> what the libcurl transport's call() returns for the answer:
 * result, nil, status, request_id | nil, err, status, headers, false. */
static int exchange_result(lua_State *L)
{
    exchange *x = check_exchange(L);
    const char *plain = luaL_optstring(L, 2, NULL);
    buf head;
    const char *body;
    size_t len;
    int n;
    check_done(L, x);
    head = head_of(x);
    body = ddb_answer_body(&x->ans, &len);
    n = ddb_curlt_push_answer(L, x->ans.head.status, &head, body, len, plain, 0);
    shrink(x);   /* what was pushed is Lua's */
    return n;
}

static int exchange_tostring(lua_State *L)
{
    static const char *const states[] = {"idle", "reading", "done", "failed"};
    exchange *x = check_exchange(L);
    lua_pushfstring(L, "ddb{exchange}: %s", states[x->state]);
    return 1;
}

void ddb_exchange_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"start", exchange_start},
        {"request", exchange_request},
        {"feed", exchange_feed},
        {"closed", exchange_closed},
        {"keep", exchange_keep},
        {"answer", exchange_answer},
        {"result", exchange_result},
        {NULL, NULL}
    };
    if (ddb_compat_newmetatable(L, EXCHANGE_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, exchange_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, exchange_tostring);
        lua_setfield(L, -2, "__tostring");
#if LUA_VERSION_NUM >= 504
        lua_pushcfunction(L, exchange_gc);
        lua_setfield(L, -2, "__close");
#endif
    }
    lua_pop(L, 1);
}
