/* libFuzzer target: ddb_av_dec_parse, the exact decimal reader behind every N value, with
 * ddb_av_dec_check and ddb_av_dec_format. Whatever parses formats within the documented 200 bytes,
 * and the canonical text parses back to the same number. Beside it, ddb_number_write_int
 * against printf's "%lld" for the first 8 bytes read as an integer; ddb_number_write against
 * the shortest of printf's "%.15g", "%.16g" and "%.17g" that reads back, for them read as a
 * double; and ddb_number_read against strtod for every text the decimal reader takes. Plain
 * C, no Lua, in the C locale. */
#include "fuzz_lua.h"
#include "av.h"
#include "number.h"
#include <math.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    av_dec x, y;
    char out[200];
    size_t len;
    const char *why;
    if (size >= 8) {
        long long v;
        char mine[24], theirs[24];
        memcpy(&v, data, 8);
        len = ddb_number_write_int(v, mine);
        snprintf(theirs, sizeof theirs, "%lld", v);
        FUZZ_CHECK(strcmp(mine, theirs) == 0 && len == strlen(theirs), "%lld written as '%s'",
                   v, mine);
    }
    if (size >= 8) {
        double d;
        char mine[64], theirs[64];
        int p;
        memcpy(&d, data, 8);
        if (isfinite(d)) {
            len = ddb_number_write(d, mine, sizeof mine);
            for (p = 15; p <= 17; p++) {
                snprintf(theirs, sizeof theirs, "%.*g", p, d);
                if (strtod(theirs, NULL) == d)
                    break;
            }
            FUZZ_CHECK(strcmp(mine, theirs) == 0 && len == strlen(mine),
                       "%.17g written as '%s', printf '%s'", d, mine, theirs);
        }
    }
    if (ddb_av_dec_parse((const char *)data, size, &x) != 0)
        return 0;
    {
        char text[256];
        if (size < sizeof text) {
            double mine = ddb_number_read((const char *)data, size), theirs;
            memcpy(text, data, size);
            text[size] = '\0';
            theirs = strtod(text, NULL);
            FUZZ_CHECK(memcmp(&mine, &theirs, sizeof mine) == 0 || (isnan(mine) && isnan(theirs)),
                       "'%s' read as %.17g, strtod %.17g", text, mine, theirs);
        }
    }
    FUZZ_CHECK(x.nd >= 0 && x.nd <= AV_DIGIT_BUF, "nd %d", x.nd);
    FUZZ_CHECK(x.nd == 0 || (x.d[0] != '0' && x.d[x.nd - 1] != '0'), "digits not trimmed");
    why = ddb_av_dec_check(&x);
    len = ddb_av_dec_format(&x, out, sizeof out);
    FUZZ_CHECK(len < sizeof out, "formatted %zu bytes", len);
    FUZZ_CHECK(strlen(out) == len, "length %zu, text %zu", len, strlen(out));
    FUZZ_CHECK(ddb_av_dec_parse(out, len, &y) == 0, "canonical text '%s' does not parse", out);
    /* exact unless digits overflowed the buffer or the exponent hit the parser's clamp
     * (past 100000, far outside DynamoDB's range, where only the refusal matters) */
    if (!x.overflow && x.exp > -90000 && x.exp < 90000)
        FUZZ_CHECK(ddb_av_dec_equal(&x, &y), "'%.*s' -> '%s' changed the value", (int)size,
                   (const char *)data, out);
    if (why == NULL) {
        FUZZ_CHECK(ddb_av_dec_check(&y) == NULL, "canonical '%s' of a valid number is invalid", out);
        FUZZ_CHECK(x.nd <= AV_MAX_DIGITS, "valid with %d digits", x.nd);
    }
    return 0;
}
