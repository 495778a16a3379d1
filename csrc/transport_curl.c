/* libcurl transport: moves bytes for the plain-Lua path. It never calls back into Lua, so a
 * Lua error can only happen before or after a transfer, never across libcurl frames. */
#include "transport_curl.h"
#include "curl_handle.h"
#include "protocol.h"
#include "signer.h"
#include "wire.h"
#include "http1.h"
#include "buf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#define CURLT_NODES 16

typedef struct curlt {
    CURL *easy;
    struct curl_slist *slist;   /* headers of the transfer in progress; freed after it */
    struct curl_slist nodes[CURLT_NODES];   /* or the same list without an allocation */
    curl_sink sink;            /* the body and head of the transfer in progress */
    char *ca_bundle;
    long connect_timeout_ms;
    char *url;                  /* the URL set on the handle (set again only when it differs) */
    long timeout_set;           /* the CURLOPT_TIMEOUT_MS set on the handle (0: none yet) */
    long connects;              /* connections libcurl's own transfers made */
    wire wire;                  /* call()'s connection, where the URL allows it */
    char errbuf[CURL_ERROR_SIZE];
} curlt;

static curlt *check_curlt(lua_State *L)
{
    curlt *t = (curlt *)luaL_checkudata(L, 1, CURLT_MT);
    if (t->easy == NULL)
        luaL_error(L, "transport is closed");
    return t;
}

static int curlt_close(lua_State *L)
{
    curlt *t = (curlt *)luaL_checkudata(L, 1, CURLT_MT);
    if (t->easy != NULL)
        curl_easy_cleanup(t->easy);
    t->easy = NULL;
    curl_slist_free_all(t->slist);
    t->slist = NULL;
    ddb_buf_free(&t->sink.body);
    ddb_buf_free(&t->sink.head);
    ddb_wire_close(&t->wire);
    free(t->ca_bundle);
    t->ca_bundle = NULL;
    free(t->url);
    t->url = NULL;
    return 0;
}

