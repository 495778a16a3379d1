/* DynamoDB JSON protocol: response decoding and the classification every retry decision uses. */
#include "protocol.h"
#include "json.h"
#include "av.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Continues a CRC-32 (zlib's; what x-amz-crc32 carries); crc is the value for the bytes
 * before. zlib's own is faster than the slicing-by-8 table this file used to carry. */
static uint32_t crc32_update(uint32_t crc, const void *data, size_t len)
{
    return (uint32_t)crc32_z(crc, data, len);
}

static uint32_t proto_crc32(const void *data, size_t len)
{
    return crc32_update(0, data, len);
}

/* Error codes worth another attempt, and how long to wait before it (throttle waits longer).
 * From the AWS SDKs' standard retry mode plus DynamoDB's documented transaction errors, and
 * ReplicatedWriteConflictException (multi-Region strongly consistent tables: another
 * Region is writing the item; refused, so safe to retry, as botocore retries it). */
static const char *const throttle_codes[] = {
    "ProvisionedThroughputExceededException", "ThrottlingException", "Throttling",
    "ThrottledException", "RequestThrottledException", "RequestThrottled",
    "RequestLimitExceeded", "TooManyRequestsException", "SlowDown", "BandwidthLimitExceeded",
    NULL
};
static const char *const transient_codes[] = {
    "TransactionConflictException", "TransactionInProgressException", "InternalServerError",
    "InternalFailure", "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException",
    "PriorRequestNotComplete", "ReplicatedWriteConflictException", NULL
};

static int in_list(const char *const *list, const char *code)
{
    int i;
    for (i = 0; list[i] != NULL; i++)
        if (strcmp(list[i], code) == 0)
            return 1;
    return 0;
}

/* Retry classes; "none" is final. */
static const char *proto_retry_class(const char *code, int status)
{
    if (in_list(throttle_codes, code) || status == 429)
        return "throttle";
    if (in_list(transient_codes, code) || status >= 500)
        return "transient";
    return "none";
}

void ddb_proto_push_error(lua_State *L, const char *code, const char *message, int status,
                          const char *applied, const char *retry_class)
{
    lua_createtable(L, 0, 8);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, message ? message : code);
    lua_setfield(L, -2, "message");
    if (status > 0) {
        lua_pushinteger(L, status);
        lua_setfield(L, -2, "status");
    }
    lua_pushstring(L, applied);
    lua_setfield(L, -2, "applied");
    lua_pushstring(L, retry_class);
    lua_setfield(L, -2, "retry_class");
    lua_pushboolean(L, strcmp(retry_class, "none") != 0);
    lua_setfield(L, -2, "retryable");
}

int ddb_proto_lua_error(lua_State *L)
{
    const char *code = luaL_checkstring(L, 1);
    const char *message = luaL_optstring(L, 2, code);
    int status = (int)luaL_optinteger(L, 3, 0);
    const char *applied = luaL_optstring(L, 4, PROTO_APPLIED_NO);
    const char *rc = luaL_optstring(L, 5, proto_retry_class(code, status));
    ddb_proto_push_error(L, code, message, status, applied, rc);
    return 1;
}

int ddb_proto_lua_crc32(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_Integer crc = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, crc >= 0 && crc <= 0xFFFFFFFF, 2, "a CRC-32 value is from 0 to 2^32-1");
    lua_pushinteger(L, (lua_Integer)crc32_update((uint32_t)crc, s, n));
    return 1;
}

/* "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException" -> the part after '#'. */
static const char *short_code(lua_State *L, const char *type)
{
    const char *hash, *colon;
    if (type == NULL)
        return NULL;
    hash = strrchr(type, '#');
    type = hash ? hash + 1 : type;
    /* some services append ":<uri>" to the type */
    colon = strchr(type, ':');
    if (colon != NULL) {
        lua_pushlstring(L, type, (size_t)(colon - type));
        type = lua_tostring(L, -1);
    }
    return *type != '\0' ? type : NULL;
}

/* Sets the request id, if the answer carried one, on the error at index target. */
static void add_request_id(lua_State *L, const proto_answer *a, int target)
{
    if (a->request_id == NULL)
        return;
    lua_pushlstring(L, a->request_id, a->request_id_len);
    lua_setfield(L, target, "request_id");
}

