/* UTF-8 validity, as JSON text and DynamoDB strings need it. */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

size_t ddb_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0], cp;
    size_t need, k;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n <= need)
        return 0;
    for (k = 1; k <= need; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need + 1;
}

int ddb_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        size_t len;
        if (i + 8 <= n) {
            /* most text is ASCII: step over 8 such bytes at a time */
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ull) == 0) {
                i += 8;
                continue;
            }
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        len = ddb_utf8_seq(s + i, n - i);
        if (len == 0)
            return 0;
        i += len;
    }
    return 1;
}