long ddb_curlt_opt_long(lua_State *L, int t, const char *name, long def, long lo, long hi)
{
    lua_Number v;
    lua_getfield(L, t, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    v = lua_tonumber(L, -1);
    /* NaN fails every comparison, so it is refused with the infinities */
    if (lua_type(L, -1) != LUA_TNUMBER || !(v >= (lua_Number)lo && v <= (lua_Number)hi))
        luaL_error(L, "option '%s' must be a number from %d to %d", name, (int)lo, (int)hi);
    lua_pop(L, 1);
    return (long)v;
}

/* core.curl_new{ ca_bundle = path, connect_timeout_ms = n, max_answer_bytes = n } */
int ddb_curlt_lua_new(lua_State *L)
{
    curlt *t;
    if (ddb_curl_handle_global_init() != CURLE_OK)
        return luaL_error(L, "libcurl failed to initialise");
    t = lua_newuserdata(L, sizeof *t);
    memset(t, 0, sizeof *t);
    ddb_buf_init(&t->sink.body);
    ddb_buf_init(&t->sink.head);
    ddb_wire_init(&t->wire);
    luaL_getmetatable(L, CURLT_MT);
    lua_setmetatable(L, -2);
    t->connect_timeout_ms = 1000;
    t->sink.max_answer = (size_t)CURLT_MAX_ANSWER_DEFAULT;
    if (lua_istable(L, 1)) {
        lua_getfield(L, 1, "ca_bundle");
        if (!lua_isnil(L, -1)) {
            const char *ca = luaL_checkstring(L, -1);
            t->ca_bundle = malloc(strlen(ca) + 1);
            if (t->ca_bundle == NULL)
                return luaL_error(L, "out of memory");
            strcpy(t->ca_bundle, ca);
        }
        lua_pop(L, 1);
        t->connect_timeout_ms = ddb_curlt_opt_long(L, 1, "connect_timeout_ms", 1000, 1, 600000);
        t->sink.max_answer = (size_t)ddb_curlt_opt_long(L, 1, "max_answer_bytes",
                                               CURLT_MAX_ANSWER_DEFAULT, CURLT_MAX_ANSWER_MIN,
                                               CURLT_MAX_ANSWER_MAX);
    }
    t->easy = curl_easy_init();
    if (t->easy == NULL)
        return luaL_error(L, "libcurl could not create a handle");
    /* set once: per request they cost more than a with_item's JSON encoding */
    ddb_curl_handle_setup(t->easy, &t->sink, t->errbuf, t->ca_bundle);
    /* a Content-Length over the limit is refused before any of the body is read */
    curl_easy_setopt(t->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t->sink.max_answer);
    return 1;
}

/* The next "Name: value" line of a raw header block from *pos on, with the value trimmed;
 * 0 once the block is done. Lines without a name and a colon (the status line) are skipped. */
static int next_header(const buf *head, size_t *pos, const char **name, size_t *name_len,
                       const char **value, size_t *value_len)
{
    while (*pos < head->len) {
        const char *line = head->data + *pos;
        const char *end = memchr(line, '\n', head->len - *pos);
        size_t len = end ? (size_t)(end - line) : head->len - *pos;
        const char *colon = memchr(line, ':', len);
        *pos += len + 1;
        if (colon != NULL && colon > line) {
            const char *v = colon + 1;
            size_t vlen = len - (size_t)(colon - line) - 1;
            while (vlen > 0 && (*v == ' ' || *v == '\t')) {
                v++;
                vlen--;
            }
            while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                vlen--;
            *name = line;
            *name_len = (size_t)(colon - line);
            *value = v;
            *value_len = vlen;
            return 1;
        }
    }
    return 0;
}

void ddb_curlt_push_headers(lua_State *L, const buf *head)
{
    size_t pos = 0, nlen, vlen, k;
    const char *n, *v;
    lua_newtable(L);
    while (next_header(head, &pos, &n, &nlen, &v, &vlen)) {
        char name[128];
        if (nlen >= sizeof name)
            continue;
        for (k = 0; k < nlen; k++)
            name[k] = (char)tolower((unsigned char)n[k]);
        lua_pushlstring(L, name, nlen);
        lua_pushlstring(L, v, vlen);
        lua_rawset(L, -3);
    }
}

void ddb_curlt_push_failure(lua_State *L, const char *code, const char *message,
                            const char *applied, const char *cls, CURLcode rc)
{
    ddb_proto_push_error(L, code, message, 0, applied, cls);
    lua_pushinteger(L, (lua_Integer)rc);
    lua_setfield(L, -2, "curl_code");
}

void ddb_curlt_push_error(lua_State *L, CURL *easy, CURLcode rc, int too_large, size_t max,
                          char *errbuf, size_t errlen)
{
    const char *code = "NetworkError";
    const char *cls = "transient";
    const char *applied = PROTO_APPLIED_MAYBE;
    curl_off_t pretransfer = 0;

    if (too_large != SINK_FITS || rc == CURLE_FILESIZE_EXCEEDED) {
        /* An answer came, so the request reached the server and may have run; what the
         * answer says about that is in the part not read: "maybe". Not retried: the same
         * request would very likely bring the same answer, at the same cost. */
        if (too_large == SINK_HEAD_TOO_LARGE)
            snprintf(errbuf, errlen, "the answer's head is longer than 64 KiB; not read (the "
                     "request was sent)");
        else
            snprintf(errbuf, errlen, "the answer's body%s is longer than max_answer_bytes "
                     "(%zu); not read (the request was sent)",
                     too_large == SINK_FITS ? " (Content-Length)" : "", max);
        ddb_curlt_push_failure(L, "AnswerTooLarge", errbuf, PROTO_APPLIED_MAYBE, "none", rc);
        return;
    }
    if (easy != NULL)
        curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        code = "ConnectError";
        applied = PROTO_APPLIED_NO;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        code = "Timeout";
        cls = "timeout";
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        code = "TLSVerifyError";
        cls = "none";
        applied = PROTO_APPLIED_NO;
        break;
    case CURLE_SSL_CONNECT_ERROR:
        code = "TLSError";
        applied = PROTO_APPLIED_NO;
        break;
    case CURLE_ABORTED_BY_CALLBACK:
        /* on_prereq: a reused connection died after the request went out */
        snprintf(errbuf, errlen, "the connection closed without an answer after the request "
                 "was sent (not resent: it may have been applied)");
        break;
    default:
        break;
    }
    /* Nothing of the request can have left before the transfer phase began. */
    if (pretransfer == 0)
        applied = PROTO_APPLIED_NO;
    ddb_curlt_push_failure(L, code, errbuf[0] ? errbuf : curl_easy_strerror(rc), applied, cls, rc);
}

