/* DynamoDB AttributeValues -> plain Lua values, from Lua tables or straight from the cJSON
 * tree of an answer; and the metatables both directions share. */
#include "internal.h"

#include <limits.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <cjson/cJSON.h>

/* Pushes the decoded bytes, or returns -1 on bad base64. */
int push_unbase64(lua_State *L, const char *s, size_t n)
{
    unsigned char *tmp;
    int len, pad = 0;
    if (n % 4 != 0)
        return -1;
    if (n == 0) {
        lua_pushliteral(L, "");
        return 0;
    }
    tmp = lua_newuserdata(L, n);
    len = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
    if (len < 0) {
        lua_pop(L, 1);
        return -1;
    }
    if (s[n - 1] == '=')
        pad++;
    if (s[n - 2] == '=')
        pad++;
    lua_pushlstring(L, (const char *)tmp, (size_t)len - pad);
    lua_remove(L, -2);
    return 0;
}

/* ---- unmarshal ---- */

static int av_bad(lua_State *L, const char *msg)
{
    return luaL_error(L, "malformed AttributeValue: %s", msg);
}

/* Lua number when it holds the exact value, else a ddb.number wrapper keeping the text. */
static void push_number_text(lua_State *L, const char *s, size_t n)
{
    av_dec x, y;
    char text[64];
    if (av_dec_parse(s, n, &x) != 0)
        av_bad(L, "N is not a number");
    if (x.nd == 0) {
#if DDB_HAS_INTEGERS
        lua_pushinteger(L, 0);
#else
        lua_pushnumber(L, 0);
#endif
        return;
    }
    if (x.exp >= x.nd && !x.overflow) {
#if DDB_HAS_INTEGERS
        if (x.exp <= 19) {
            /* accumulate negatively so the minimum integer fits */
            long long v = 0;
            long i;
            int ok = 1;
            for (i = 0; i < x.exp && ok; i++) {
                int dg = i < x.nd ? x.d[i] - '0' : 0;
                if (v < (LLONG_MIN + dg) / 10)
                    ok = 0;
                else
                    v = v * 10 - dg;
            }
            if (ok && (x.neg || v != LLONG_MIN)) {
                lua_pushinteger(L, (lua_Integer)(x.neg ? v : -v));
                return;
            }
        }
#else
        if (x.exp <= 15) {
            lua_pushnumber(L, strtod(s, NULL));
            return;
        }
#endif
    }
    if (!x.overflow && x.nd <= 15 && x.exp < 300 && x.exp > -300) {
        /* 15 significant digits always survive text -> double -> text (DBL_DIG), so the
         * double holds this value: no need to format it back and compare */
        double d = strtod(s, NULL);
        if (!isinf(d) && d != 0 && fabs(d) >= DBL_MIN) {
            lua_pushnumber(L, d);
            return;
        }
    }
    if (!x.overflow && x.nd <= 17) {
        double d = strtod(s, NULL);
        if (!isinf(d) && d != 0) {
            shortest_double(d, text, sizeof text);
            if (av_dec_parse(text, strlen(text), &y) == 0 && av_dec_equal(&x, &y)) {
                lua_pushnumber(L, d);
                return;
            }
        }
    }
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, s, n);
    lua_setfield(L, -2, "value");
    luaL_getmetatable(L, AV_NUMBER_MT);
    lua_setmetatable(L, -2);
}

static void unmarshal_value(lua_State *L, int idx, int depth);

static void unmarshal_set(lua_State *L, int list, const char *mt, char type)
{
    size_t n, i, len;
    const char *s;
    if (lua_type(L, list) != LUA_TTABLE)
        av_bad(L, "set is not a list");
    n = lua_rawlen(L, list);
    lua_createtable(L, (int)n, 0);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, list, (int)i);
        s = lua_tolstring(L, -1, &len);
        if (s == NULL)
            av_bad(L, "set element is not a string");
        if (type == 'N')
            push_number_text(L, s, len);
        else if (type == 'B') {
            if (push_unbase64(L, s, len) != 0)
                av_bad(L, "binary set element is not base64");
        } else
            lua_pushvalue(L, -1);
        lua_remove(L, -2);
        lua_rawseti(L, -2, (int)i);
    }
    luaL_getmetatable(L, mt);
    lua_setmetatable(L, -2);
}

