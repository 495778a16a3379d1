/* AttributeValue conversion: plain Lua values to DynamoDB's typed form and back, exact numbers. */
#include "av.h"
#include "json.h"

#include <limits.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <cjson/cJSON.h>

#define AV_MAX_DEPTH 32     /* DynamoDB's own nesting limit */
#define AV_PATH_LEN 256

/* ---- exact decimal numbers ---- */

int av_dec_parse(const char *s, size_t n, av_dec *out)
{
    size_t i = 0;
    int seen_digit = 0, started = 0;
    long int_count = 0, frac_zeros = 0, e = 0;

    memset(out, 0, sizeof *out);
    if (i < n && (s[i] == '-' || s[i] == '+'))
        out->neg = s[i++] == '-';
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        seen_digit = 1;
        if (!started && s[i] == '0')
            continue;
        started = 1;
        int_count++;
        if (out->nd < AV_DIGIT_BUF)
            out->d[out->nd++] = s[i];
        else if (s[i] != '0')
            out->overflow = 1;
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            seen_digit = 1;
            if (!started && s[i] == '0') {
                frac_zeros++;
                continue;
            }
            started = 1;
            if (out->nd < AV_DIGIT_BUF)
                out->d[out->nd++] = s[i];
            else if (s[i] != '0')
                out->overflow = 1;
        }
    }
    if (!seen_digit)
        return -1;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        int eneg = 0, edigit = 0;
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            eneg = s[i++] == '-';
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            edigit = 1;
            if (e < 100000)
                e = e * 10 + (s[i] - '0');
        }
        if (!edigit)
            return -1;
        if (eneg)
            e = -e;
    }
    if (i != n)
        return -1;
    while (out->nd > 0 && out->d[out->nd - 1] == '0')
        out->nd--;
    if (out->nd == 0) {
        out->neg = 0;
        out->exp = 0;
        return 0;
    }
    out->exp = (int_count > 0 ? int_count : -frac_zeros) + e;
    return 0;
}

const char *av_dec_check(const av_dec *x)
{
    if (x->overflow || x->nd > AV_MAX_DIGITS)
        return "number has more than 38 significant digits (DynamoDB's precision)";
    if (x->nd > 0 && x->exp > 126)
        return "number is larger than DynamoDB's maximum (9.9999999999999999999999999999999999999E+125)";
    if (x->nd > 0 && x->exp < -129)
        return "number is smaller than DynamoDB's minimum magnitude (1E-130)";
    return NULL;
}

size_t av_dec_format(const av_dec *x, char *out, size_t outlen)
{
    char tmp[AV_DIGIT_BUF + 200];
    size_t k = 0;
    long i;
    if (x->nd == 0) {
        snprintf(out, outlen, "0");
        return 1;
    }
    if (x->neg)
        tmp[k++] = '-';
    if (x->exp >= x->nd && x->exp <= 40) {
        /* an integer: digits then zeros */
        memcpy(tmp + k, x->d, x->nd);
        k += x->nd;
        for (i = x->nd; i < x->exp; i++)
            tmp[k++] = '0';
    } else if (x->exp > 0 && x->exp < x->nd) {
        memcpy(tmp + k, x->d, x->exp);
        k += x->exp;
        tmp[k++] = '.';
        memcpy(tmp + k, x->d + x->exp, x->nd - x->exp);
        k += x->nd - x->exp;
    } else if (x->exp <= 0 && x->exp > -20) {
        tmp[k++] = '0';
        tmp[k++] = '.';
        for (i = 0; i < -x->exp; i++)
            tmp[k++] = '0';
        memcpy(tmp + k, x->d, x->nd);
        k += x->nd;
    } else {
        tmp[k++] = x->d[0];
        if (x->nd > 1) {
            tmp[k++] = '.';
            memcpy(tmp + k, x->d + 1, x->nd - 1);
            k += x->nd - 1;
        }
        k += snprintf(tmp + k, sizeof tmp - k, "E%+ld", x->exp - 1);
    }
    tmp[k] = '\0';
    snprintf(out, outlen, "%s", tmp);
    return k;
}

int av_dec_equal(const av_dec *a, const av_dec *b)
{
    return a->neg == b->neg && a->nd == b->nd && a->exp == b->exp && a->overflow == b->overflow &&
           memcmp(a->d, b->d, a->nd) == 0;
}

/* Shortest text that reads back as exactly d (15, 16 or 17 significant digits). */
static void shortest_double(double d, char *out, size_t n)
{
    int p;
    for (p = 15; p <= 17; p++) {
        snprintf(out, n, "%.*g", p, d);
        if (strtod(out, NULL) == d)
            return;
    }
}