/* A large answer should not pin its buffers for the life of the client. */
static void shrink_buffers(curlt *t)
{
    if (t->sink.body.cap > (1u << 20))
        ddb_buf_free(&t->sink.body);
    if (t->wire.in.cap > (1u << 20))
        ddb_buf_free(&t->wire.in);
    if (t->wire.body.cap > (1u << 20))
        ddb_buf_free(&t->wire.body);
}

static int push_transport_error(lua_State *L, curlt *t, CURLcode rc)
{
    lua_pushnil(L);
    ddb_curlt_push_error(L, t->easy, rc, t->sink.too_large, t->sink.max_answer, t->errbuf,
                         sizeof t->errbuf);
    shrink_buffers(t);
    return 2;
}

/* Added to every request's headers: no 100-continue round trip, no Accept: surprises. */
static const char *const suppressed[] = {"Expect:", "Accept:"};
#define NSUPPRESSED (sizeof suppressed / sizeof suppressed[0])
/* call()'s signed lines and the suppressors fit the handle's nodes */
typedef char curlt_lines_fit[SIGNER_MAX_LINES + 2 <= CURLT_NODES ? 1 : -1];

void ddb_curlt_build_headers(lua_State *L, int idx, struct curl_slist **slist)
{
    size_t i, nh = lua_rawlen(L, idx);
    curl_slist_free_all(*slist);
    *slist = NULL;
    for (i = 1; i <= nh + NSUPPRESSED; i++) {
        const char *line;
        struct curl_slist *next;
        if (i <= nh) {
            lua_rawgeti(L, idx, (int)i);
            line = luaL_checkstring(L, -1);
        } else {
            line = suppressed[i - nh - 1];
            lua_pushnil(L);
        }
        next = curl_slist_append(*slist, line);
        lua_pop(L, 1);
        if (next == NULL)
            luaL_error(L, "out of memory");
        *slist = next;
    }
}

int ddb_curlt_copy_lines(const char *const *lines, size_t n, struct curl_slist **slist)
{
    size_t i;
    curl_slist_free_all(*slist);
    *slist = NULL;
    for (i = 0; i < n + NSUPPRESSED; i++) {
        struct curl_slist *next = curl_slist_append(*slist, i < n ? lines[i]
                                                                  : suppressed[i - n]);
        if (next == NULL)
            return -1;
        *slist = next;
    }
    return 0;
}

/* Points the handle's nodes at n header lines (at most CURLT_NODES - NSUPPRESSED) and the
 * suppressors: a header list without an allocation or a copy. */
static struct curl_slist *point_lines(struct curl_slist *nodes, const char *const *lines,
                                      size_t n)
{
    size_t i;
    for (i = 0; i < n + NSUPPRESSED; i++) {
        nodes[i].data = (char *)(i < n ? lines[i] : suppressed[i - n]);
        nodes[i].next = &nodes[i + 1];
    }
    nodes[n + NSUPPRESSED - 1].next = NULL;
    return nodes;
}

