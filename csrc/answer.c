/* HTTP/1.1 answers put together from received bytes, with their limits (see answer.h). */
#include "answer.h"

#include <stdio.h>
#include <string.h>

void ddb_answer_start(answer *a, buf *in, buf *body, size_t max)
{
    memset(a, 0, sizeof *a);
    a->in = in;
    a->body = body;
    a->max = max;
    in->len = 0;
    body->len = 0;
}

/* A body delimited by the server closing the connection. */
static int to_close(const answer *a)
{
    return a->have_head && !a->head.no_body && !a->head.chunked && a->head.content_length < 0;
}

/* Room to read into. A buffer's first reservation is 8 KB, which most answers fit in (a head
 * naming a longer body reserves all of it, take_head); after that 16 KB more whenever less
 * than 4 KB is left. The buffers are kept between calls, one per call in flight: a first
 * 32 KB reserved 8 MB of heap at 256 in flight for answers of half a kilobyte. */
char *ddb_answer_space(answer *a, size_t *room)
{
    buf *in = a->in;
    size_t r;
    if (in->cap - in->len < 4096 + 1 && ddb_buf_reserve(in, in->cap ? 16384 : 4096) != 0)
        return NULL;
    r = in->cap - in->len - 1;
    if (to_close(a)) {
        size_t limit = a->head.head_len + a->max + 1;
        r = limit > in->len && r > limit - in->len ? limit - in->len : r;
        if (r == 0)
            r = 1;
    }
    *room = r;
    return in->data + in->len;
}

/* The head, once it is all in: the framing decides what follows. */
static int take_head(answer *a)
{
    buf *in = a->in;
    for (;;) {
        int r = ddb_http1_parse_head(in->data, in->len, &a->head);
        if (r == HTTP1_TOO_LARGE)
            return ANSWER_HEAD_TOO_LARGE;
        if (r < 0)
            return ANSWER_MALFORMED;
        if (r == 0)
            return ANSWER_MORE;
        if (a->head.status >= 200)
            break;
        /* 100 Continue and friends: the real answer follows */
        memmove(in->data, in->data + a->head.head_len, in->len - a->head.head_len);
        in->len -= a->head.head_len;
    }
    a->have_head = 1;
    if (!a->head.no_body && !a->head.chunked && a->head.content_length >= 0) {
        size_t whole;
        /* refused before its bytes arrive; otherwise room for exactly the body */
        if ((unsigned long long)a->head.content_length > a->max)
            return ANSWER_LENGTH_TOO_LARGE;
        whole = a->head.head_len + (size_t)a->head.content_length;
        if (whole > in->len && ddb_buf_reserve(in, whole - in->len) != 0)
            return ANSWER_NO_MEMORY;
    }
    ddb_http1_chunks_init(&a->chunks, a->max);
    a->chunks.pos = a->head.head_len;
    a->body->len = 0;
    return ANSWER_MORE;
}

int ddb_answer_received(answer *a, size_t n)
{
    buf *in = a->in;
    const http1_head *h = &a->head;
    int r;

    in->len += n;
    if (!a->have_head && ((r = take_head(a)) != ANSWER_MORE || !a->have_head))
        return r;
    if (h->no_body) {
        a->end = h->head_len;
        return ANSWER_DONE;
    }
    if (h->chunked) {
        r = ddb_http1_dechunk(&a->chunks, in->data, in->len, a->body);
        if (r == HTTP1_TOO_LARGE)
            return ANSWER_CHUNKS_TOO_LARGE;
        if (r == HTTP1_NO_MEMORY)
            return ANSWER_NO_MEMORY;
        if (r < 0)
            return ANSWER_BAD_CHUNKS;
        if (r == 1) {
            a->end = a->chunks.pos;
            return ANSWER_DONE;
        }
        /* the raw bytes decoded so far are not needed again: only the head and what is not
         * decoded yet stay, so the raw body never piles up beside the decoded one */
        if (a->chunks.pos > h->head_len) {
            size_t keep = in->len - a->chunks.pos;
            memmove(in->data + h->head_len, in->data + a->chunks.pos, keep);
            in->len = h->head_len + keep;
            a->chunks.pos = h->head_len;
        }
        return ANSWER_MORE;
    }
    if (h->content_length >= 0) {
        if (in->len - h->head_len < (size_t)h->content_length)
            return ANSWER_MORE;
        a->end = h->head_len + (size_t)h->content_length;
        return ANSWER_DONE;
    }
    return in->len - h->head_len > a->max ? ANSWER_CLOSE_TOO_LARGE : ANSWER_MORE;
}