/* ---- helpers ---- */

typedef struct av_path {
    char s[AV_PATH_LEN];
    size_t len;
} av_path;

/* Called for every attribute on the success path too, so plain copies, no formatting:
 * the same text as "%s%.*s" with a "." between keys and keys cut at 40 bytes. */
static size_t path_push_key(av_path *p, const char *k, size_t klen)
{
    size_t old = p->len, room;
    if (klen > 40)
        klen = 40;
    if (p->len > 0 && p->len + 1 < sizeof p->s)
        p->s[p->len++] = '.';
    room = sizeof p->s - 1 - p->len;
    if (klen > room)
        klen = room;
    memcpy(p->s + p->len, k, klen);
    p->len += klen;
    p->s[p->len] = '\0';
    return old;
}

static size_t path_push_index(av_path *p, size_t i)
{
    size_t old = p->len;
    int w = snprintf(p->s + p->len, sizeof p->s - p->len, "[%lu]", (unsigned long)i);
    if (w > 0)
        p->len = p->len + (size_t)w < sizeof p->s ? p->len + (size_t)w : sizeof p->s - 1;
    return old;
}

static void path_pop(av_path *p, size_t old)
{
    p->len = old;
    p->s[old] = '\0';
}

static int av_fail(lua_State *L, const av_path *p, const char *msg)
{
    return luaL_error(L, "%s%s%s", p->len ? p->s : "", p->len ? ": " : "", msg);
}

static void push_base64(lua_State *L, const char *s, size_t n)
{
    size_t outlen = 4 * ((n + 2) / 3);
    unsigned char *tmp = lua_newuserdata(L, outlen + 1);
    EVP_EncodeBlock(tmp, (const unsigned char *)s, (int)n);
    lua_pushlstring(L, (const char *)tmp, outlen);
    lua_remove(L, -2);
}

/* Pushes the decoded bytes, or returns -1 on bad base64. */
static int push_unbase64(lua_State *L, const char *s, size_t n)
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

static void check_text(lua_State *L, const av_path *p, const char *s, size_t n)
{
    if (memchr(s, '\0', n) != NULL)
        av_fail(L, p, "string contains a NUL byte; store bytes with ddb.binary");
    if (!json_utf8_valid(s, n))
        av_fail(L, p, "string is not valid UTF-8; store bytes with ddb.binary");
}

/* Reads a Lua number, number wrapper or numeric string at idx as a checked decimal. */
static void read_number(lua_State *L, int idx, const av_path *p, av_dec *x)
{
    char text[64];
    const char *s;
    size_t n;
    const char *why;
    if (lua_type(L, idx) == LUA_TNUMBER) {
#if DDB_HAS_INTEGERS
        if (lua_isinteger(L, idx)) {
            n = (size_t)snprintf(text, sizeof text, LUA_INTEGER_FMT, lua_tointeger(L, idx));
            av_dec_parse(text, n, x);
            return;
        }
#endif
        {
            lua_Number d = lua_tonumber(L, idx);
            if (isnan(d) || isinf(d))
                av_fail(L, p, "NaN and infinity cannot be stored in DynamoDB");
            shortest_double(d, text, sizeof text);
            av_dec_parse(text, strlen(text), x);
        }
    } else {
        int bad;
        if (lua_type(L, idx) == LUA_TTABLE)
            lua_getfield(L, idx, "value");
        else
            lua_pushvalue(L, idx);
        s = lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER
                ? lua_tolstring(L, -1, &n) : NULL;
        bad = s == NULL || av_dec_parse(s, n, x) != 0;
        lua_pop(L, 1);
        if (bad)
            av_fail(L, p, "not a number");
    }
    why = av_dec_check(x);
    if (why != NULL)
        av_fail(L, p, why);
}

static void push_dec(lua_State *L, const av_dec *x)
{
    char out[AV_DIGIT_BUF + 200];
    size_t n = av_dec_format(x, out, sizeof out);
    lua_pushlstring(L, out, n);
}

/* ---- marshal ---- */

static void marshal_value(lua_State *L, int idx, av_path *p, int depth);

static void set_av(lua_State *L, const char *type)
{
    /* stack: value -> { [type] = value } */
    lua_createtable(L, 0, 1);
    lua_insert(L, -2);
    lua_setfield(L, -2, type);
}

