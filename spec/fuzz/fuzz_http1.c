/* libFuzzer target: the one-call path's HTTP/1.1 reader (csrc/http1.c) on arbitrary bytes
 * from the network. A head it accepts lies inside the input and has a status from 100 to
 * 599; a chunked body decoded as the bytes arrive in pieces (sizes from the input), with
 * the bytes already decoded dropped between pieces as the one-call path does, gives what one
 * pass over all of them gives, never more bytes than came in nor more than the limit (also
 * from the input). The whole answer reader (answer.c, both transports' reader) gives the same
 * outcome, body and keep-alive verdict fed all at once or in those pieces. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "http1.h"
#include "answer.h"

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, __VA_ARGS__); \
        fputc('\n', stderr); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data + 2;
    size_t n, step, k, max;
    http1_head h;
    http1_chunks whole, parts;
    buf a, b, window;
    int r, ra, rb;

    if (size < 2)
        return 0;
    step = (size_t)data[0] % 17 + 1;   /* how many bytes arrive at a time */
    max = data[1] < 128 ? 0 : (size_t)(data[1] - 128) * 8;   /* 0: no limit */
    n = size - 2;
    r = ddb_http1_parse_head(p, n, &h);
    CHECK(r >= HTTP1_TOO_LARGE && r <= 1 && r != HTTP1_NO_MEMORY, "parse_head gave %d", r);
    CHECK(r != HTTP1_TOO_LARGE || n >= HTTP1_MAX_HEAD, "too large at %zu bytes", n);
    if (r == 1) {
        CHECK(h.head_len > 0 && h.head_len <= n, "head_len %zu of %zu", h.head_len, n);
        CHECK(h.status >= 100 && h.status <= 599, "status %d", h.status);
        CHECK(h.content_length >= -1, "content_length %lld", h.content_length);
        /* a head found is found again in any longer input, the same */
        {
            http1_head again;
            CHECK(ddb_http1_parse_head(p, h.head_len, &again) == 1 &&
                  again.head_len == h.head_len && again.status == h.status, "head unstable");
        }
    }

    /* the bytes after the head (or all of them) as a chunked body */
    k = r == 1 ? h.head_len : 0;
    ddb_buf_init(&a);
    ddb_buf_init(&b);
    ddb_buf_init(&window);
    ddb_http1_chunks_init(&whole, max);
    whole.pos = k;
    ra = ddb_http1_dechunk(&whole, p, n, &a);
    /* piecewise: only the bytes not yet decoded are kept, at the start of a window */
    ddb_http1_chunks_init(&parts, max);
    {
        size_t fed = k, dropped = k;
        for (;;) {
            size_t upto = fed + step < n ? fed + step : n;
            CHECK(buf_add(&window, p + fed, upto - fed) == 0, "out of memory");
            fed = upto;
            rb = ddb_http1_dechunk(&parts, window.data ? window.data : "", window.len, &b);
            if (rb != 0 || fed == n)
                break;
            memmove(window.data, window.data + parts.pos, window.len - parts.pos);
            window.len -= parts.pos;
            dropped += parts.pos;
            parts.pos = 0;
        }
        parts.pos += dropped;
    }
    CHECK(ra != HTTP1_NO_MEMORY && rb != HTTP1_NO_MEMORY, "out of memory");
    CHECK(ra == rb, "piecewise gave %d where one pass gave %d", rb, ra);
    if (ra == 1) {
        CHECK(whole.pos == parts.pos && whole.pos <= n, "end %zu vs %zu", whole.pos, parts.pos);
        CHECK(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0),
              "bodies differ");
        CHECK(a.len <= n, "body of %zu from %zu bytes", a.len, n);
        CHECK(max == 0 || a.len <= max, "body of %zu over the limit %zu", a.len, max);
    }
    ddb_buf_free(&a);
    ddb_buf_free(&b);
    ddb_buf_free(&window);

    {
        buf in1, body1, in2, body2;
        answer x1, x2;
        size_t fed = 0, len1 = 0, len2 = 0;
        const char *b1, *b2;
        int r1, r2 = ANSWER_MORE;
        ddb_buf_init(&in1);
        ddb_buf_init(&body1);
        ddb_buf_init(&in2);
        ddb_buf_init(&body2);
        ddb_answer_start(&x1, &in1, &body1, max ? max : 1024);
        ddb_answer_start(&x2, &in2, &body2, max ? max : 1024);
        r1 = ddb_answer_feed(&x1, p, n);
        if (r1 == ANSWER_MORE)
            r1 = ddb_answer_closed(&x1);
        while (fed < n && r2 == ANSWER_MORE) {
            size_t k2 = n - fed < step ? n - fed : step;
            r2 = ddb_answer_feed(&x2, p + fed, k2);
            fed += k2;
        }
        if (r2 == ANSWER_MORE)
            r2 = ddb_answer_closed(&x2);
        CHECK(r1 != ANSWER_NO_MEMORY && r2 != ANSWER_NO_MEMORY, "out of memory");
        CHECK(r1 == r2, "answer: pieces gave %d where one pass gave %d", r2, r1);
        if (r1 == ANSWER_DONE) {
            b1 = ddb_answer_body(&x1, &len1);
            b2 = ddb_answer_body(&x2, &len2);
            CHECK(len1 == len2 && (len1 == 0 || memcmp(b1, b2, len1) == 0), "answer bodies differ");
            CHECK(len1 <= (max ? max : 1024), "answer body of %zu over the limit", len1);
            /* bytes past the answer count only where they were fed */
            CHECK(fed < n || ddb_answer_keep(&x1) == ddb_answer_keep(&x2), "keep-alive verdicts differ");
            CHECK(x1.head.status == x2.head.status, "statuses differ");
        }
        ddb_buf_free(&in1);
        ddb_buf_free(&body1);
        ddb_buf_free(&in2);
        ddb_buf_free(&body2);
    }
    return 0;
}
