/* Write tokens of ddb.optimistic and the one owner of their history format: each write
 * records a random token in a short history kept in the item ("2 <token> <token> ..." newest
 * first), so that a write whose answer was lost can be recognised later, and so that a
 * state of an item can be told from every other state it ever had (ddb/engine/rules.lua). */
#include "tokens.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

/* The random bytes of tokens come from OpenSSL in batches: a call to RAND_bytes costs about
 * a microsecond (OpenSSL 3 looks its generator up and asks the kernel for the process id on
 * every call), a token only 9 bytes. The batch belongs to one Lua state (an upvalue of
 * core.random_token); a fork bumps fork_gen in the child, so that parent and child never hand
 * out the same bytes (nginx forks its workers after init_by_lua). */
#define POOL_BYTES 432

typedef struct {
    unsigned long gen;      /* fork_gen when the bytes were drawn */
    size_t pos;             /* bytes handed out; POOL_BYTES when none are left */
    unsigned char bytes[POOL_BYTES];
} token_pool;

#define TOKEN_POOL_MT "ddb{tokenpool}"

static volatile unsigned long fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void forked_child(void)
{
    fork_gen++;
}

static void install_atfork(void)
{
    /* glibc drops the handler when the module is unloaded (it is tied to this object) */
    pthread_atfork(NULL, NULL, forked_child);
}

static int pool_gc(lua_State *L)
{
    token_pool *p = (token_pool *)luaL_checkudata(L, 1, TOKEN_POOL_MT);
    OPENSSL_cleanse(p->bytes, sizeof p->bytes);
    p->pos = POOL_BYTES;
    return 0;
}

static int pool_take(token_pool *p, unsigned char *out, size_t n)
{
    if (p->gen != fork_gen || POOL_BYTES - p->pos < n) {
        if (RAND_bytes(p->bytes, POOL_BYTES) != 1)
            return -1;
        p->gen = fork_gen;
        p->pos = 0;
    }
    memcpy(out, p->bytes + p->pos, n);
    OPENSSL_cleanse(p->bytes + p->pos, n);
    p->pos += n;
    return 0;
}

/* core.random_token(n) -> n random bytes (a multiple of 3) as unpadded base64url text */
static int tokens_random(lua_State *L)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    token_pool *pool = (token_pool *)lua_touserdata(L, lua_upvalueindex(1));
    unsigned char raw[48];
    char text[64];
    lua_Integer n = luaL_checkinteger(L, 1);
    size_t i, o = 0;
    luaL_argcheck(L, n >= 3 && n <= (lua_Integer)sizeof raw && n % 3 == 0, 1,
                  "a multiple of 3 between 3 and 48");
    if (pool_take(pool, raw, (size_t)n) != 0)
        return luaL_error(L, "OpenSSL could not produce random bytes");
    for (i = 0; i < (size_t)n; i += 3) {
        unsigned long v = ((unsigned long)raw[i] << 16) | ((unsigned long)raw[i + 1] << 8) |
                          raw[i + 2];
        text[o++] = alphabet[(v >> 18) & 63];
        text[o++] = alphabet[(v >> 12) & 63];
        text[o++] = alphabet[(v >> 6) & 63];
        text[o++] = alphabet[v & 63];
    }
    lua_pushlstring(L, text, o);
    return 1;
}