static void marshal_set(lua_State *L, int idx, av_path *p, const char *type)
{
    size_t n = lua_rawlen(L, idx), i;
    int seen, out;
    if (n == 0)
        av_fail(L, p, "DynamoDB cannot store an empty set; remove the attribute instead");
    luaL_checkstack(L, 6, "set");
    lua_newtable(L);
    seen = lua_gettop(L);
    lua_createtable(L, (int)n, 0);
    out = lua_gettop(L);
    for (i = 1; i <= n; i++) {
        size_t old = path_push_index(p, i);
        size_t len;
        const char *s;
        lua_rawgeti(L, idx, (int)i);
        if (type[0] == 'N') {
            av_dec x;
            read_number(L, -1, p, &x);
            lua_pop(L, 1);
            push_dec(L, &x);
        } else {
            if (lua_type(L, -1) != LUA_TSTRING)
                av_fail(L, p, type[0] == 'S' ? "string set element is not a string"
                                             : "binary set element is not a string of bytes");
            s = lua_tolstring(L, -1, &len);
            if (type[0] == 'S')
                check_text(L, p, s, len);
        }
        /* the canonical form (numbers) or the raw bytes decide duplicates */
        lua_pushvalue(L, -1);
        lua_rawget(L, seen);
        if (!lua_isnil(L, -1))
            av_fail(L, p, "set holds the same value twice");
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushboolean(L, 1);
        lua_rawset(L, seen);
        if (type[0] == 'B') {
            s = lua_tolstring(L, -1, &len);
            push_base64(L, s, len);
            lua_remove(L, -2);
        }
        lua_rawseti(L, out, (int)i);
        path_pop(p, old);
    }
    lua_remove(L, seen);
    set_av(L, type);
}

static void marshal_table(lua_State *L, int idx, av_path *p, int depth)
{
    char err[128];
    size_t len, i;
    int kind, out;
    if (depth >= AV_MAX_DEPTH)
        av_fail(L, p, "nesting deeper than DynamoDB's 32 levels (or a cyclic table)");
    /* most tables are plain maps and lists: one look for a metatable, not seven */
    if (!lua_getmetatable(L, idx))
        goto plain;
    lua_pop(L, 1);
    if (json_has_mt(L, idx, AV_NUMBER_MT)) {
        av_dec x;
        read_number(L, idx, p, &x);
        push_dec(L, &x);
        set_av(L, "N");
        return;
    }
    if (json_has_mt(L, idx, AV_BINARY_MT)) {
        const char *s;
        lua_getfield(L, idx, "value");
        if (lua_type(L, -1) != LUA_TSTRING)
            av_fail(L, p, "ddb.binary value is not a string");
        s = lua_tolstring(L, -1, &len);
        push_base64(L, s, len);
        lua_remove(L, -2);
        set_av(L, "B");
        return;
    }
    if (json_has_mt(L, idx, AV_NULL_MT)) {
        lua_pushboolean(L, 1);
        set_av(L, "NULL");
        return;
    }
    if (json_has_mt(L, idx, AV_SS_MT)) {
        marshal_set(L, idx, p, "SS");
        return;
    }
    if (json_has_mt(L, idx, AV_NS_MT)) {
        marshal_set(L, idx, p, "NS");
        return;
    }
    if (json_has_mt(L, idx, AV_BS_MT)) {
        marshal_set(L, idx, p, "BS");
        return;
    }
    if (lua_getmetatable(L, idx)) {
        int plain;
        luaL_getmetatable(L, JSON_LIST_MT);
        plain = lua_rawequal(L, -1, -2);
        lua_pop(L, 1);
        luaL_getmetatable(L, JSON_MAP_MT);
        plain = plain || lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (!plain)
            av_fail(L, p, "table with a foreign metatable cannot be stored");
    }
plain:
    kind = json_table_kind(L, idx, &len, err, sizeof err);
    if (kind < 0)
        av_fail(L, p, err);
    luaL_checkstack(L, 6, "AttributeValue nesting");
    if (kind == 1) {
        lua_createtable(L, (int)len, 0);
        out = lua_gettop(L);
        for (i = 1; i <= len; i++) {
            size_t old = path_push_index(p, i);
            lua_rawgeti(L, idx, (int)i);
            marshal_value(L, lua_gettop(L), p, depth + 1);
            lua_remove(L, -2);
            lua_rawseti(L, out, (int)i);
            path_pop(p, old);
        }
        luaL_getmetatable(L, JSON_LIST_MT);
        lua_setmetatable(L, out);
        set_av(L, "L");
        return;
    }
    lua_newtable(L);
    out = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        size_t klen, old;
        const char *k;
        /* a ddb.map skips json_table_kind's key check: lua_tolstring would give NULL for a
         * boolean key (then passed to snprintf and memchr) and turn a number key into a
         * string under lua_next */
        if (lua_type(L, -2) != LUA_TSTRING) {
            char msg[64];
            snprintf(msg, sizeof msg, "map key is a %s, not a string", luaL_typename(L, -2));
            av_fail(L, p, msg);
        }
        k = lua_tolstring(L, -2, &klen);
        old = path_push_key(p, k, klen);
        check_text(L, p, k, klen);
        marshal_value(L, lua_gettop(L), p, depth + 1);
        lua_remove(L, -2);
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, out);
        path_pop(p, old);
    }
    luaL_getmetatable(L, JSON_MAP_MT);
    lua_setmetatable(L, out);
    set_av(L, "M");
}

