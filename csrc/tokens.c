/* Write tokens of ddb.optimistic: each write records a random token in a short history kept
 * in the item ("1 <version>:<token> ..." newest first), so that a write whose answer was
 * lost can be recognised later. Made here because they are per write, and Lua's string work
 * for them cost more than the rest of the token handling together. */
#include "tokens.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <openssl/rand.h>

/* core.random_token(n) -> n random bytes (a multiple of 3) as unpadded base64url text */
int tokens_lua_random(lua_State *L)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[48];
    char text[64];
    lua_Integer n = luaL_checkinteger(L, 1);
    size_t i, o = 0;
    luaL_argcheck(L, n >= 3 && n <= (lua_Integer)sizeof raw && n % 3 == 0, 1,
                  "a multiple of 3 between 3 and 48");
    if (RAND_bytes(raw, (int)n) != 1)
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

static int token_char(int c)
{
    return isalnum(c) || c == '-' || c == '_';
}

/* "<digits>:<token characters>" */
static int valid_entry(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && isdigit((unsigned char)s[i]))
        i++;
    if (i == 0 || i + 1 >= n || s[i] != ':')
        return 0;
    for (i++; i < n; i++)
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

/* core.history_push(old, version, token, limit) -> history
 * The history after a write of version with token: the new entry, then the newest limit - 1
 * entries of old. An old history that is absent or not in this format (any field that is
 * not <version>:<token>) is dropped, as if the item had none. */
int tokens_lua_history_push(lua_State *L)
{
    size_t n = 0, tlen, pos = 0, flen, i;
    const char *old = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &n) : NULL;
    lua_Integer version = luaL_checkinteger(L, 2);
    const char *token = luaL_checklstring(L, 3, &tlen);
    lua_Integer limit = luaL_checkinteger(L, 4);
    const char *field;
    char head[48];
    luaL_Buffer b;
    int kept = 0, valid = old != NULL;

    luaL_argcheck(L, version >= 0, 2, "a version is a non-negative integer");
    luaL_argcheck(L, tlen > 0, 3, "a token is not empty");
    for (i = 0; i < tlen; i++)
        luaL_argcheck(L, token_char((unsigned char)token[i]), 3,
                      "a token is made of letters, digits, '-' and '_'");
    luaL_argcheck(L, limit >= 1, 4, "a history holds at least the new entry");
    if (valid) {
        /* the whole old history is checked before any of it is kept */
        flen = next_field(old, n, &pos, &field);
        valid = flen == 1 && field[0] == '1';
        while (valid && (flen = next_field(old, n, &pos, &field)) > 0)
            valid = valid_entry(field, flen);
    }
    snprintf(head, sizeof head, "1 %lld:", (long long)version);
    luaL_buffinit(L, &b);
    luaL_addstring(&b, head);
    luaL_addlstring(&b, token, tlen);
    if (valid) {
        pos = 0;
        next_field(old, n, &pos, &field);   /* the format field */
        while (kept < limit - 1 && (flen = next_field(old, n, &pos, &field)) > 0) {
            luaL_addchar(&b, ' ');
            luaL_addlstring(&b, field, flen);
            kept++;
        }
    }
    luaL_pushresult(&b);
    return 1;
}
