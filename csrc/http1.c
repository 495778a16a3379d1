/* HTTP/1.1 answer heads and chunked bodies (RFC 9112), and the request every path sends. */
#include "http1.h"
#include "number.h"

#include <stdio.h>
#include <string.h>

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Whether the n bytes at p are word (lowercase) whatever their case. */
static int is_word(const char *p, size_t n, const char *word)
{
    size_t i;
    if (strlen(word) != n)
        return 0;
    for (i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != word[i])
            return 0;
    return 1;
}

/* Whether the comma-separated list v[0..n) holds token (any case); last: only as its last
 * member (Transfer-Encoding's chunked). */
static int has_token(const char *v, size_t n, const char *token, int last)
{
    size_t i = 0;
    int found = 0;
    while (i < n) {
        size_t start, end;
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        start = i;
        while (i < n && v[i] != ',')
            i++;
        end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end > start)
            found = is_word(v + start, end - start, token);
        if (found && !last)
            return 1;
    }
    return found;
}

/* The end of the line at p (its '\n'), or NULL when it has not all arrived. */
static const char *line_end(const char *p, const char *end)
{
    return memchr(p, '\n', (size_t)(end - p));
}

int ddb_http1_parse_head(const char *p, size_t len, http1_head *h)
{
    const char *end = p + (len > HTTP1_MAX_HEAD ? HTTP1_MAX_HEAD : len);
    const char *line = p, *nl;
    int minor, keep_alive = 0, close = 0;

    memset(h, 0, sizeof *h);
    h->content_length = -1;
    /* the status line: HTTP/1.x SP 3DIGIT [SP reason] */
    nl = line_end(line, end);
    if (nl == NULL) {
        if (len >= 5 && memcmp(p, "HTTP/", 5) != 0)
            return HTTP1_MALFORMED;
        return len >= HTTP1_MAX_HEAD ? HTTP1_TOO_LARGE : 0;
    }
    if (nl - line < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[7] < '0' || line[7] > '9' ||
        line[8] != ' ' || line[9] < '1' || line[9] > '5' || line[10] < '0' || line[10] > '9' ||
        line[11] < '0' || line[11] > '9' || (nl - line > 12 && line[12] != ' ' &&
                                             line[12] != '\r'))
        return HTTP1_MALFORMED;
    minor = line[7] - '0';
    h->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');

    for (line = nl + 1;; line = nl + 1) {
        const char *colon, *v, *ve;
        size_t vlen;
        nl = line_end(line, end);
        if (nl == NULL)
            return len >= HTTP1_MAX_HEAD ? HTTP1_TOO_LARGE : 0;
        ve = nl > line && nl[-1] == '\r' ? nl - 1 : nl;
        if (ve == line)
            break;   /* the blank line */
        colon = memchr(line, ':', (size_t)(ve - line));
        if (colon == NULL || colon == line)
            return HTTP1_MALFORMED;
        v = colon + 1;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        vlen = (size_t)(ve - v);
        if (is_word(line, (size_t)(colon - line), "content-length")) {
            long long n = 0;
            size_t i;
            if (vlen == 0 || vlen > 15)
                return HTTP1_MALFORMED;
            for (i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return HTTP1_MALFORMED;
                n = n * 10 + (v[i] - '0');
            }
            if (h->content_length >= 0 && h->content_length != n)
                return HTTP1_MALFORMED;
            h->content_length = n;
        } else if (is_word(line, (size_t)(colon - line), "transfer-encoding")) {
            h->chunked = has_token(v, vlen, "chunked", 1);
            if (!h->chunked)
                return HTTP1_MALFORMED;   /* a coding this reader cannot take off */
        } else if (is_word(line, (size_t)(colon - line), "connection")) {
            close |= has_token(v, vlen, "close", 0);
            keep_alive |= has_token(v, vlen, "keep-alive", 0);
        }
    }
    h->head_len = (size_t)(nl + 1 - p);
    h->no_body = h->status < 200 || h->status == 204 || h->status == 304;
    /* HTTP/1.0 closes unless it says otherwise; a body without a length ends at the close */
    h->close = close || (minor == 0 && !keep_alive) ||
               (!h->no_body && !h->chunked && h->content_length < 0);
    return 1;
}