static void marshal_value(lua_State *L, int idx, av_path *p, int depth)
{
    size_t n;
    const char *s;
    av_dec x;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &n);
        check_text(L, p, s, n);
        lua_pushvalue(L, idx);
        set_av(L, "S");
        return;
    case LUA_TNUMBER:
#if DDB_HAS_INTEGERS
        if (lua_isinteger(L, idx)) {
            /* an integer's canonical text is its plain decimal form (19 digits at most) */
            char text[32];
            int w = snprintf(text, sizeof text, LUA_INTEGER_FMT, lua_tointeger(L, idx));
            lua_pushlstring(L, text, (size_t)w);
            set_av(L, "N");
            return;
        }
#endif
        read_number(L, idx, p, &x);
        push_dec(L, &x);
        set_av(L, "N");
        return;
    case LUA_TBOOLEAN:
        lua_pushboolean(L, lua_toboolean(L, idx));
        set_av(L, "BOOL");
        return;
    case LUA_TTABLE:
        marshal_table(L, idx, p, depth);
        return;
    case LUA_TNIL:
        av_fail(L, p, "nil cannot be stored (use ddb.null for NULL)");
        return;
    default: {
        char msg[96];
        snprintf(msg, sizeof msg, "a %s cannot be stored in DynamoDB", luaL_typename(L, idx));
        av_fail(L, p, msg);
    }
    }
}

int av_lua_marshal(lua_State *L)
{
    av_path p;
    p.len = 0;
    p.s[0] = '\0';
    lua_settop(L, 1);
    marshal_value(L, 1, &p, 0);
    return 1;
}

int av_lua_marshal_item(lua_State *L)
{
    av_path p;
    int out;
    p.len = 0;
    p.s[0] = '\0';
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_newtable(L);
    out = 2;
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        size_t klen, old;
        const char *k;
        if (lua_type(L, -2) != LUA_TSTRING)
            av_fail(L, &p, "item attribute names must be strings");
        k = lua_tolstring(L, -2, &klen);
        old = path_push_key(&p, k, klen);
        if (klen == 0)
            av_fail(L, &p, "attribute name is empty");
        check_text(L, &p, k, klen);
        marshal_value(L, lua_gettop(L), &p, 1);
        lua_remove(L, -2);
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, out);
        path_pop(&p, old);
    }
    luaL_getmetatable(L, JSON_MAP_MT);
    lua_setmetatable(L, out);
    return 1;
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

/* ---- equality and size ---- */

static int av_equal(lua_State *L, int a, int b, int depth);

static int number_text_equal(lua_State *L, int a, int b)
{
    av_dec x, y;
    size_t na, nb;
    const char *sa = lua_tolstring(L, a, &na), *sb = lua_tolstring(L, b, &nb);
    if (sa == NULL || sb == NULL || av_dec_parse(sa, na, &x) || av_dec_parse(sb, nb, &y))
        return 0;
    return av_dec_equal(&x, &y);
}

/* Sets compare as sets: every element of a has an equal element in b, and sizes match
 * (a DynamoDB set has no duplicates). */
