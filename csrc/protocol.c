/* DynamoDB JSON protocol: response decoding and the classification every retry decision uses. */
#include "protocol.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Continues a CRC-32 (zlib's) over more bytes; crc is the value for the bytes before. */
static uint32_t crc32_update(uint32_t crc, const void *data, size_t len)
{
    static uint32_t table[256];
    static volatile int ready = 0;
    const unsigned char *p = data;
    uint32_t c = crc ^ 0xFFFFFFFFu;
    size_t i;
    if (!ready) {
        /* Racing threads compute identical values, so the benign overlap is harmless. */
        uint32_t n, k, v;
        for (n = 0; n < 256; n++) {
            v = n;
            for (k = 0; k < 8; k++)
                v = (v & 1) ? 0xEDB88320u ^ (v >> 1) : v >> 1;
            table[n] = v;
        }
        ready = 1;
    }
    for (i = 0; i < len; i++)
        c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

uint32_t proto_crc32(const void *data, size_t len)
{
    return crc32_update(0, data, len);
}

/* Error codes worth another attempt, and how long to wait before it (throttle waits longer).
 * From the AWS SDKs' standard retry mode plus DynamoDB's documented transaction errors. */
static const char *const throttle_codes[] = {
    "ProvisionedThroughputExceededException", "ThrottlingException", "Throttling",
    "ThrottledException", "RequestThrottledException", "RequestThrottled",
    "RequestLimitExceeded", "TooManyRequestsException", "SlowDown", "BandwidthLimitExceeded",
    "RequestThrottledException", NULL
};
static const char *const transient_codes[] = {
    "TransactionConflictException", "TransactionInProgressException", "InternalServerError",
    "InternalFailure", "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException",
    "PriorRequestNotComplete", NULL
};

static int in_list(const char *const *list, const char *code)
{
    int i;
    for (i = 0; list[i] != NULL; i++)
        if (strcmp(list[i], code) == 0)
            return 1;
    return 0;
}

const char *proto_retry_class(const char *code, int status)
{
    if (in_list(throttle_codes, code))
        return "throttle";
    if (in_list(transient_codes, code) || status >= 500)
        return "transient";
    return "none";
}

static void push_error(lua_State *L, const char *code, const char *message, int status,
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

int proto_lua_error(lua_State *L)
{
    const char *code = luaL_checkstring(L, 1);
    const char *message = luaL_optstring(L, 2, code);
    int status = (int)luaL_optinteger(L, 3, 0);
    const char *applied = luaL_optstring(L, 4, PROTO_APPLIED_NO);
    const char *rc = luaL_optstring(L, 5, proto_retry_class(code, status));
    push_error(L, code, message, status, applied, rc);
    return 1;
}

int proto_lua_crc32(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_Integer crc = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, crc >= 0 && crc <= 0xFFFFFFFF, 2, "a CRC-32 value is from 0 to 2^32-1");
    lua_pushinteger(L, (lua_Integer)crc32_update((uint32_t)crc, s, n));
    return 1;
}

/* "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException" -> the part after '#'. */
static const char *short_code(const char *type)
{
    const char *hash = strrchr(type, '#');
    return hash ? hash + 1 : type;
}

/* Copies the request id header, if any, into the error or result on top of the stack. */
static void add_request_id(lua_State *L, int headers, int target)
{
    if (lua_type(L, headers) != LUA_TTABLE)
        return;
    lua_getfield(L, headers, "x-amzn-requestid");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_getfield(L, headers, "x-amz-request-id");
    }
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

int proto_lua_parse_response(lua_State *L)
{
    int status = (int)luaL_checkinteger(L, 1);
    size_t n;
    const char *body = luaL_optlstring(L, 2, "", &n);
    int headers = 3;
    int err;

    /* A CRC mismatch means the bytes were damaged in transit: the request may have run. */
    if (lua_type(L, headers) == LUA_TTABLE) {
        lua_getfield(L, headers, "x-amz-crc32");
        if (!lua_isnil(L, -1)) {
            const char *want = lua_tostring(L, -1);
            char *end = NULL;
            unsigned long w = want ? strtoul(want, &end, 10) : 0;
            if (want == NULL || end == want || *end != '\0' || w != proto_crc32(body, n)) {
                push_error(L, "CRC32Mismatch", "response body does not match its x-amz-crc32 "
                           "checksum", status, PROTO_APPLIED_MAYBE, "transient");
                add_request_id(L, headers, lua_gettop(L));
                lua_pushnil(L);
                lua_insert(L, -2);
                return 2;
            }
        }
        lua_pop(L, 1);
    }

    if (status >= 200 && status < 300) {
        /* Every DynamoDB answer is an object; an array would pass for an empty result. */
        if (!json_decode(L, body, n) || lua_type(L, -1) != LUA_TTABLE || is_list(L, -1)) {
            push_error(L, "InvalidResponse", "DynamoDB answered with a body that is not a "
                       "JSON object (truncated or damaged)", status, PROTO_APPLIED_MAYBE,
                       "transient");
            add_request_id(L, headers, lua_gettop(L));
            lua_pushnil(L);
            lua_insert(L, -2);
            return 2;
        }
        return 1;
    }

    /* An error: decode __type and message if the body is JSON, keep going if not. */
    if (json_decode(L, body, n) && lua_type(L, -1) == LUA_TTABLE) {
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
        code = type ? short_code(type) : (status >= 500 ? "InternalServerError" : "UnknownError");
        push_error(L, code, message, status,
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
    } else {
        char code[32];
        lua_settop(L, 3);
        snprintf(code, sizeof code, status >= 500 ? "InternalServerError" : "HTTP%d", status);
        push_error(L, code, "DynamoDB answered with an error and an unreadable body", status,
                   status >= 500 ? PROTO_APPLIED_MAYBE : PROTO_APPLIED_NO,
                   proto_retry_class(code, status));
        err = lua_gettop(L);
    }
    add_request_id(L, headers, err);
    lua_pushnil(L);
    lua_pushvalue(L, err);
    return 2;
}