enum { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER, CH_DONE };

void ddb_http1_chunks_init(http1_chunks *c, size_t max)
{
    c->pos = 0;
    c->state = CH_SIZE;
    c->left = 0;
    c->max = max;
    c->trailer_len = 0;
}

int ddb_http1_dechunk(http1_chunks *c, const char *p, size_t len, buf *out)
{
    const char *end = p + len;
    while (c->state != CH_DONE) {
        const char *at = p + c->pos, *nl;
        if (c->state == CH_DATA) {
            size_t n = (size_t)(end - at);
            if (n == 0)
                return 0;
            if (n > c->left)
                n = (size_t)c->left;
            if (buf_add(out, at, n) != 0)
                return HTTP1_NO_MEMORY;
            c->pos += n;
            c->left -= n;
            if (c->left == 0)
                c->state = CH_DATA_END;
            continue;
        }
        nl = line_end(at, end);
        /* the same verdict whether the line's end has arrived or not */
        if (nl == NULL ? end - at > HTTP1_MAX_CHUNK_LINE : nl - at > HTTP1_MAX_CHUNK_LINE)
            return c->state == CH_TRAILER ? HTTP1_TOO_LARGE : HTTP1_MALFORMED;
        if (nl == NULL)
            return 0;
        if (c->state == CH_SIZE) {
            unsigned long long n = 0;
            const char *q = at;
            int digits = 0;
            for (; q < nl; q++, digits++) {
                int d = lower((unsigned char)*q);
                if (d >= '0' && d <= '9')
                    d -= '0';
                else if (d >= 'a' && d <= 'f')
                    d -= 'a' - 10;
                else
                    break;
                if (digits >= 15)
                    return HTTP1_MALFORMED;
                n = n * 16 + (unsigned)d;
            }
            /* after the digits: the line's end, or chunk extensions after ';' (ignored) */
            while (q < nl && (*q == ' ' || *q == '\t'))
                q++;
            if (digits == 0 || (q < nl && *q != '\r' && *q != ';'))
                return HTTP1_MALFORMED;
            if (c->max != 0 && n > c->max - (out->len < c->max ? out->len : c->max))
                return HTTP1_TOO_LARGE;
            c->left = n;
            c->state = n == 0 ? CH_TRAILER : CH_DATA;
        } else if (c->state == CH_DATA_END) {
            if (!(nl == at || (nl == at + 1 && *at == '\r')))
                return HTTP1_MALFORMED;
            c->state = CH_SIZE;
        } else if (nl == at || (nl == at + 1 && *at == '\r')) {
            c->state = CH_DONE;   /* the blank line after the trailers */
        } else {
            c->trailer_len += (size_t)(nl + 1 - at);
            if (c->trailer_len > HTTP1_MAX_HEAD)
                return HTTP1_TOO_LARGE;
        }
        c->pos = (size_t)(nl + 1 - p);
    }
    return 1;
}

int ddb_http1_post(buf *out, const char *path, size_t path_len, const char *const *lines,
                   size_t nlines, const char *body, size_t body_len)
{
    static const char head[] = "Content-Length: ";
    char length[48];
    size_t i, n = sizeof head - 1;
    memcpy(length, head, n);
    /* a body in memory is far below LLONG_MAX bytes */
    n += ddb_number_write_int((long long)body_len, length + n);
    memcpy(length + n, "\r\n\r\n", 4);
    n += 4;
    out->len = 0;
    if (ddb_buf_reserve(out, 512 + body_len) != 0 || buf_add(out, "POST ", 5) != 0 ||
        buf_add(out, path, path_len) != 0 || buf_add(out, " HTTP/1.1\r\n", 11) != 0)
        return -1;
    for (i = 0; i < nlines; i++)
        if (ddb_buf_adds(out, lines[i]) != 0 || buf_add(out, "\r\n", 2) != 0)
            return -1;
    return buf_add(out, length, n) || buf_add(out, body, body_len) ? -1 : 0;
}