static int set_equal(lua_State *L, int a, int b, int numeric)
{
    size_t na, nb, i, j;
    if (lua_type(L, a) != LUA_TTABLE || lua_type(L, b) != LUA_TTABLE)
        return 0;
    na = lua_rawlen(L, a);
    nb = lua_rawlen(L, b);
    if (na != nb)
        return 0;
    for (i = 1; i <= na; i++) {
        int found = 0;
        lua_rawgeti(L, a, (int)i);
        for (j = 1; j <= nb && !found; j++) {
            lua_rawgeti(L, b, (int)j);
            found = numeric ? number_text_equal(L, -2, -1) : lua_rawequal(L, -2, -1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        if (!found)
            return 0;
    }
    return 1;
}

static int map_equal(lua_State *L, int a, int b, int depth)
{
    size_t na = 0, nb = 0;
    int eq = 1;
    if (lua_type(L, a) != LUA_TTABLE || lua_type(L, b) != LUA_TTABLE)
        return 0;
    lua_pushnil(L);
    while (eq && lua_next(L, a) != 0) {
        na++;
        lua_pushvalue(L, -2);
        lua_rawget(L, b);
        eq = !lua_isnil(L, -1) && av_equal(L, lua_gettop(L) - 1, lua_gettop(L), depth + 1);
        lua_pop(L, 2);
    }
    if (!eq) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushnil(L);
    while (lua_next(L, b) != 0) {
        nb++;
        lua_pop(L, 1);
    }
    return na == nb;
}

static int av_equal(lua_State *L, int a, int b, int depth)
{
    const char *ta, *tb;
    int va, vb, eq = 0;
    if (depth > AV_MAX_DEPTH + 2 || lua_type(L, a) != LUA_TTABLE || lua_type(L, b) != LUA_TTABLE)
        return 0;
    luaL_checkstack(L, 8, "AttributeValue nesting");
    lua_pushnil(L);
    if (lua_next(L, a) == 0)
        return 0;
    va = lua_gettop(L);
    lua_pushnil(L);
    if (lua_next(L, b) == 0) {
        lua_pop(L, 2);
        return 0;
    }
    vb = lua_gettop(L);
    ta = lua_tostring(L, va - 1);
    tb = lua_tostring(L, vb - 1);
    if (ta != NULL && tb != NULL && strcmp(ta, tb) == 0) {
        if (strcmp(ta, "N") == 0)
            eq = number_text_equal(L, va, vb);
        else if (strcmp(ta, "SS") == 0 || strcmp(ta, "BS") == 0)
            eq = set_equal(L, va, vb, 0);
        else if (strcmp(ta, "NS") == 0)
            eq = set_equal(L, va, vb, 1);
        else if (strcmp(ta, "M") == 0)
            eq = map_equal(L, va, vb, depth);
        else if (strcmp(ta, "L") == 0) {
            size_t n = lua_type(L, va) == LUA_TTABLE ? lua_rawlen(L, va) : 0, i;
            eq = lua_type(L, vb) == LUA_TTABLE && lua_rawlen(L, vb) == n;
            for (i = 1; eq && i <= n; i++) {
                lua_rawgeti(L, va, (int)i);
                lua_rawgeti(L, vb, (int)i);
                eq = av_equal(L, lua_gettop(L) - 1, lua_gettop(L), depth + 1);
                lua_pop(L, 2);
            }
        } else
            eq = lua_rawequal(L, va, vb);
    }
    lua_settop(L, va - 2);
    return eq;
}

int av_lua_equal(lua_State *L)
{
    lua_settop(L, 2);
    lua_pushboolean(L, av_equal(L, 1, 2, 0));
    return 1;
}

static size_t number_size(lua_State *L, int idx)
{
    av_dec x;
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (s == NULL || av_dec_parse(s, n, &x) != 0)
        return 21;
    /* DynamoDB: about one byte per two significant digits, plus one */
    return (size_t)(x.nd + 1) / 2 + 1;
}

static size_t av_size(lua_State *L, int idx, int depth)
{
    size_t total = 0, n, i;
    const char *type;
    int v;
    if (depth > AV_MAX_DEPTH + 2 || lua_type(L, idx) != LUA_TTABLE)
        return 0;
    luaL_checkstack(L, 6, "AttributeValue nesting");
    lua_pushnil(L);
    if (lua_next(L, idx) == 0)
        return 0;
    v = lua_gettop(L);
    type = lua_tostring(L, v - 1);
    if (type == NULL)
        type = "";
    if (strcmp(type, "S") == 0) {
        lua_tolstring(L, v, &n);
        total = n;
    } else if (strcmp(type, "B") == 0) {
        lua_tolstring(L, v, &n);
        total = n / 4 * 3;
    } else if (strcmp(type, "N") == 0) {
        total = number_size(L, v);
    } else if (strcmp(type, "BOOL") == 0 || strcmp(type, "NULL") == 0) {
        total = 1;
    } else if (lua_type(L, v) == LUA_TTABLE) {
        int is_map = strcmp(type, "M") == 0;
        total = (strcmp(type, "L") == 0 || is_map) ? 3 : 0;
        if (is_map) {
            lua_pushnil(L);
            while (lua_next(L, v) != 0) {
                n = lua_type(L, -2) == LUA_TSTRING ? lua_rawlen(L, -2) : 0;
                total += n + 1 + av_size(L, lua_gettop(L), depth + 1);
                lua_pop(L, 1);
            }
        } else {
            size_t len = lua_rawlen(L, v);
            for (i = 1; i <= len; i++) {
                lua_rawgeti(L, v, (int)i);
                if (strcmp(type, "L") == 0)
                    total += 1 + av_size(L, lua_gettop(L), depth + 1);
                else if (strcmp(type, "NS") == 0)
                    total += number_size(L, -1);
                else {
                    lua_tolstring(L, -1, &n);
                    total += type[0] == 'B' ? n / 4 * 3 : n;
                }
                lua_pop(L, 1);
            }
        }
    }
    lua_settop(L, v - 2);
    return total;
}

int av_lua_item_size(lua_State *L)
{
    size_t total = 0, n;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        n = lua_type(L, -2) == LUA_TSTRING ? lua_rawlen(L, -2) : 0;
        total += n + av_size(L, lua_gettop(L), 1);
        lua_pop(L, 1);
    }
    lua_pushnumber(L, (lua_Number)total);
    return 1;
}

typedef struct name_ref {
    const char *s;
    size_t n;
} name_ref;

static int name_ref_cmp(const void *a, const void *b)
{
    const name_ref *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->n < y->n ? x->n : y->n);
    if (c != 0)
        return c;
    return x->n < y->n ? -1 : (x->n > y->n);
}