static int is_list(lua_State *L, int idx)
{
    int r;
    if (!lua_getmetatable(L, idx))
        return 0;
    luaL_getmetatable(L, JSON_LIST_MT);
    r = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return r;
}

static void push_plain(lua_State *L, const ddb_jnode *node)
{
    ddb_av_push_plain_item(L, node, 1);
}

/* (doc, result, name): result[name] = the doc, or its AttributeValues when the member is not
 * a plain item. */
static int push_doc_member(lua_State *L)
{
    if (ddb_av_doc_push_member(L, 1))
        lua_setfield(L, 2, lua_tostring(L, 3));
    return 0;
}

/* An answer without DynamoDB's request id and without DynamoDB's JSON came from something
 * else: a web server, a proxy's error page, the wrong port. Retrying does not help, except
 * where a gateway's 5xx may pass (and may have forwarded the request). Nothing acted on a
 * 4xx or a 501 ("method not implemented"); a 2xx or another 5xx may have been relayed. */
static void push_not_dynamodb(lua_State *L, int status, const char *reason)
{
    char message[200];
    int refused = (status >= 400 && status < 500) || status == 501;
    const char *cls = status == 429 ? "throttle" :
                      (status >= 500 && status != 501) ? "transient" : "none";
    snprintf(message, sizeof message, "the endpoint answered HTTP %d with %s and no "
             "x-amzn-requestid: is it a DynamoDB endpoint?", status, reason);
    ddb_proto_push_error(L, "NotDynamoDB", message, status,
                         refused ? PROTO_APPLIED_NO : PROTO_APPLIED_MAYBE, cls);
    lua_pushstring(L, reason);
    lua_setfield(L, -2, "reason");
}

