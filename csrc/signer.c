/* The signer object: credentials, scope and the cached signing key behind one userdata.
 * A generic SigV4 request signer (sign_generic, signer:sign_request) and its DynamoDB
 * wrapper (ddb_signer_sign, signer:prepare); the signing key never leaves C. */
#include "signer.h"
#include "sigv4.h"
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

/* The intermediate texts of one signature (no secret in them: the key never enters). */
typedef struct stages {
    buf creq, signed_headers, scope, sts, auth;
    char signature[SIGV4_HEX_LEN + 1];
} stages;

static void stages_free(stages *st);

struct signer {
    char *access_key;
    char *secret_key;
    char *session_token;
    char *region;
    char *service;
    char *host;
    char *user_agent;
    char *target_prefix;
    long long skew;          /* seconds to add to the local clock (server's Date minus ours) */
    sigv4_key_cache cache;
    EVP_MD_CTX *md;          /* reused for every SHA-256 */
    sigv4_hmac mac;           /* HMAC states of the cached signing key */
    stages work;             /* prepare()'s buffers, kept between requests: no allocation per
                                request once they have grown to size */
    long long date_epoch;    /* the second amz_date was formatted for */
    char amz_date[17];
    /* registry references to the header lines that never change (Host, Content-Type,
     * User-Agent), made on the first prepare: no string built for them per request */
    int line_refs[3];
    char *fixed[3];          /* the same lines as C strings, for ddb_signer_sign's callers */
    buf lines;               /* ddb_signer_sign's other lines, NUL-separated */
};

#define LINE_HOST 0
#define LINE_TYPE 1
#define LINE_AGENT 2

static void wipe_str(char **p)
{
    if (*p != NULL) {
        OPENSSL_cleanse(*p, strlen(*p));
        free(*p);
        *p = NULL;
    }
}

static void signer_clear_credentials(signer *s)
{
    wipe_str(&s->access_key);
    wipe_str(&s->secret_key);
    wipe_str(&s->session_token);
    OPENSSL_cleanse(&s->cache, sizeof s->cache);
    ddb_sigv4_hmac_free(&s->mac);
}

signer *ddb_signer_check(lua_State *L, int idx)
{
    return (signer *)luaL_checkudata(L, idx, SIGNER_MT);
}

/* Pushes field name of table t and returns it checked (NULL when absent and optional);
 * allocates nothing, so a raised error leaks nothing. */
static const char *peek_field(lua_State *L, int t, const char *name, int required)
{
    const char *v;
    size_t n;
    lua_getfield(L, t, name);
    if (lua_isnil(L, -1)) {
        if (required)
            luaL_error(L, "signer option '%s' is required", name);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "signer option '%s' must be a string", name);
    v = lua_tolstring(L, -1, &n);
    if (memchr(v, '\r', n) || memchr(v, '\n', n) || memchr(v, '\0', n))
        luaL_error(L, "signer option '%s' holds a line break or NUL", name);
    return v;
}

/* A malloc'd copy of field name of table t, checked as peek_field checks it (NULL when
 * absent and optional). */
static char *dup_field(lua_State *L, int t, const char *name, int required)
{
    const char *v = peek_field(L, t, name, required);
    size_t n;
    char *p;
    if (v == NULL) {
        lua_pop(L, 1);
        return NULL;
    }
    n = strlen(v);   /* peek_field refused a NUL inside */
    p = malloc(n + 1);
    if (p == NULL)
        luaL_error(L, "out of memory");
    memcpy(p, v, n + 1);
    lua_pop(L, 1);
    return p;
}

static char *copy_str(const char *v)
{
    char *p;
    if (v == NULL)
        return NULL;
    p = malloc(strlen(v) + 1);
    if (p != NULL)
        strcpy(p, v);
    return p;
}