static int in_set(lua_State *L, int set, int key)
{
    int r;
    if (set == 0)
        return 0;
    lua_pushvalue(L, key);
    lua_rawget(L, set);
    r = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return r;
}

/* Pushes the names as a sorted list (the order of the expression a write sends). */
static void push_sorted(lua_State *L, name_ref *names, size_t n)
{
    size_t i;
    if (n > 1)
        qsort(names, n, sizeof *names, name_ref_cmp);
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        lua_pushlstring(L, names[i].s, names[i].n);
        lua_rawseti(L, -2, (int)i + 1);
    }
}

/* 1 when the plain scalar at v is provably the value of the AttributeValue at av (a string
 * equal to S, a number equal by value to N, a boolean equal to BOOL): such an attribute is
 * unchanged without being marshalled. 0 means "not provably": marshal and compare. */
/* The type name of the AttributeValue at av and its value pushed on the stack, or NULL
 * (nothing pushed) when av is not a one-member table. */
static const char *av_open(lua_State *L, int av)
{
    const char *type;
    if (lua_type(L, av) != LUA_TTABLE)
        return NULL;
    lua_pushnil(L);
    if (lua_next(L, av) == 0)
        return NULL;
    if (lua_type(L, -2) != LUA_TSTRING) {
        lua_pop(L, 2);
        return NULL;
    }
    type = lua_tostring(L, -2);
    lua_pushvalue(L, -2);
    if (lua_next(L, av) != 0) {      /* a second member: not a value this module reads */
        lua_pop(L, 4);
        return NULL;
    }
    lua_remove(L, -2);               /* leaves the value; the key string stays in av */
    return type;
}

static int same_scalar(lua_State *L, int v, int av)
{
    const char *type;
    int t = lua_type(L, v), same = 0, val;
    if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN)
        return 0;
    type = av_open(L, av);
    if (type == NULL)
        return 0;
    val = lua_gettop(L);
    if (t == LUA_TSTRING && strcmp(type, "S") == 0) {
        same = lua_rawequal(L, v, val);
    } else if (t == LUA_TBOOLEAN && strcmp(type, "BOOL") == 0) {
        same = lua_type(L, val) == LUA_TBOOLEAN && lua_toboolean(L, v) == lua_toboolean(L, val);
    } else if (t == LUA_TNUMBER && strcmp(type, "N") == 0 && lua_type(L, val) == LUA_TSTRING) {
        char text[64];
        size_t n = 0, m;
        const char *stored = lua_tolstring(L, val, &m);
        av_dec x, y;
        int parsed = av_dec_parse(stored, m, &y) == 0, ok = 1;
#if DDB_HAS_INTEGERS
        if (lua_isinteger(L, v))
            n = (size_t)snprintf(text, sizeof text, LUA_INTEGER_FMT, lua_tointeger(L, v));
        else
#endif
        {
            lua_Number d = lua_tonumber(L, v);
            ok = !isnan(d) && !isinf(d);
            if (ok && parsed && !y.overflow && y.nd <= 15 && y.exp < 300 && y.exp > -300) {
                /* a stored value of 15 significant digits or fewer is exactly one double
                 * (DBL_DIG), as is the shortest text of d: equal doubles, equal values */
                double sd = strtod(stored, NULL);
                if (sd == 0 || fabs(sd) >= DBL_MIN) {
                    lua_settop(L, val - 1);
                    return sd == d;
                }
            }
            if (ok) {
                shortest_double(d, text, sizeof text);
                n = strlen(text);
            }
        }
        same = ok && parsed && av_dec_parse(text, n, &x) == 0 && av_dec_check(&x) == NULL &&
               av_dec_equal(&x, &y);
    }
    lua_settop(L, val - 1);
    return same;
}