/* Pushes nil and the error on top of the stack, with the answer's request id. */
static int fail(lua_State *L, const proto_answer *a)
{
    add_request_id(L, a, lua_gettop(L));
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

int ddb_proto_parse(lua_State *L, const proto_answer *a, const char *plain)
{
    int status = a->status, err, base = lua_gettop(L);
    const char *body = a->body;
    size_t n = a->body_len;

    /* A CRC mismatch means the bytes were damaged in transit: the request may have run. */
    if (a->crc != NULL) {
        char *end = NULL;
        unsigned long w = strtoul(a->crc, &end, 10);
        if (end == a->crc || *end != '\0' || w != proto_crc32(body, n)) {
            ddb_proto_push_error(L, "CRC32Mismatch", "response body does not match its "
                                 "x-amz-crc32 checksum", status, PROTO_APPLIED_MAYBE, "transient");
            return fail(L, a);
        }
    }

    if (status >= 200 && status < 300) {
        /* Every DynamoDB answer is an object; an array would pass for an empty result. */
        json_decode_opts o = { NULL, NULL, 0, 0, NULL, NULL, 0 };
        int ok, doc = 0;
        if (plain != NULL) {
            /* "+Item": Item as AttributeValues and, as plain values, under "plain";
             * "*Item": the same, with Item kept as the answer's nodes (an item doc) */
            o.key = plain[0] == '+' || plain[0] == '*' ? plain + 1 : plain;
            o.fn = push_plain;
            o.also = plain[0] == '+' || plain[0] == '*' ? "plain" : NULL;
        }
        if (plain != NULL && plain[0] == '*') {
            ok = ddb_av_doc_read(L, body, n, o.key, 0) == 0;
            if (ok) {
                doc = lua_gettop(L);
                o.skip = 1;
                ok = ddb_json_push_doc(L, ddb_av_doc_nodes(ddb_av_doc_test(L, doc)), &o);
                if (ok && lua_type(L, -1) == LUA_TTABLE) {
                    lua_pushcfunction(L, push_doc_member);
                    lua_pushvalue(L, doc);
                    lua_pushvalue(L, -3);
                    lua_pushstring(L, o.key);
                    ok = lua_pcall(L, 3, 0, 0) == 0;
                }
            }
        } else {
            ok = ddb_json_decode_opts(L, body, n, &o);
        }
        if (!ok || lua_type(L, -1) != LUA_TTABLE || is_list(L, -1)) {
            lua_settop(L, base);
            if (a->request_id == NULL)
                push_not_dynamodb(L, status, "a body that is not a JSON object");
            else
                ddb_proto_push_error(L, "InvalidResponse", "DynamoDB answered with a body that is "
                                     "not a JSON object (truncated or damaged)", status,
                                     PROTO_APPLIED_MAYBE, "transient");
            return fail(L, a);
        }
        if (doc)
            lua_remove(L, doc);
        return 1;
    }

    /* An error: decode __type and message if the body is JSON, keep going if not. */
    if (ddb_json_decode(L, body, n) && lua_type(L, -1) == LUA_TTABLE) {
        int doc = lua_gettop(L);
        const char *type, *message, *code;
        lua_getfield(L, doc, "__type");
        type = lua_tostring(L, -1);
        lua_getfield(L, doc, "message");
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_getfield(L, doc, "Message");
        }
        message = lua_tostring(L, -1);
        code = short_code(L, type);
        if (code == NULL && a->request_id == NULL) {
            lua_settop(L, base);
            push_not_dynamodb(L, status, "a JSON body without DynamoDB's __type");
            return fail(L, a);
        }
        if (code == NULL)
            code = status >= 500 ? "InternalServerError" : "UnknownError";
        ddb_proto_push_error(L, code, message, status,
                             status >= 500 ? PROTO_APPLIED_MAYBE : PROTO_APPLIED_NO,
                             proto_retry_class(code, status));
        err = lua_gettop(L);
        lua_getfield(L, doc, "CancellationReasons");
        if (lua_type(L, -1) == LUA_TTABLE)
            lua_setfield(L, err, "cancellation_reasons");
        else
            lua_pop(L, 1);
        /* ReturnValuesOnConditionCheckFailure = ALL_OLD puts the current item here */
        lua_getfield(L, doc, "Item");
        if (lua_type(L, -1) == LUA_TTABLE)
            lua_setfield(L, err, "item");
        else
            lua_pop(L, 1);
    } else if (a->request_id == NULL) {
        lua_settop(L, base);
        push_not_dynamodb(L, status, n == 0 ? "an empty body" : "a body that is not JSON");
        err = lua_gettop(L);
    } else {
        char code[32];
        lua_settop(L, base);
        snprintf(code, sizeof code, status >= 500 ? "InternalServerError" : "HTTP%d", status);
        ddb_proto_push_error(L, code, "DynamoDB answered with an error and an unreadable body",
                             status, status >= 500 ? PROTO_APPLIED_MAYBE : PROTO_APPLIED_NO,
                             proto_retry_class(code, status));
        err = lua_gettop(L);
    }
    add_request_id(L, a, err);
    lua_pushnil(L);
    lua_pushvalue(L, err);
    return 2;
}

/* The value of header name in the table at idx, pushed (NULL and nil when absent or not a
 * string). */
static const char *header(lua_State *L, int idx, const char *name, size_t *len)
{
    if (lua_type(L, idx) != LUA_TTABLE) {
        lua_pushnil(L);
        return NULL;
    }
    lua_getfield(L, idx, name);
    return lua_isstring(L, -1) ? lua_tolstring(L, -1, len) : NULL;
}

int ddb_proto_lua_parse_response(lua_State *L)
{
    proto_answer a;
    const char *plain;
    a.status = (int)luaL_checkinteger(L, 1);
    a.body = luaL_optlstring(L, 2, "", &a.body_len);
    plain = luaL_optstring(L, 4, NULL);
    lua_settop(L, 4);
    /* the header strings stay on the stack for the whole parse */
    a.crc = header(L, 3, "x-amz-crc32", NULL);
    if (a.crc == NULL && !lua_isnil(L, -1))
        a.crc = "";   /* present but not a string: a mismatch */
    a.request_id = header(L, 3, "x-amzn-requestid", &a.request_id_len);
    if (a.request_id == NULL)
        a.request_id = header(L, 3, "x-amz-request-id", &a.request_id_len);
    return ddb_proto_parse(L, &a, plain);
}