static void set_credentials(lua_State *L, signer *s, int t)
{
    /* Everything is checked before anything is copied, and copied before anything is
     * replaced, so a bad call leaves the old credentials and leaks no secret. */
    int top = lua_gettop(L);
    const char *ak = peek_field(L, t, "access_key", 1);
    const char *sk = peek_field(L, t, "secret_key", 1);
    const char *tok = peek_field(L, t, "session_token", 0);
    char *cak, *csk, *ctok;
    if (ak[0] == '\0' || sk[0] == '\0' || strlen(ak) >= sizeof s->cache.access_key)
        luaL_error(L, "credentials need a non-empty access_key (under 128 bytes) and secret_key");
    cak = copy_str(ak);
    csk = copy_str(sk);
    ctok = copy_str(tok);
    lua_settop(L, top);
    if (cak == NULL || csk == NULL || (tok != NULL && ctok == NULL)) {
        wipe_str(&cak);
        wipe_str(&csk);
        wipe_str(&ctok);
        luaL_error(L, "out of memory");
    }
    signer_clear_credentials(s);
    s->access_key = cak;
    s->secret_key = csk;
    s->session_token = ctok;
}

/* core.signer_new{ access_key, secret_key, session_token, region, host, service, user_agent } */
int ddb_signer_lua_new(lua_State *L)
{
    signer *s;
    luaL_checktype(L, 1, LUA_TTABLE);
    s = lua_newuserdata(L, sizeof *s);
    memset(s, 0, sizeof *s);
    s->line_refs[LINE_HOST] = s->line_refs[LINE_TYPE] = s->line_refs[LINE_AGENT] = LUA_NOREF;
    ddb_sigv4_hmac_init(&s->mac);
    ddb_buf_init(&s->lines);
    luaL_getmetatable(L, SIGNER_MT);
    lua_setmetatable(L, -2);
    s->region = dup_field(L, 1, "region", 1);
    s->host = dup_field(L, 1, "host", 1);
    s->service = dup_field(L, 1, "service", 0);
    if (s->service == NULL) {
        s->service = malloc(9);
        if (s->service == NULL)
            return luaL_error(L, "out of memory");
        memcpy(s->service, "dynamodb", 9);
    }
    s->user_agent = dup_field(L, 1, "user_agent", 0);
    s->target_prefix = dup_field(L, 1, "target_prefix", 0);
    set_credentials(L, s, 1);
    return 1;
}

static int signer_gc(lua_State *L)
{
    signer *s = (signer *)luaL_checkudata(L, 1, SIGNER_MT);
    int i;
    signer_clear_credentials(s);
    stages_free(&s->work);
    EVP_MD_CTX_free(s->md);
    s->md = NULL;
    for (i = 0; i < 3; i++) {
        luaL_unref(L, LUA_REGISTRYINDEX, s->line_refs[i]);
        s->line_refs[i] = LUA_NOREF;
        free(s->fixed[i]);
        s->fixed[i] = NULL;
    }
    ddb_buf_wipe(&s->lines);   /* held the session token */
    free(s->region);
    free(s->host);
    free(s->service);
    free(s->user_agent);
    free(s->target_prefix);
    s->region = s->host = s->service = s->user_agent = s->target_prefix = NULL;
    return 0;
}

