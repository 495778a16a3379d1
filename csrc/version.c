/* Exact integer arithmetic on the version attribute: DynamoDB numbers keep 38 digits, a Lua
 * number 53 bits (or a 64-bit integer that wraps), so versions are stepped as decimal text. */
#include "version.h"
#include "av.h"
#include "number.h"

#include <string.h>

#define VERSION_DIGITS 38

/* Canonical text of an integer number into out (VERSION_TEXT_MAX bytes); NULL on success,
 * else why it is not a version. */
static const char *version_canonical(const char *s, size_t n, char *out)
{
    av_dec x;
    const char *why;
    if (ddb_av_dec_parse(s, n, &x) != 0)
        return "not a number";
    if ((why = ddb_av_dec_check(&x)) != NULL)
        return why;
    if (x.nd > 0 && x.exp < x.nd)
        return "not a whole number";
    if (x.nd > 0 && x.exp > VERSION_DIGITS)
        return "beyond 38 digits, where DynamoDB cannot store the next version exactly";
    ddb_av_dec_format(&x, out, VERSION_TEXT_MAX);
    return NULL;
}

/* |a| as digits, least significant first; returns the count. */
static int digits_of(const char *s, int *neg, unsigned char *d)
{
    size_t n = strlen(s), i;
    int k = 0;
    *neg = s[0] == '-';
    for (i = n; i > (size_t)*neg; i--)
        d[k++] = (unsigned char)(s[i - 1] - '0');
    if (k == 1 && d[0] == 0)
        k = 0;
    return k;
}

static int cmp_mag(const unsigned char *a, int na, const unsigned char *b, int nb)
{
    int i;
    if (na != nb)
        return na < nb ? -1 : 1;
    for (i = na - 1; i >= 0; i--)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return 0;
}

/* a + b for canonical integer texts within 38 digits; NULL on success, else why not. */
static const char *version_add(const char *a, const char *b, char *out)
{
    unsigned char x[VERSION_DIGITS + 2] = {0}, y[VERSION_DIGITS + 2] = {0},
                  r[VERSION_DIGITS + 3] = {0};
    int nx, ny, negx, negy, neg, n = 0, i, carry = 0, k = 0;
    char ca[VERSION_TEXT_MAX], cb[VERSION_TEXT_MAX];
    const char *why;
    if ((why = version_canonical(a, strlen(a), ca)) != NULL)
        return why;
    if ((why = version_canonical(b, strlen(b), cb)) != NULL)
        return why;
    nx = digits_of(ca, &negx, x);
    ny = digits_of(cb, &negy, y);
    if (negx == negy) {
        neg = negx;
        n = nx > ny ? nx : ny;
        for (i = 0; i < n; i++) {
            int s = x[i] + y[i] + carry;
            r[i] = (unsigned char)(s % 10);
            carry = s / 10;
        }
        if (carry)
            r[n++] = (unsigned char)carry;
    } else {
        /* different signs: the larger magnitude minus the smaller, with its sign */
        const unsigned char *big = x, *small = y;
        int nb = nx, c = cmp_mag(x, nx, y, ny);
        neg = negx;
        if (c < 0) {
            big = y, small = x, nb = ny, neg = negy;
        }
        for (i = 0; i < nb; i++) {
            int s = big[i] - small[i] - carry;
            carry = s < 0;
            r[i] = (unsigned char)(s < 0 ? s + 10 : s);
        }
        n = nb;
        while (n > 0 && r[n - 1] == 0)
            n--;
        if (n == 0)
            neg = 0;
    }
    if (n > VERSION_DIGITS)
        return "the next version would need more than 38 digits";
    if (n == 0) {
        strcpy(out, "0");
        return NULL;
    }
    if (neg)
        out[k++] = '-';
    for (i = n - 1; i >= 0; i--)
        out[k++] = (char)('0' + r[i]);
    out[k] = '\0';
    return NULL;
}

/* A version or step argument: text, or a whole Lua number, as canonical text. */
static const char *arg_text(lua_State *L, int idx, char *out)
{
    size_t n;
    const char *s;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        char buf[64];
#if DDB_HAS_INTEGERS
        if (lua_isinteger(L, idx)) {
            ddb_number_write_int((long long)lua_tointeger(L, idx), buf);
        } else
#endif
        {
            lua_Number v = lua_tonumber(L, idx);
            if (!(v == v) || v != (lua_Number)(long long)v || v > 9007199254740992.0 ||
                v < -9007199254740992.0)
                return "not a whole number that a Lua number holds exactly";
            ddb_number_write_int((long long)v, buf);
        }
        return version_canonical(buf, strlen(buf), out);
    }
    s = luaL_checklstring(L, idx, &n);
    return version_canonical(s, n, out);
}

const char *ddb_version_parse(const char *s, size_t n, char *out)
{
    return version_canonical(s, n, out);
}

int ddb_version_lua_parse(lua_State *L)
{
    char out[VERSION_TEXT_MAX];
    const char *why = arg_text(L, 1, out);
    if (why) {
        lua_pushnil(L);
        lua_pushstring(L, why);
        return 2;
    }
    lua_pushstring(L, out);
    return 1;
}

int ddb_version_lua_add(lua_State *L)
{
    char a[VERSION_TEXT_MAX], b[VERSION_TEXT_MAX], out[VERSION_TEXT_MAX];
    const char *why = arg_text(L, 1, a);
    if (!why)
        why = arg_text(L, 2, b);
    if (!why)
        why = version_add(a, b, out);
    if (why) {
        lua_pushnil(L);
        lua_pushstring(L, why);
        return 2;
    }
    lua_pushstring(L, out);
    return 1;
}