#define SAME_SET_MAX 32

/* 1 when the plain value at v is provably the value of the AttributeValue at av, as marshal
 * would make it and av_equal compare it: scalars (same_scalar), ddb.null, string sets, and
 * maps and lists of such, recursively. 0 means "not provably": marshal and compare. A value
 * that would not marshal is never "the same" (marshal then refuses it). */
static int same_value(lua_State *L, int v, int av, int depth)
{
    const char *type;
    int val, same = 0, mt;
    if (lua_type(L, v) != LUA_TTABLE)
        return same_scalar(L, v, av);
    if (depth >= AV_MAX_DEPTH)
        return 0;
    luaL_checkstack(L, 8, "AttributeValue nesting");
    type = av_open(L, av);
    if (type == NULL)
        return 0;
    val = lua_gettop(L);
    mt = lua_getmetatable(L, v);
    if (mt)
        lua_pop(L, 1);
    if (mt && json_has_mt(L, v, AV_NULL_MT)) {
        same = strcmp(type, "NULL") == 0;
    } else if (mt && json_has_mt(L, v, AV_SS_MT)) {
        /* equal sizes and each side within the other: the same set, duplicates impossible */
        size_t n = lua_rawlen(L, v), i, j;
        same = strcmp(type, "SS") == 0 && lua_type(L, val) == LUA_TTABLE &&
               lua_rawlen(L, val) == n && n > 0 && n <= SAME_SET_MAX;
        for (i = 1; same && i <= 2 * n; i++) {
            int from = i <= n ? v : val, to = i <= n ? val : v, found = 0;
            lua_rawgeti(L, from, (int)(i <= n ? i : i - n));
            if (lua_type(L, -1) != LUA_TSTRING) {
                lua_pop(L, 1);
                same = 0;
                break;
            }
            for (j = 1; j <= n && !found; j++) {
                lua_rawgeti(L, to, (int)j);
                found = lua_rawequal(L, -1, -2);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
            same = found;
        }
    } else if (!mt || json_has_mt(L, v, JSON_LIST_MT) || json_has_mt(L, v, JSON_MAP_MT)) {
        char err[128];
        size_t len = 0, n = 0, i;
        int kind = json_table_kind(L, v, &len, err, sizeof err);
        if (kind == 1 && strcmp(type, "L") == 0 && lua_type(L, val) == LUA_TTABLE &&
            lua_rawlen(L, val) == len) {
            same = 1;
            for (i = 1; same && i <= len; i++) {
                lua_rawgeti(L, v, (int)i);
                lua_rawgeti(L, val, (int)i);
                same = same_value(L, lua_gettop(L) - 1, lua_gettop(L), depth + 1);
                lua_pop(L, 2);
            }
        } else if (kind == 0 && strcmp(type, "M") == 0 && lua_type(L, val) == LUA_TTABLE) {
            same = 1;
            lua_pushnil(L);
            while (lua_next(L, v) != 0) {
                int k = lua_gettop(L) - 1;
                n++;
                if (same && lua_type(L, k) == LUA_TSTRING) {
                    lua_pushvalue(L, k);
                    lua_rawget(L, val);
                    same = !lua_isnil(L, -1) &&
                           same_value(L, lua_gettop(L) - 1, lua_gettop(L), depth + 1);
                    lua_pop(L, 1);
                } else {
                    same = 0;
                }
                lua_pop(L, 1);
            }
            if (same) {
                size_t m = 0;
                lua_pushnil(L);
                while (lua_next(L, val) != 0) {
                    m++;
                    lua_pop(L, 1);
                }
                same = m == n;
            }
        }
    }
    lua_settop(L, val - 1);
    return same;
}

/* core.plan_diff(old, item, skip, override, keep_old) -> sets, avs, removes, size
 * What a write has to send to turn the stored item old (AttributeValues, or nil when none
 * is stored) into item (plain values, as the caller's function returned them).
 * sets: the attributes of item whose values differ from old's (numbers by value, sets
 * unordered), sorted; removes: those of old that item lacks, sorted; neither lists the
 * names in the set skip (key, version, tokens: the caller writes those). avs: name ->
 * AttributeValue for every attribute in sets and every skipped one that item holds and
 * that is not provably the stored value (same_value); with keep_old false (a put, which
 * sends the whole item) for every attribute of item.
 * size: the stored item's size as DynamoDB counts it: item's attributes, old's that stay
 * when keep_old is true (an update), and the values of override (name -> AttributeValue) in
 * place of either. A value that cannot be stored raises, naming the attribute. */
int av_lua_plan_diff(lua_State *L)
{
    int old, skip, over, keep, avs;
    size_t nnew = 0, nold = 0, nsets = 0, nremoves = 0, total = 0;
    name_ref small[64], *sets, *removes;
    av_path p;

    lua_settop(L, 5);
    old = lua_istable(L, 1) ? 1 : 0;
    luaL_checktype(L, 2, LUA_TTABLE);
    skip = lua_istable(L, 3) ? 3 : 0;
    over = lua_istable(L, 4) ? 4 : 0;
    keep = lua_toboolean(L, 5);
    p.len = 0;
    p.s[0] = '\0';
    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
        nnew++;
        lua_pop(L, 1);
    }
    if (old) {
        lua_pushnil(L);
        while (lua_next(L, old) != 0) {
            nold++;
            lua_pop(L, 1);
        }
    }
    /* scratch on the stack for a usual item, else in userdata (collected should anything
     * below raise) */
    if (nnew + nold <= sizeof small / sizeof small[0])
        sets = small;
    else
        sets = lua_newuserdata(L, (nnew + nold) * sizeof *sets);
    removes = sets + nnew;
    lua_createtable(L, 0, 4);
    avs = lua_gettop(L);

    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
        int k = lua_gettop(L) - 1, v = lua_gettop(L), o, changed, skipped;
        size_t klen, depth_mark;
        const char *ks;
        if (lua_type(L, k) != LUA_TSTRING)
            av_fail(L, &p, "item attribute names must be strings");
        ks = lua_tolstring(L, k, &klen);
        depth_mark = path_push_key(&p, ks, klen);
        if (klen == 0)
            av_fail(L, &p, "attribute name is empty");
        check_text(L, &p, ks, klen);
        skipped = in_set(L, skip, k);
        lua_pushvalue(L, k);
        if (old)
            lua_rawget(L, old);
        else
            lua_pushnil(L);
        o = lua_gettop(L);
        if (keep && !lua_isnil(L, o) && same_value(L, v, o, 1)) {
            /* unchanged: the stored value's size, no AttributeValue made */
            if (!in_set(L, over, k))
                total += klen + av_size(L, o, 1);
        } else {
            marshal_value(L, v, &p, 1);                                 /* the AV at o + 1 */
            changed = lua_isnil(L, o) || !av_equal(L, o, o + 1, 0);
            if (changed && !skipped) {
                sets[nsets].s = ks;
                sets[nsets].n = klen;
                nsets++;
            }
            if (!in_set(L, over, k))
                total += klen + av_size(L, o + 1, 1);
            if (changed || skipped || !keep) {
                lua_pushvalue(L, k);
                lua_pushvalue(L, o + 1);
                lua_rawset(L, avs);
            }
        }
        path_pop(&p, depth_mark);
        lua_settop(L, k);
    }
    if (old) {
        lua_pushnil(L);
        while (lua_next(L, old) != 0) {
            int k = lua_gettop(L) - 1, absent;
            size_t klen = 0;
            const char *ks = lua_type(L, k) == LUA_TSTRING ? lua_tolstring(L, k, &klen) : NULL;
            if (ks == NULL)
                return luaL_error(L, "plan_diff: stored attribute names must be strings");
            lua_pushvalue(L, k);
            lua_rawget(L, 2);
            absent = lua_isnil(L, -1);
            lua_pop(L, 1);
            if (absent && !in_set(L, skip, k)) {
                removes[nremoves].s = ks;
                removes[nremoves].n = klen;
                nremoves++;
            } else if (absent && keep && !in_set(L, over, k)) {
                total += klen + av_size(L, lua_gettop(L), 1);
            }
            lua_pop(L, 1);
        }
    }
    if (over) {
        lua_pushnil(L);
        while (lua_next(L, over) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING)
                total += lua_rawlen(L, -2) + av_size(L, lua_gettop(L), 1);
            lua_pop(L, 1);
        }
    }
    push_sorted(L, sets, nsets);
    lua_pushvalue(L, avs);
    push_sorted(L, removes, nremoves);
    lua_pushnumber(L, (lua_Number)total);
    return 4;
}

int av_lua_number_canonical(lua_State *L)
{
    av_dec x;
    av_path p;
    const char *why;
    p.len = 0;
    p.s[0] = '\0';
    if (lua_type(L, 1) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, 1, &n);
        if (av_dec_parse(s, n, &x) != 0) {
            lua_pushnil(L);
            lua_pushliteral(L, "not a number");
            return 2;
        }
        why = av_dec_check(&x);
        if (why != NULL) {
            lua_pushnil(L);
            lua_pushstring(L, why);
            return 2;
        }
    } else {
        luaL_checkany(L, 1);
        read_number(L, 1, &p, &x);
    }
    push_dec(L, &x);
    return 1;
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