/* The header list of a blocking transfer without copying a line: the nodes point at the Lua
 * strings of the list at idx, which stays on the stack for the whole transfer. NULL when the
 * lines do not fit or are not all strings (then the copying ddb_curlt_build_headers serves). */
static struct curl_slist *point_headers(lua_State *L, int idx, struct curl_slist *nodes)
{
    const char *lines[CURLT_NODES];
    size_t i, nh = lua_rawlen(L, idx);
    if (nh + NSUPPRESSED > CURLT_NODES)
        return NULL;
    for (i = 0; i < nh; i++) {
        lua_rawgeti(L, idx, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            return NULL;
        }
        /* the string stays referenced by the list, so its bytes outlive the pop */
        lines[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    return point_lines(nodes, lines, nh);
}

static const char *const http_methods[] = {"POST", "GET", "PUT", NULL};
enum { METHOD_POST, METHOD_GET, METHOD_PUT };

/* One transfer on the handle: the URL and timeouts set only when they change. Raises only
 * for lack of memory, before anything is sent. No answer follows a silent resend: on_prereq
 * refuses them. */
static CURLcode curlt_perform(lua_State *L, curlt *t, const char *url,
                              struct curl_slist *headers, int method, const char *body,
                              size_t body_len, long timeout_ms)
{
    CURL *e = t->easy;
    CURLcode rc;
    long new_connections = 0;

    t->sink.body.len = 0;
    t->sink.head.len = 0;
    t->errbuf[0] = '\0';
    t->sink.too_large = SINK_FITS;
    if (t->url == NULL || strcmp(t->url, url) != 0) {
        char *copy = malloc(strlen(url) + 1);
        if (copy == NULL) {
            curl_slist_free_all(t->slist);
            t->slist = NULL;
            luaL_error(L, "out of memory");
            return CURLE_OUT_OF_MEMORY;
        }
        strcpy(copy, url);
        free(t->url);
        t->url = copy;
        curl_easy_setopt(e, CURLOPT_URL, url);
    }
    if (method == METHOD_GET) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
    } else {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        /* a PUT goes out through the POST machinery under another name: body from memory */
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method == METHOD_PUT ? "PUT" : NULL);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    t->sink.sends = 0;
    if (t->timeout_set != timeout_ms) {
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                         t->connect_timeout_ms < timeout_ms ? t->connect_timeout_ms : timeout_ms);
        t->timeout_set = timeout_ms;
    }
    rc = curl_easy_perform(e);
    /* the handle keeps no pointer into the header lines once the transfer is over */
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(t->slist);
    t->slist = NULL;
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &new_connections);
    t->connects += new_connections;
    return rc;
}

long ddb_curlt_timeout_arg(lua_State *L, int idx)
{
    long timeout_ms = (long)luaL_optnumber(L, idx, 10000);
    return timeout_ms < 1 ? 1 : timeout_ms;
}

/* t:request(url, header_lines, body, timeout_ms[, method]) -> status, headers, body,
 *                                                             maybe_resent | nil, err
 * method is "POST" (the default: DynamoDB, STS), "GET" or "PUT" (the instance and container
 * metadata endpoints of credential providers); a GET carries no body. */
static int curlt_request(lua_State *L)
{
    curlt *t = check_curlt(L);
    const char *url = luaL_checkstring(L, 2);
    size_t body_len;
    const char *body;
    long timeout_ms, status = 0;
    CURLcode rc;
    int method;
    struct curl_slist *headers;

    luaL_checktype(L, 3, LUA_TTABLE);
    body = luaL_checklstring(L, 4, &body_len);
    timeout_ms = ddb_curlt_timeout_arg(L, 5);
    method = luaL_checkoption(L, 6, "POST", http_methods);
    luaL_argcheck(L, method != METHOD_GET || body_len == 0, 4, "a GET request has no body");

    /* Build the header list first: a Lua error here leaves only t->slist, freed at close. */
    headers = point_headers(L, 3, t->nodes);
    if (headers == NULL) {
        ddb_curlt_build_headers(L, 3, &t->slist);
        headers = t->slist;
    }
    rc = curlt_perform(L, t, url, headers, method, body, body_len, timeout_ms);
    if (rc != CURLE_OK)
        return push_transport_error(L, t, rc);
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    lua_pushinteger(L, status);
    ddb_curlt_push_headers(L, &t->sink.head);
    lua_pushlstring(L, t->sink.body.data ? t->sink.body.data : "", t->sink.body.len);
    lua_pushboolean(L, 0);   /* maybe_resent: on_prereq refuses every silent resend */
    shrink_buffers(t);
    return 4;
}