static void unmarshal_value(lua_State *L, int idx, int depth)
{
    const char *type;
    size_t n;
    const char *s;
    int v;
    if (depth > AV_MAX_DEPTH + 2)
        av_bad(L, "nesting too deep");
    if (lua_type(L, idx) != LUA_TTABLE)
        av_bad(L, "not a table");
    luaL_checkstack(L, 6, "AttributeValue nesting");
    lua_pushnil(L);
    if (lua_next(L, idx) == 0)
        av_bad(L, "no type");
    if (lua_type(L, -2) != LUA_TSTRING)
        av_bad(L, "type is not a string");
    type = lua_tostring(L, -2);
    v = lua_gettop(L);
    if (strcmp(type, "S") == 0) {
        if (lua_type(L, v) != LUA_TSTRING)
            av_bad(L, "S is not a string");
        lua_pushvalue(L, v);
    } else if (strcmp(type, "N") == 0) {
        s = lua_tolstring(L, v, &n);
        if (s == NULL || lua_type(L, v) != LUA_TSTRING)
            av_bad(L, "N is not a string");
        push_number_text(L, s, n);
    } else if (strcmp(type, "BOOL") == 0) {
        lua_pushboolean(L, lua_toboolean(L, v));
    } else if (strcmp(type, "NULL") == 0) {
        lua_getfield(L, LUA_REGISTRYINDEX, AV_NULL_KEY);
    } else if (strcmp(type, "B") == 0) {
        s = lua_tolstring(L, v, &n);
        if (s == NULL)
            av_bad(L, "B is not a string");
        lua_createtable(L, 0, 1);
        if (push_unbase64(L, s, n) != 0)
            av_bad(L, "B is not base64");
        lua_setfield(L, -2, "value");
        luaL_getmetatable(L, AV_BINARY_MT);
        lua_setmetatable(L, -2);
    } else if (strcmp(type, "L") == 0) {
        size_t i, len;
        if (lua_type(L, v) != LUA_TTABLE)
            av_bad(L, "L is not a list");
        len = lua_rawlen(L, v);
        lua_createtable(L, (int)len, 0);
        for (i = 1; i <= len; i++) {
            lua_rawgeti(L, v, (int)i);
            unmarshal_value(L, lua_gettop(L), depth + 1);
            lua_remove(L, -2);
            lua_rawseti(L, -2, (int)i);
        }
        luaL_getmetatable(L, JSON_LIST_MT);
        lua_setmetatable(L, -2);
    } else if (strcmp(type, "M") == 0) {
        int out;
        if (lua_type(L, v) != LUA_TTABLE)
            av_bad(L, "M is not a map");
        lua_newtable(L);
        out = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, v) != 0) {
            unmarshal_value(L, lua_gettop(L), depth + 1);
            lua_remove(L, -2);
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, out);
        }
    } else if (strcmp(type, "SS") == 0) {
        unmarshal_set(L, v, AV_SS_MT, 'S');
    } else if (strcmp(type, "NS") == 0) {
        unmarshal_set(L, v, AV_NS_MT, 'N');
    } else if (strcmp(type, "BS") == 0) {
        unmarshal_set(L, v, AV_BS_MT, 'B');
    } else {
        av_bad(L, "unknown type");
    }
    /* leave only the result above the key/value pair, then drop those */
    lua_replace(L, v - 1);
    lua_settop(L, v - 1);
}

int av_lua_unmarshal(lua_State *L)
{
    lua_settop(L, 1);
    unmarshal_value(L, 1, 0);
    return 1;
}

int av_lua_unmarshal_item(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        unmarshal_value(L, lua_gettop(L), 1);
        lua_remove(L, -2);
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, 2);
    }
    return 1;
}

/* ---- unmarshal straight from the JSON tree ---- */

/* The same conversion as unmarshal_value, reading cJSON nodes instead of Lua tables: an
 * answer's item becomes plain values without the AttributeValue tables in between. JSON
 * nulls are skipped, as json_decode skips them. */
static const cJSON *first_member(const cJSON *j)
{
    const cJSON *c = j->child;
    while (c != NULL && (c->type & 0xFF) == cJSON_NULL)
        c = c->next;
    return c;
}

static void plain_set(lua_State *L, const cJSON *list, const char *mt, char type)
{
    const cJSON *c;
    int i = 0;
    if ((list->type & 0xFF) != cJSON_Array)
        av_bad(L, "set is not a list");
    lua_createtable(L, cJSON_GetArraySize(list), 0);
    for (c = list->child; c != NULL; c = c->next) {
        const char *s = c->valuestring;
        if ((c->type & 0xFF) == cJSON_NULL)
            continue;
        if ((c->type & 0xFF) != cJSON_String)
            av_bad(L, "set element is not a string");
        if (type == 'N')
            push_number_text(L, s, strlen(s));
        else if (type == 'B') {
            if (push_unbase64(L, s, strlen(s)) != 0)
                av_bad(L, "binary set element is not base64");
        } else
            lua_pushlstring(L, s, strlen(s));
        lua_rawseti(L, -2, ++i);
    }
    luaL_getmetatable(L, mt);
    lua_setmetatable(L, -2);
}