static int signer_set_credentials(lua_State *L)
{
    signer *s = ddb_signer_check(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    set_credentials(L, s, 2);
    return 0;
}

static int signer_tostring(lua_State *L)
{
    signer *s = ddb_signer_check(L, 1);
    char shown[16] = "none";
    /* Only the first four characters of the access key id: enough to tell keys apart in logs. */
    if (s->access_key != NULL)
        snprintf(shown, sizeof shown, "%.4s****", s->access_key);
    lua_pushfstring(L, "ddb{signer}: region=%s host=%s access_key=%s",
                    s->region ? s->region : "?", s->host ? s->host : "?", shown);
    return 1;
}

static int signer_skew(lua_State *L)
{
    signer *s = ddb_signer_check(L, 1);
    if (!lua_isnoneornil(L, 2))
        s->skew = (long long)luaL_checknumber(L, 2);
    lua_pushnumber(L, (lua_Number)s->skew);
    return 1;
}

static long long now_epoch(lua_State *L, signer *s, int idx)
{
    if (!lua_isnoneornil(L, idx))
        return (long long)luaL_checknumber(L, idx);
    return (long long)time(NULL) + s->skew;
}

static void stages_init(stages *st)
{
    ddb_buf_init(&st->creq);
    ddb_buf_init(&st->signed_headers);
    ddb_buf_init(&st->scope);
    ddb_buf_init(&st->sts);
    ddb_buf_init(&st->auth);
    st->signature[0] = '\0';
}

/* Empties the buffers and keeps their memory. */
static void stages_reset(stages *st)
{
    st->creq.len = 0;
    st->signed_headers.len = 0;
    st->scope.len = 0;
    st->sts.len = 0;
    st->auth.len = 0;
    st->signature[0] = '\0';
}

static void stages_free(stages *st)
{
    ddb_buf_free(&st->creq);
    ddb_buf_free(&st->signed_headers);
    ddb_buf_free(&st->scope);
    ddb_buf_free(&st->sts);
    ddb_buf_free(&st->auth);
}

static int run_stages(signer *s, const sigv4_request *req, const char *amz_date, stages *st,
                      unsigned char key[SIGV4_KEY_LEN])
{
    if (s->md == NULL && (s->md = EVP_MD_CTX_new()) == NULL)
        return -1;
    if (ddb_sigv4_canonical_request(s->md, req, &st->creq, &st->signed_headers) ||
        ddb_sigv4_scope(&st->scope, amz_date, s->region, s->service) ||
        ddb_sigv4_string_to_sign(s->md, &st->sts, amz_date, st->scope.data, st->creq.data,
                                 st->creq.len) ||
        ddb_sigv4_signing_key(&s->cache, s->access_key, s->secret_key, amz_date, s->region,
                              s->service, key) ||
        ddb_sigv4_signature(&s->mac, key, st->sts.data, st->sts.len, st->signature))
        return -1;
    return ddb_sigv4_authorization(&st->auth, s->access_key, st->scope.data, st->signed_headers.data,
                                   st->signature);
}

/* Reads a list of {name, value} pairs at stack index idx into a new userdata array with
 * room for `extra` more (left on the stack, the strings stay alive in the list). Header
 * names that the signer owns (host, x-amz-date, x-amz-security-token, authorization) are
 * refused when own is set. */
static sigv4_header *check_headers(lua_State *L, int idx, size_t extra, int own, size_t *n)
{
    size_t nh, i;
    sigv4_header *hs;
    luaL_checktype(L, idx, LUA_TTABLE);
    nh = lua_rawlen(L, idx);
    hs = lua_newuserdata(L, (nh + extra ? nh + extra : 1) * sizeof *hs);
    for (i = 0; i < nh; i++) {
        lua_rawgeti(L, idx, (int)i + 1);
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        hs[i].name = luaL_checklstring(L, -2, &hs[i].name_len);
        hs[i].value = luaL_checklstring(L, -1, &hs[i].value_len);
        if (memchr(hs[i].name, '\r', hs[i].name_len) || memchr(hs[i].name, '\n', hs[i].name_len) ||
            memchr(hs[i].value, '\r', hs[i].value_len) || memchr(hs[i].value, '\n', hs[i].value_len))
            luaL_error(L, "header %d holds a line break", (int)i + 1);
        if (own) {
            static const char *const owned[] = {"host", "x-amz-date", "x-amz-security-token",
                                                "authorization", NULL};
            int k;
            for (k = 0; owned[k] != NULL; k++)
                if (hs[i].name_len == strlen(owned[k]) &&
                    strncasecmp(hs[i].name, owned[k], hs[i].name_len) == 0)
                    luaL_error(L, "header '%s' is the signer's own; leave it out", owned[k]);
        }
        lua_pop(L, 3);
    }
    *n = nh;
    return hs;
}

/* The request of signer:stages and signer:sign_request, arguments 2 to 6: method, path,
 * query (or nil), headers ({name, value} pairs, room for extra more; own: refuse the
 * signer's own names), body (or nil). */
static sigv4_header *check_request(lua_State *L, sigv4_request *req, size_t extra, int own)
{
    sigv4_header *hs;
    req->method = luaL_checkstring(L, 2);
    req->path = luaL_checkstring(L, 3);
    req->query = luaL_optstring(L, 4, NULL);
    req->body = luaL_optlstring(L, 6, "", &req->body_len);
    hs = check_headers(L, 5, extra, own, &req->nheaders);
    req->headers = hs;
    return hs;
}

/* signer:stages(method, path, query, headers, body, amz_date) -> table of every stage
 * (canonical request, signed headers, scope, string to sign, signature, authorization),
 * for the official test vectors. headers is a list of {name, value} pairs, signed as given
 * (order and repeats kept). The signing key stays in C. */
static int signer_stages(lua_State *L)
{
    signer *s = ddb_signer_check(L, 1);
    const char *amz_date = luaL_checkstring(L, 7);
    sigv4_request req;
    stages st;
    unsigned char key[SIGV4_KEY_LEN];
    int rc;

    if (s->access_key == NULL || s->region == NULL)
        return luaL_error(L, "signer is closed");
    check_request(L, &req, 0, 0);
    stages_init(&st);
    rc = run_stages(s, &req, amz_date, &st, key);
    OPENSSL_cleanse(key, sizeof key);
    if (rc == 0) {
        lua_createtable(L, 0, 6);
        lua_pushlstring(L, st.creq.data, st.creq.len);
        lua_setfield(L, -2, "canonical_request");
        lua_pushstring(L, st.signed_headers.data);
        lua_setfield(L, -2, "signed_headers");
        lua_pushstring(L, st.scope.data);
        lua_setfield(L, -2, "scope");
        lua_pushlstring(L, st.sts.data, st.sts.len);
        lua_setfield(L, -2, "string_to_sign");
        lua_pushstring(L, st.signature);
        lua_setfield(L, -2, "signature");
        lua_pushstring(L, st.auth.data);
        lua_setfield(L, -2, "authorization");
    }
    stages_free(&st);
    if (rc != 0)
        return luaL_error(L, "signing failed: out of memory");
    return 1;
}

/* A header line that never changes (Host, Content-Type, User-Agent), made once; NULL when
 * memory runs out. */
static const char *fixed_line(signer *s, int which, const char *name, const char *value)
{
    if (s->fixed[which] == NULL) {
        size_t a = strlen(name), b = strlen(value);
        char *p = malloc(a + b + 1);
        if (p == NULL)
            return NULL;
        memcpy(p, name, a);
        memcpy(p + a, value, b + 1);
        s->fixed[which] = p;
    }
    return s->fixed[which];
}

static int valid_op(const char *op, size_t oplen)
{
    return oplen > 0 && oplen <= 64 &&
           strspn(op, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == oplen;
}

static int add_line(buf *b, size_t *start, const char *name, size_t name_len,
                    const char *value)
{
    *start = b->len;
    return buf_add(b, name, name_len) || ddb_buf_adds(b, value) || buf_addc(b, '\0');
}
#define ADD_LINE(b, start, name, value) add_line(b, start, name, sizeof(name) - 1, value)

static void put_line(signer_lines *out, const char *line, int which)
{
    out->line[out->n] = line;
    out->fixed[out->n] = (signed char)which;
    out->n++;
}

/* Formats the signer's amz_date for epoch (once per second: requests come many to the
 * second). Returns -1 for an unrepresentable time. */
static int set_amz_date(signer *s, long long epoch)
{
    if (s->amz_date[0] == '\0' || s->date_epoch != epoch) {
        if (ddb_sigv4_amz_date(epoch, s->amz_date) != 0) {
            s->amz_date[0] = '\0';
            return -1;
        }
        s->date_epoch = epoch;
    }
    return 0;
}

/* The generic SigV4 request signer, for any service: signs method, path, query, the
 * caller's headers hs[0..n-1] and body, adding host (the signer's), x-amz-date and
 * x-amz-security-token to hs (which has room for n + 3). The Authorization value is left in
 * s->work.auth and the date in s->amz_date. The signing key never leaves this function (it
 * is wiped before returning). Returns 0, -1 on no memory, -2 on an unrepresentable time. */
static int sign_generic(signer *s, const char *method, const char *path, const char *query,
                        sigv4_header *hs, size_t n, const char *body, size_t body_len,
                        long long epoch)
{
    sigv4_request req;
    unsigned char key[SIGV4_KEY_LEN];
    int rc;

    if (set_amz_date(s, epoch) != 0)
        return -2;
#define HDR(nm, val) do { hs[n].name = nm; hs[n].name_len = sizeof(nm) - 1; \
        hs[n].value = val; hs[n].value_len = strlen(val); n++; } while (0)
    HDR("host", s->host);
    HDR("x-amz-date", s->amz_date);
    if (s->session_token != NULL)
        HDR("x-amz-security-token", s->session_token);
#undef HDR
    req.method = method;
    req.path = path;
    req.query = query;
    req.headers = hs;
    req.nheaders = n;
    req.body = body;
    req.body_len = body_len;
    /* the buffers stay in the signer (collected with it), so a Lua error after this leaks
     * nothing; the key is on the stack and wiped before anything can raise */
    stages_reset(&s->work);
    rc = run_stages(s, &req, s->amz_date, &s->work, key);
    OPENSSL_cleanse(key, sizeof key);
    return rc == 0 ? 0 : -1;
}

/* The DynamoDB wrapper of sign_generic: POST / with the JSON protocol's headers. */
int ddb_signer_sign(lua_State *L, signer *s, const char *op, size_t oplen, const char *body,
                    size_t body_len, int epoch_idx, signer_lines *out)
{
    long long epoch = epoch_idx ? now_epoch(L, s, epoch_idx) : (long long)time(NULL) + s->skew;
    char target[160];
    sigv4_header hs[5];
    size_t at[4];
    int rc, i, ndyn;
    const char *host_line, *type_line, *agent_line = NULL;
    static const char content_type[] = "application/x-amz-json-1.0";

    if (!valid_op(op, oplen))
        return luaL_error(L, "operation must be a DynamoDB operation name");
    if (s->access_key == NULL || s->host == NULL)
        return luaL_error(L, "signer is closed");
    {
        /* "<prefix>.<op>", cut short as snprintf would (op is at most 64 letters) */
        const char *prefix = s->target_prefix ? s->target_prefix : "DynamoDB_20120810";
        size_t plen = strlen(prefix), k;
        if (plen > sizeof target - 1)
            plen = sizeof target - 1;
        memcpy(target, prefix, plen);
        k = plen;
        if (k < sizeof target - 1)
            target[k++] = '.';
        if (oplen > sizeof target - 1 - k)
            oplen = sizeof target - 1 - k;
        memcpy(target + k, op, oplen);
        target[k + oplen] = '\0';
    }
    hs[0].name = "content-type";
    hs[0].name_len = sizeof "content-type" - 1;
    hs[0].value = content_type;
    hs[0].value_len = sizeof content_type - 1;
    hs[1].name = "x-amz-target";
    hs[1].name_len = sizeof "x-amz-target" - 1;
    hs[1].value = target;
    hs[1].value_len = strlen(target);
    rc = sign_generic(s, "POST", "/", NULL, hs, 2, body, body_len, epoch);
    if (rc == -2)
        return luaL_error(L, "clock gives an unrepresentable time");

    host_line = fixed_line(s, LINE_HOST, "Host: ", s->host);
    type_line = fixed_line(s, LINE_TYPE, "Content-Type: ", content_type);
    if (s->user_agent != NULL)
        agent_line = fixed_line(s, LINE_AGENT, "User-Agent: ", s->user_agent);
    s->lines.len = 0;
    ndyn = 0;
    if (rc != 0 || host_line == NULL || type_line == NULL ||
        (s->user_agent != NULL && agent_line == NULL) ||
        ADD_LINE(&s->lines, &at[ndyn++], "X-Amz-Date: ", s->amz_date) ||
        ADD_LINE(&s->lines, &at[ndyn++], "X-Amz-Target: ", target) ||
        (s->session_token != NULL &&
         ADD_LINE(&s->lines, &at[ndyn++], "X-Amz-Security-Token: ", s->session_token)) ||
        ADD_LINE(&s->lines, &at[ndyn++], "Authorization: ", s->work.auth.data))
        return luaL_error(L, "signing failed: out of memory");

    /* the order the Lua list has always had (spec/unit/sigv4_spec.lua) */
    out->n = 0;
    put_line(out, host_line, LINE_HOST);
    put_line(out, type_line, LINE_TYPE);
    for (i = 0; i < ndyn; i++)
        put_line(out, s->lines.data + at[i], -1);
    if (agent_line != NULL)
        put_line(out, agent_line, LINE_AGENT);
    return out->n;
}

/* signer:sign_request(method, path, query, headers, body[, epoch]) -> lines, amz_date
 * The generic SigV4 signer (any service: the signer's `service`): headers is a list of
 * {name, value} pairs the caller sends; the signer adds and signs Host (its own host),
 * X-Amz-Date and X-Amz-Security-Token. lines: the "Name: value" lines to send besides the
 * caller's headers and Host: X-Amz-Date, X-Amz-Security-Token (with a session token) and
 * Authorization. path is already URI-encoded; query is "a=1&b=2" or nil. */
static int signer_sign_request(lua_State *L)
{
    signer *s = ddb_signer_check(L, 1);
    sigv4_request req;
    sigv4_header *hs;
    long long epoch;
    int rc, n = 0;

    if (s->access_key == NULL || s->host == NULL)
        return luaL_error(L, "signer is closed");
    epoch = now_epoch(L, s, 7);
    hs = check_request(L, &req, 3, 1);
    rc = sign_generic(s, req.method, req.path, req.query, hs, req.nheaders, req.body,
                      req.body_len, epoch);
    if (rc == -2)
        return luaL_error(L, "clock gives an unrepresentable time");
    if (rc != 0)
        return luaL_error(L, "signing failed: out of memory");
    lua_createtable(L, 3, 0);
    lua_pushfstring(L, "X-Amz-Date: %s", s->amz_date);
    lua_rawseti(L, -2, ++n);
    if (s->session_token != NULL) {
        lua_pushfstring(L, "X-Amz-Security-Token: %s", s->session_token);
        lua_rawseti(L, -2, ++n);
    }
    lua_pushfstring(L, "Authorization: %s", s->work.auth.data);
    lua_rawseti(L, -2, ++n);
    lua_pushstring(L, s->amz_date);
    return 2;
}

/* signer:prepare(operation, body[, epoch]) -> list of "Name: value" header lines, amz_date.
 * The lines are what goes on the wire (Content-Length is the transport's). */
static int signer_prepare(lua_State *L)
{
    signer *s = ddb_signer_check(L, 1);
    size_t oplen, body_len;
    const char *op = luaL_checklstring(L, 2, &oplen);
    const char *body = luaL_checklstring(L, 3, &body_len);
    signer_lines lines;
    int i, list;

    if (!valid_op(op, oplen))
        return luaL_argerror(L, 2, "operation must be a DynamoDB operation name");
    ddb_signer_sign(L, s, op, oplen, body, body_len, 4, &lines);
    lua_createtable(L, lines.n, 0);
    list = lua_gettop(L);
    for (i = 0; i < lines.n; i++) {
        int which = lines.fixed[i];
        if (which < 0) {
            lua_pushstring(L, lines.line[i]);
        } else {
            /* kept as a Lua string too: no string made for it per request */
            if (s->line_refs[which] == LUA_NOREF) {
                lua_pushstring(L, lines.line[i]);
                s->line_refs[which] = luaL_ref(L, LUA_REGISTRYINDEX);
            }
            lua_rawgeti(L, LUA_REGISTRYINDEX, s->line_refs[which]);
        }
        lua_rawseti(L, list, i + 1);
    }
    lua_pushstring(L, s->amz_date);
    return 2;
}

static int signer_get(lua_State *L)
{
    signer *s = ddb_signer_check(L, 1);
    const char *what = luaL_checkstring(L, 2);
    if (strcmp(what, "region") == 0)
        lua_pushstring(L, s->region);
    else if (strcmp(what, "host") == 0)
        lua_pushstring(L, s->host);
    else if (strcmp(what, "access_key") == 0)
        lua_pushstring(L, s->access_key);
    else if (strcmp(what, "has_session_token") == 0)
        lua_pushboolean(L, s->session_token != NULL);
    else
        return luaL_argerror(L, 2, "unknown signer field");
    return 1;
}

void ddb_signer_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"prepare", signer_prepare},
        {"sign_request", signer_sign_request},
        {"stages", signer_stages},
        {"set_credentials", signer_set_credentials},
        {"skew", signer_skew},
        {"get", signer_get},
        {"close", signer_gc},
        {NULL, NULL}
    };
    if (ddb_compat_newmetatable(L, SIGNER_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, signer_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, signer_tostring);
        lua_setfield(L, -2, "__tostring");
#if LUA_VERSION_NUM >= 504
        lua_pushcfunction(L, signer_gc);
        lua_setfield(L, -2, "__close");
#endif
    }
    lua_pop(L, 1);
}
