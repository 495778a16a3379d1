/* DynamoDB JSON protocol: response decoding and the classification every retry decision uses. */
#include "protocol.h"
#include "json.h"
#include "av.h"

#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

/* The reflected CRC-32 table for polynomial 0xEDB88320 (zlib's), built at compile time. */
static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

/* Slicing-by-8: seven more tables let the loop take 8 bytes per step (every answer is
 * checked, and bytewise this was the largest single cost of reading one). Built once. */
static uint32_t crc_slices[7][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_build(void)
{
    int k, i;
    for (i = 0; i < 256; i++) {
        uint32_t c = crc_table[i];
        for (k = 0; k < 7; k++) {
            c = crc_table[c & 0xFF] ^ (c >> 8);
            crc_slices[k][i] = c;
        }
    }
}

/* Continues a CRC-32 (zlib's) over more bytes; crc is the value for the bytes before. */
static uint32_t crc32_update(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t c = crc ^ 0xFFFFFFFFu;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (len >= 16) {
        const uint32_t (*t)[256] = (const uint32_t (*)[256])crc_slices;
        pthread_once(&crc_once, crc_build);
        while (len >= 8) {
            uint32_t lo, hi;
            memcpy(&lo, p, 4);
            memcpy(&hi, p + 4, 4);
            lo ^= c;
            c = t[6][lo & 0xFF] ^ t[5][(lo >> 8) & 0xFF] ^ t[4][(lo >> 16) & 0xFF] ^
                t[3][lo >> 24] ^ t[2][hi & 0xFF] ^ t[1][(hi >> 8) & 0xFF] ^
                t[0][(hi >> 16) & 0xFF] ^ crc_table[hi >> 24];
            p += 8;
            len -= 8;
        }
    }
#endif
    while (len-- > 0)
        c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
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

static void push_plain(lua_State *L, const void *node)
{
    ddb_av_push_plain_item(L, node, 1);
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
        if (!ddb_json_decode_with(L, body, n, plain, plain ? push_plain : NULL) ||
            lua_type(L, -1) != LUA_TTABLE || is_list(L, -1)) {
            lua_settop(L, base);
            if (a->request_id == NULL)
                push_not_dynamodb(L, status, "a body that is not a JSON object");
            else
                ddb_proto_push_error(L, "InvalidResponse", "DynamoDB answered with a body that is "
                                 "not a JSON object (truncated or damaged)", status,
                                 PROTO_APPLIED_MAYBE, "transient");
            return fail(L, a);
        }
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