/* Whether the header name n[0..len) is name (lowercase, len bytes), in any case. */
static int name_is(const char *n, const char *name, size_t len)
{
    size_t k;
    for (k = 0; k < len && tolower((unsigned char)n[k]) == name[k]; k++)
        ;
    return k == len;
}

/* The trimmed values of the last x-amz-crc32 and of the request id (x-amzn-requestid, else
 * x-amz-request-id) in the raw block, in one pass; NULL for one not there. */
static void find_answer_headers(const buf *head, proto_answer *a, size_t *crc_len)
{
    const char *n, *v, *old_id = NULL;
    size_t pos = 0, nlen, vlen, old_len = 0;
    a->crc = a->request_id = NULL;
    while (next_header(head, &pos, &n, &nlen, &v, &vlen)) {
        if (nlen == 11 && name_is(n, "x-amz-crc32", 11)) {
            a->crc = v;
            *crc_len = vlen;
        } else if (nlen == 16 && name_is(n, "x-amzn-requestid", 16)) {
            a->request_id = v;
            a->request_id_len = vlen;
        } else if (nlen == 16 && name_is(n, "x-amz-request-id", 16)) {
            old_id = v;
            old_len = vlen;
        }
    }
    if (a->request_id == NULL) {
        a->request_id = old_id;
        a->request_id_len = old_len;
    }
}

int ddb_curlt_push_answer(lua_State *L, int status, const buf *head, const char *body,
                          size_t body_len, const char *plain, int resent)
{
    proto_answer a;
    size_t crc_len = 0;
    char crc[16];
    int nret;

    a.status = status;
    a.body = body;
    a.body_len = body_len;
    find_answer_headers(head, &a, &crc_len);
    if (a.crc != NULL) {
        /* a value too long for a CRC-32 fails the check as an empty one does */
        size_t n = crc_len < sizeof crc ? crc_len : 0;
        memcpy(crc, a.crc, n);
        crc[n] = '\0';
        a.crc = crc;
    }
    nret = ddb_proto_parse(L, &a, plain);
    if (nret == 1) {
        lua_pushnil(L);
        lua_pushinteger(L, a.status);
        if (a.request_id != NULL)
            lua_pushlstring(L, a.request_id, a.request_id_len);
        else
            lua_pushnil(L);
    } else {
        lua_pushinteger(L, a.status);
        ddb_curlt_push_headers(L, head);
        lua_pushboolean(L, resent);
    }
    return nret == 1 ? 4 : 5;
}

/* t:call(signer, url, operation, body, timeout_ms[, plain]) signs a DynamoDB request, sends
 * it and reads the answer in one C call, with no Lua string made for the header lines, the
 * answer's headers or its body:
 *   result, nil, status, request_id     the operation succeeded
 *   nil, err, status, headers, resent   DynamoDB answered with an error (headers: a table)
 *   nil, err                            the transfer failed (as request's err)
 * The same as signer:prepare + t:request + core.parse_response, which serve every other
 * transport. Where the URL allows (ddb_wire_accepts), the HTTP/1.1 is the module's own on a
 * connection libcurl made (wire.c); otherwise libcurl's transfer carries it. Neither
 * ever sends a request twice. */