void ddb_tokens_register(lua_State *L)
{
    token_pool *p;
    pthread_once(&atfork_once, install_atfork);
    p = (token_pool *)lua_newuserdata(L, sizeof *p);
    memset(p, 0, sizeof *p);
    p->pos = POOL_BYTES;
    if (ddb_compat_newmetatable(L, TOKEN_POOL_MT)) {
        lua_pushcfunction(L, pool_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_pushcclosure(L, tokens_random, 1);
    lua_setfield(L, -2, "random_token");
}

static int token_char(int c)
{
    return isalnum(c) || c == '-' || c == '_';
}

static int token_text(const char *s, size_t n)
{
    size_t i;
    if (n == 0)
        return 0;
    for (i = 0; i < n; i++)
        if (!token_char((unsigned char)s[i]))
            return 0;
    return 1;
}

/* The next whitespace-separated field of s[*pos..n): start and length, 0 at the end. */
static size_t next_field(const char *s, size_t n, size_t *pos, const char **field)
{
    size_t i = *pos, start;
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    start = i;
    while (i < n && !isspace((unsigned char)s[i]))
        i++;
    *pos = i;
    *field = s + start;
    return i - start;
}

/* The token of one entry: format 2 entries are the token, format 1 entries (0.1.0)
 * "<version>:<token>"; NULL when the entry is not one. */
static const char *entry_token(int format, const char *f, size_t n, size_t *tlen)
{
    size_t i = 0;
    if (format == 2) {
        *tlen = n;
        return token_text(f, n) ? f : NULL;
    }
    if (i < n && f[i] == '-')
        i++;
    while (i < n && isdigit((unsigned char)f[i]))
        i++;
    if (i == 0 || i >= n || f[i] != ':' || !token_text(f + i + 1, n - i - 1))
        return NULL;
    *tlen = n - i - 1;
    return f + i + 1;
}

/* Walks a history: calls each(token, len, ud) newest first. Returns 0 when the text is not a
 * history this module wrote (then nothing was passed on), else 1. */
static int walk(const char *s, size_t n, void (*each)(const char *, size_t, void *), void *ud)
{
    size_t pos = 0, flen, tlen;
    const char *field, *tok;
    int format;
    flen = next_field(s, n, &pos, &field);
    if (flen != 1 || (field[0] != '1' && field[0] != '2'))
        return 0;
    format = field[0] - '0';
    /* checked whole before anything is passed on */
    while ((flen = next_field(s, n, &pos, &field)) > 0)
        if (entry_token(format, field, flen, &tlen) == NULL)
            return 0;
    pos = 0;
    next_field(s, n, &pos, &field);
    while ((flen = next_field(s, n, &pos, &field)) > 0) {
        tok = entry_token(format, field, flen, &tlen);
        each(tok, tlen, ud);
    }
    return 1;
}

typedef struct {
    lua_State *L;
    int count;
} list_state;

static void add_to_list(const char *tok, size_t n, void *ud)
{
    list_state *st = ud;
    lua_pushlstring(st->L, tok, n);
    lua_rawseti(st->L, -2, ++st->count);
}

int ddb_tokens_push_list(lua_State *L, const char *s, size_t n)
{
    list_state st;
    lua_newtable(L);
    st.L = L;
    st.count = 0;
    if (walk(s, n, add_to_list, &st))
        return 1;
    lua_pop(L, 1);
    return 0;
}

/* core.history_tokens(text) -> { token, ... } newest first | nil when absent or not a
 * history this module wrote */
int ddb_tokens_lua_history_tokens(lua_State *L)
{
    size_t n;
    const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &n) : NULL;
    return s != NULL && ddb_tokens_push_list(L, s, n);
}

typedef struct {
    luaL_Buffer *b;
    int room;
} push_state;

static void add_to_buffer(const char *tok, size_t n, void *ud)
{
    push_state *st = ud;
    if (st->room <= 0)
        return;
    luaL_addchar(st->b, ' ');
    luaL_addlstring(st->b, tok, n);
    st->room--;
}

/* core.history_push(old, token, keep) -> history
 * The history after a write with token: "2 <token> <older tokens>", keeping at most keep
 * entries in all. An old history that is absent or not one this module wrote is dropped,
 * as if the item had none; one written by 0.1.0 (format 1) keeps its tokens. */
int ddb_tokens_lua_history_push(lua_State *L)
{
    size_t n = 0, tlen;
    const char *old = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &n) : NULL;
    const char *token = luaL_checklstring(L, 2, &tlen);
    lua_Integer keep = luaL_checkinteger(L, 3);
    luaL_Buffer b;
    push_state st;

    luaL_argcheck(L, token_text(token, tlen), 2,
                  "a token is made of letters, digits, '-' and '_'");
    luaL_argcheck(L, keep >= 1 && keep <= TOKENS_MAX_KEEP, 3,
                  "a history keeps from 1 to " DDB_STR(TOKENS_MAX_KEEP) " entries");
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "2 ");
    luaL_addlstring(&b, token, tlen);
    st.b = &b;
    st.room = (int)keep - 1;
    if (old != NULL && st.room > 0) {
        /* walk checks the whole old history before passing any of it on */
        walk(old, n, add_to_buffer, &st);
    }
    luaL_pushresult(&b);
    return 1;
}