static void plain_value(lua_State *L, const cJSON *j, int depth)
{
    const cJSON *v, *c;
    const char *type;
    int t;
    if (depth > AV_MAX_DEPTH + 2)
        av_bad(L, "nesting too deep");
    if ((j->type & 0xFF) != cJSON_Object)
        av_bad(L, "not a table");
    luaL_checkstack(L, 6, "AttributeValue nesting");
    v = first_member(j);
    if (v == NULL)
        av_bad(L, "no type");
    type = v->string;
    t = v->type & 0xFF;
    if (strcmp(type, "S") == 0) {
        if (t != cJSON_String)
            av_bad(L, "S is not a string");
        lua_pushlstring(L, v->valuestring, strlen(v->valuestring));
    } else if (strcmp(type, "N") == 0) {
        if (t != cJSON_String)
            av_bad(L, "N is not a string");
        push_number_text(L, v->valuestring, strlen(v->valuestring));
    } else if (strcmp(type, "BOOL") == 0) {
        lua_pushboolean(L, t != cJSON_False);
    } else if (strcmp(type, "NULL") == 0) {
        lua_getfield(L, LUA_REGISTRYINDEX, AV_NULL_KEY);
    } else if (strcmp(type, "B") == 0) {
        if (t != cJSON_String)
            av_bad(L, "B is not a string");
        lua_createtable(L, 0, 1);
        if (push_unbase64(L, v->valuestring, strlen(v->valuestring)) != 0)
            av_bad(L, "B is not base64");
        lua_setfield(L, -2, "value");
        luaL_getmetatable(L, AV_BINARY_MT);
        lua_setmetatable(L, -2);
    } else if (strcmp(type, "L") == 0) {
        int i = 0;
        if (t != cJSON_Array)
            av_bad(L, "L is not a list");
        lua_createtable(L, cJSON_GetArraySize(v), 0);
        for (c = v->child; c != NULL; c = c->next) {
            if ((c->type & 0xFF) == cJSON_NULL)
                continue;
            plain_value(L, c, depth + 1);
            lua_rawseti(L, -2, ++i);
        }
        luaL_getmetatable(L, JSON_LIST_MT);
        lua_setmetatable(L, -2);
    } else if (strcmp(type, "M") == 0) {
        if (t != cJSON_Object)
            av_bad(L, "M is not a map");
        av_push_plain_item(L, v, depth + 1);
    } else if (strcmp(type, "SS") == 0) {
        plain_set(L, v, AV_SS_MT, 'S');
    } else if (strcmp(type, "NS") == 0) {
        plain_set(L, v, AV_NS_MT, 'N');
    } else if (strcmp(type, "BS") == 0) {
        plain_set(L, v, AV_BS_MT, 'B');
    } else {
        av_bad(L, "unknown type");
    }
}

void av_push_plain_item(lua_State *L, const void *node, int depth)
{
    const cJSON *j = node, *c;
    int n = 0;
    if ((j->type & 0xFF) != cJSON_Object)
        av_bad(L, "an item is not a map");
    for (c = j->child; c != NULL; c = c->next)
        n++;
    lua_createtable(L, 0, n);
    for (c = j->child; c != NULL; c = c->next) {
        if ((c->type & 0xFF) == cJSON_NULL || c->string == NULL)
            continue;
        lua_pushlstring(L, c->string, strlen(c->string));
        plain_value(L, c, depth);
        lua_rawset(L, -3);
    }
}

void av_register(lua_State *L)
{
    static const char *const names[] = {AV_NUMBER_MT, AV_BINARY_MT, AV_NULL_MT, AV_SS_MT,
                                        AV_NS_MT, AV_BS_MT, JSON_LIST_MT, JSON_MAP_MT, NULL};
    int i;
    for (i = 0; names[i] != NULL; i++) {
        compat_newmetatable(L, names[i]);
        lua_pop(L, 1);
    }
    lua_getfield(L, LUA_REGISTRYINDEX, AV_NULL_KEY);
    if (lua_isnil(L, -1)) {
        lua_newtable(L);
        luaL_getmetatable(L, AV_NULL_MT);
        lua_setmetatable(L, -2);
        lua_setfield(L, LUA_REGISTRYINDEX, AV_NULL_KEY);
    }
    lua_pop(L, 1);
}