int ddb_answer_feed(answer *a, const char *p, size_t n)
{
    int r = ANSWER_MORE;
    while (n > 0) {
        size_t room;
        char *at = ddb_answer_space(a, &room);
        if (at == NULL)
            return ANSWER_NO_MEMORY;
        if (room > n)
            room = n;
        memcpy(at, p, room);
        p += room;
        n -= room;
        r = ddb_answer_received(a, room);
        if (r != ANSWER_MORE) {
            /* bytes left over after the answer: see ddb_answer_keep */
            if (r == ANSWER_DONE && n > 0)
                a->overrun = 1;
            return r;
        }
    }
    return r;
}

int ddb_answer_closed(answer *a)
{
    if (to_close(a)) {
        a->end = a->in->len;
        return ANSWER_DONE;
    }
    return a->in->len == 0 ? ANSWER_CLOSED_EMPTY : ANSWER_CLOSED_SHORT;
}

void ddb_answer_failure(const answer *a, int r, const char **code, const char **retry_class,
                    char *message, size_t size)
{
    const char *what = NULL, *text = "the answer is not a well-formed HTTP/1.1 answer";
    *code = "NetworkError";
    *retry_class = "transient";
    switch (r) {
    case ANSWER_NO_MEMORY:
        text = "out of memory reading the answer";
        break;
    case ANSWER_BAD_CHUNKS:
        text = "the answer's chunked body is malformed";
        break;
    case ANSWER_CLOSED_EMPTY:
        text = "the connection closed without an answer";
        break;
    case ANSWER_CLOSED_SHORT:
        text = "the connection closed before the answer was complete";
        break;
    case ANSWER_HEAD_TOO_LARGE:
        text = "the answer's head is longer than 64 KiB; not read (the request was sent)";
        /* fall through */
    case ANSWER_LENGTH_TOO_LARGE:
    case ANSWER_CHUNKS_TOO_LARGE:
    case ANSWER_CLOSE_TOO_LARGE:
        /* An answer came, so the request reached the server and may have run: "maybe"
         * (what the answer says about it is in the part not read). Not retried: the same
         * request would very likely bring the same answer, at the same cost. */
        *code = "AnswerTooLarge";
        *retry_class = "none";
        what = r == ANSWER_LENGTH_TOO_LARGE ? "the answer's body (Content-Length)"
             : r == ANSWER_CHUNKS_TOO_LARGE ? "the answer's chunked body (or its trailers)"
             : r == ANSWER_CLOSE_TOO_LARGE ? "the answer's body (running to the close)" : NULL;
        break;
    default:
        break;
    }
    if (what != NULL)
        snprintf(message, size, "%s is longer than max_answer_bytes (%zu); not read (the "
                 "request was sent)", what, a->max);
    else
        snprintf(message, size, "%s", text);
}

const char *ddb_answer_body(const answer *a, size_t *len)
{
    if (a->head.chunked) {
        *len = a->body->len;
        return a->body->data ? a->body->data : "";
    }
    *len = a->end > a->head.head_len ? a->end - a->head.head_len : 0;
    return a->in->data + a->head.head_len;
}

int ddb_answer_keep(const answer *a)
{
    return !a->head.close && !a->overrun && a->in->len == a->end;
}