static int curlt_call(lua_State *L)
{
    curlt *t = check_curlt(L);
    signer *s = ddb_signer_check(L, 2);
    const char *url = luaL_checkstring(L, 3);
    size_t oplen, body_len;
    const char *op = luaL_checklstring(L, 4, &oplen);
    const char *body = luaL_checklstring(L, 5, &body_len);
    long timeout_ms = ddb_curlt_timeout_arg(L, 6);
    const char *plain = luaL_optstring(L, 7, NULL);
    signer_lines lines;
    proto_answer a;
    wire_answer wa;   /* head may point into it: it lives as long as the call */
    const buf *head;
    int nret;

    lua_settop(L, 7);
    ddb_signer_sign(L, s, op, oplen, body, body_len, 0, &lines);
    if (ddb_wire_serves(&t->wire, url)) {
        wire_opts o;
        int r;
        o.errbuf = t->errbuf;
        o.ca_bundle = t->ca_bundle;
        o.connect_timeout_ms = t->connect_timeout_ms;
        o.max_answer = t->sink.max_answer;
        r = ddb_wire_exchange(&t->wire, &o, url, lines.line, (size_t)lines.n, body, body_len,
                              timeout_ms, &wa);
        if (r == WIRE_CONNECT_FAILED) {
            lua_pushnil(L);
            ddb_curlt_push_error(L, t->wire.easy, t->wire.rc, SINK_FITS, t->sink.max_answer,
                                 t->errbuf, sizeof t->errbuf);
            ddb_wire_disconnect(&t->wire);
            return 2;
        }
        if (r == WIRE_FAILED) {
            lua_pushnil(L);
            ddb_curlt_push_failure(L, t->wire.code, t->wire.message, t->wire.applied,
                                   t->wire.retry_class, t->wire.rc);
            shrink_buffers(t);
            return 2;
        }
        a.status = wa.head.status;
        a.body = wa.body;
        a.body_len = wa.body_len;
        head = &wa.head_view;
    } else {
        long status = 0;
        CURLcode rc = curlt_perform(L, t, url, point_lines(t->nodes, lines.line,
                                                           (size_t)lines.n),
                                    METHOD_POST, body, body_len, timeout_ms);
        if (rc != CURLE_OK)
            return push_transport_error(L, t, rc);
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
        a.status = (int)status;
        a.body = t->sink.body.data ? t->sink.body.data : "";
        a.body_len = t->sink.body.len;
        head = &t->sink.head;
    }
    /* resent: never (on_prereq) */
    nret = ddb_curlt_push_answer(L, a.status, head, a.body, a.body_len, plain, 0);
    shrink_buffers(t);
    return nret;
}

/* t:stats() -> { new_connections = n, connections = total } : new connections made by the
 * last request() (0 = reused), and every connection the handle has made, call()'s included */
static int curlt_stats(lua_State *L)
{
    curlt *t = check_curlt(L);
    long n = 0;
    curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &n);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "new_connections");
    lua_pushinteger(L, (lua_Integer)(t->connects + t->wire.connects));
    lua_setfield(L, -2, "connections");
    return 1;
}

static int curlt_tostring(lua_State *L)
{
    curlt *t = (curlt *)luaL_checkudata(L, 1, CURLT_MT);
    lua_pushfstring(L, "ddb{curl}: %s", t->easy ? "open" : "closed");
    return 1;
}

void ddb_curlt_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"request", curlt_request},
        {"call", curlt_call},
        {"stats", curlt_stats},
        {"close", curlt_close},
        {NULL, NULL}
    };
    if (ddb_compat_newmetatable(L, CURLT_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        /* tells Lua code this build from one whose request() can only POST */
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "supports_methods");
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, curlt_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, curlt_tostring);
        lua_setfield(L, -2, "__tostring");
#if LUA_VERSION_NUM >= 504
        lua_pushcfunction(L, curlt_close);
        lua_setfield(L, -2, "__close");
#endif
    }
    lua_pop(L, 1);
}
