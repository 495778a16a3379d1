/* The one-call path's own HTTP/1.1 on a libcurl connection (see wire.h). */
#include "wire.h"
#include "curl_handle.h"
#include "protocol.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void ddb_wire_init(wire *w)
{
    memset(w, 0, sizeof *w);
    w->fd = CURL_SOCKET_BAD;
    ddb_buf_init(&w->out);
    ddb_buf_init(&w->in);
    ddb_buf_init(&w->body);
}

void ddb_wire_disconnect(wire *w)
{
    if (w->easy != NULL)
        curl_easy_cleanup(w->easy);
    w->easy = NULL;
    w->fd = CURL_SOCKET_BAD;
    free(w->url);
    w->url = NULL;
}

void ddb_wire_close(wire *w)
{
    ddb_wire_disconnect(w);
    ddb_buf_free(&w->out);
    ddb_buf_free(&w->in);
    ddb_buf_free(&w->body);
}

/* Whether url can go over the wire: http(s), no path beyond "/", no query, no user
 * information, and no proxy in the environment (those keep to libcurl's own transfers). */
static int wire_accepts(const char *url)
{
    static const char *const proxies[] = {"http_proxy", "https_proxy", "HTTPS_PROXY",
                                          "all_proxy", "ALL_PROXY", NULL};
    const char *host, *rest;
    int i;
    if (strncmp(url, "http://", 7) == 0)
        host = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        host = url + 8;
    else
        return 0;
    rest = host + strcspn(host, "/?#@");
    if (*rest == '?' || *rest == '#' || *rest == '@' || (*rest == '/' && strcmp(rest, "/") != 0))
        return 0;
    for (i = 0; proxies[i] != NULL; i++) {
        const char *v = getenv(proxies[i]);
        if (v != NULL && *v != '\0')
            return 0;
    }
    return 1;
}

int ddb_wire_serves(const wire *w, const char *url)
{
    /* a connection made for url was accepted already: no second look at the environment */
    return (w->easy != NULL && strcmp(w->url, url) == 0) || wire_accepts(url);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes: 1 ready, 0 timed out. */
static int wait_fd(curl_socket_t fd, short events, long long deadline)
{
    for (;;) {
        struct pollfd p;
        long long left = deadline - now_ms();
        int r;
        if (left <= 0)
            return 0;
        p.fd = fd;
        p.events = events;
        p.revents = 0;
        r = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
        if (r > 0)
            return 1;   /* errors and hang-ups show up in the send or receive that follows */
        if (r < 0 && errno != EINTR)
            return 1;
    }
}

static int fail(wire *w, const char *code, const char *applied, const char *retry_class,
                const char *message)
{
    w->rc = CURLE_OK;
    w->code = code;
    w->applied = applied;
    w->retry_class = retry_class;
    snprintf(w->message, sizeof w->message, "%s", message);
    ddb_wire_disconnect(w);
    return WIRE_FAILED;
}

/* A kept connection the server has not closed (and sent nothing on) since the last answer.
 * A TLS session ticket arriving late reads as nothing (CURLE_AGAIN). */
static int still_open(wire *w)
{
    struct pollfd p;
    char c;
    size_t n = 0;
    p.fd = w->fd;
    p.events = POLLIN;
    p.revents = 0;
    if (poll(&p, 1, 0) == 0)
        return 1;
    return curl_easy_recv(w->easy, &c, 1, &n) == CURLE_AGAIN;
}

static int connect_to(wire *w, const wire_opts *o, const char *url, long long deadline)
{
    long left = (long)(deadline - now_ms());
    char *copy;
    curl_socket_t fd = CURL_SOCKET_BAD;

    ddb_wire_disconnect(w);
    if (left < 1)
        left = 1;
    copy = malloc(strlen(url) + 1);
    w->easy = curl_easy_init();
    if (copy == NULL || w->easy == NULL) {
        free(copy);
        w->rc = CURLE_OUT_OF_MEMORY;
        return WIRE_CONNECT_FAILED;
    }
    strcpy(copy, url);
    w->url = copy;
    o->errbuf[0] = '\0';
    ddb_curl_handle_setup(w->easy, NULL, o->errbuf, o->ca_bundle);
    curl_easy_setopt(w->easy, CURLOPT_URL, url);
    curl_easy_setopt(w->easy, CURLOPT_CONNECT_ONLY, 1L);
    /* ALPN must offer HTTP/1.1 alone: a server that picks h2 for a CONNECT_ONLY connection
     * leaves libcurl decoding HTTP/2 frames under curl_easy_recv (it crashes there) */
    curl_easy_setopt(w->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(w->easy, CURLOPT_TIMEOUT_MS, left);
    curl_easy_setopt(w->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     o->connect_timeout_ms < left ? o->connect_timeout_ms : left);
    w->rc = curl_easy_perform(w->easy);
    if (w->rc == CURLE_OK &&
        (curl_easy_getinfo(w->easy, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK ||
         fd == CURL_SOCKET_BAD))
        w->rc = CURLE_COULDNT_CONNECT;
    if (w->rc != CURLE_OK)
        return WIRE_CONNECT_FAILED;
    w->fd = fd;
    w->connects++;
    return WIRE_OK;
}

static int build_request(wire *w, const char *const *lines, size_t nlines, const char *body,
                         size_t body_len)
{
    char length[48];
    size_t i;
    int n = snprintf(length, sizeof length, "Content-Length: %zu\r\n\r\n", body_len);
    w->out.len = 0;
    if (buf_add(&w->out, "POST / HTTP/1.1\r\n", 17) != 0)
        return -1;
    for (i = 0; i < nlines; i++)
        if (ddb_buf_adds(&w->out, lines[i]) != 0 || buf_add(&w->out, "\r\n", 2) != 0)
            return -1;
    return buf_add(&w->out, length, (size_t)n) || buf_add(&w->out, body, body_len) ? -1 : 0;
}

/* Sends the whole request. On a connection kept from an earlier answer that turns out to be
 * closed before a byte of this request went out, connects again once: nothing was sent. */
static int send_all(wire *w, const wire_opts *o, const char *url, long long deadline,
                    int reused)
{
    size_t sent = 0;
    while (sent < w->out.len) {
        size_t n = 0;
        CURLcode rc;
        /* checked before every write, not only when one would block: a server that reads
         * slowly but steadily must not hold the call past its deadline */
        if (now_ms() >= deadline)
            return fail(w, "Timeout", PROTO_APPLIED_NO, "timeout",
                        "timed out sending the request (not all of it left: not applied)");
        rc = curl_easy_send(w->easy, w->out.data + sent, w->out.len - sent, &n);
        if (rc == CURLE_AGAIN) {
            if (!wait_fd(w->fd, POLLOUT, deadline))
                return fail(w, "Timeout", PROTO_APPLIED_NO, "timeout",
                            "timed out sending the request (not all of it left: not applied)");
            continue;
        }
        if (rc != CURLE_OK) {
            int r;
            if (reused && sent == 0) {
                reused = 0;
                if ((r = connect_to(w, o, url, deadline)) != WIRE_OK)
                    return r;
                continue;
            }
            /* a request cut short cannot be run by the server */
            return fail(w, "NetworkError", PROTO_APPLIED_NO, "transient",
                        "the connection failed while the request was being sent (not all of "
                        "it left: not applied)");
        }
        sent += n;
    }
    return WIRE_OK;
}

/* An answer over the limits. The request has left and an answer came, so it reached the
 * server and may have run: "maybe" (what the answer says about it is in the part not read).
 * Not retried: the same request would very likely bring the same answer, and reading it
 * again costs the same time and memory. */
static int too_large(wire *w, const char *what, size_t max)
{
    char message[160];
    snprintf(message, sizeof message, "%s is longer than max_answer_bytes (%zu); not read "
             "(the request was sent)", what, max);
    return fail(w, "AnswerTooLarge", PROTO_APPLIED_MAYBE, "none", message);
}

/* Reads until the answer is complete, its head within HTTP1_MAX_HEAD and its body within
 * max. The request has left: any failure may follow its being applied. */
static int receive(wire *w, long long deadline, size_t max, wire_answer *a)
{
    http1_chunks chunks;
    int have_head = 0, r;
    size_t end = 0;
    static const char *const MAYBE = PROTO_APPLIED_MAYBE;

    w->in.len = 0;
    for (;;) {
        size_t n = 0, room, whole;
        CURLcode rc;
        /* before every read, not only when one would block: a server that keeps sending
         * never makes a read block */
        if (now_ms() >= deadline)
            return fail(w, "Timeout", MAYBE, "timeout",
                        "timed out reading the answer (the request was sent)");
        if (w->in.cap - w->in.len < 4096 + 1 && ddb_buf_reserve(&w->in, 16384) != 0)
            return fail(w, "NetworkError", MAYBE, "transient", "out of memory reading the answer");
        room = w->in.cap - w->in.len - 1;
        /* a body that runs to the close is read up to one byte past the limit, no further */
        if (have_head && !a->head.chunked && a->head.content_length < 0 &&
            room > a->head.head_len + max + 1 - w->in.len)
            room = a->head.head_len + max + 1 - w->in.len;
        rc = curl_easy_recv(w->easy, w->in.data + w->in.len, room, &n);
        if (rc == CURLE_AGAIN) {
            if (!wait_fd(w->fd, POLLIN, deadline))
                return fail(w, "Timeout", MAYBE, "timeout",
                            "timed out waiting for the answer (the request was sent)");
            continue;
        }
        if (rc != CURLE_OK)
            return fail(w, "NetworkError", MAYBE, "transient", curl_easy_strerror(rc));
        if (n == 0) {
            /* the server closed: the end of a body that runs to the close, else a loss */
            if (have_head && !a->head.chunked && a->head.content_length < 0) {
                end = w->in.len;
                break;
            }
            return fail(w, "NetworkError", MAYBE, "transient",
                        w->in.len == 0 ? "the connection closed without an answer"
                                       : "the connection closed before the answer was complete");
        }
        w->in.len += n;
        while (!have_head) {
            r = ddb_http1_parse_head(w->in.data, w->in.len, &a->head);
            if (r == HTTP1_TOO_LARGE)
                return fail(w, "AnswerTooLarge", MAYBE, "none",
                            "the answer's head is longer than 64 KiB; not read (the request "
                            "was sent)");
            if (r < 0)
                return fail(w, "NetworkError", MAYBE, "transient",
                            "the answer is not a well-formed HTTP/1.1 answer");
            if (r == 0)
                break;
            if (a->head.status >= 100 && a->head.status < 200) {
                /* 100 Continue and friends: the real answer follows */
                memmove(w->in.data, w->in.data + a->head.head_len, w->in.len - a->head.head_len);
                w->in.len -= a->head.head_len;
                continue;
            }
            have_head = 1;
            if (!a->head.no_body && !a->head.chunked && a->head.content_length >= 0) {
                /* refused before its bytes arrive; otherwise room for exactly the body */
                if ((unsigned long long)a->head.content_length > max)
                    return too_large(w, "the answer's body (Content-Length)", max);
                whole = a->head.head_len + (size_t)a->head.content_length;
                if (whole > w->in.len && ddb_buf_reserve(&w->in, whole - w->in.len) != 0)
                    return fail(w, "NetworkError", MAYBE, "transient",
                                "out of memory reading the answer");
            }
            ddb_http1_chunks_init(&chunks, max);
            chunks.pos = a->head.head_len;
            w->body.len = 0;
        }
        if (!have_head)
            continue;
        if (a->head.no_body) {
            end = a->head.head_len;
            break;
        }
        if (a->head.chunked) {
            r = ddb_http1_dechunk(&chunks, w->in.data, w->in.len, &w->body);
            if (r == HTTP1_TOO_LARGE)
                return too_large(w, "the answer's chunked body (or its trailers)", max);
            if (r < 0)
                return fail(w, "NetworkError", MAYBE, "transient",
                            r == HTTP1_NO_MEMORY ? "out of memory reading the answer"
                                                 : "the answer's chunked body is malformed");
            if (r == 1) {
                end = chunks.pos;
                break;
            }
            /* the raw bytes decoded so far are not needed again: only the head and what is
             * not decoded yet stay, so the raw body never piles up beside the decoded one */
            if (chunks.pos > a->head.head_len) {
                size_t keep = w->in.len - chunks.pos;
                memmove(w->in.data + a->head.head_len, w->in.data + chunks.pos, keep);
                w->in.len = a->head.head_len + keep;
                chunks.pos = a->head.head_len;
            }
        } else if (a->head.content_length >= 0) {
            if (w->in.len - a->head.head_len >= (size_t)a->head.content_length) {
                end = a->head.head_len + (size_t)a->head.content_length;
                break;
            }
        } else if (w->in.len - a->head.head_len > max) {
            return too_large(w, "the answer's body (running to the close)", max);
        }
    }
    /* bytes after the answer belong to no request of ours: the connection is out of step */
    if (w->in.len > end)
        a->head.close = 1;
    a->head_view.data = w->in.data;
    a->head_view.len = a->head.head_len;
    a->head_view.cap = a->head.head_len;
    if (a->head.chunked) {
        a->body = w->body.data ? w->body.data : "";
        a->body_len = w->body.len;
    } else {
        a->body = w->in.data + a->head.head_len;
        a->body_len = end - a->head.head_len;
    }
    return WIRE_OK;
}

int ddb_wire_exchange(wire *w, const wire_opts *o, const char *url, const char *const *lines,
                      size_t nlines, const char *body, size_t body_len, long timeout_ms,
                      wire_answer *a)
{
    long long deadline = now_ms() + timeout_ms;
    int reused = w->easy != NULL && strcmp(w->url, url) == 0 && still_open(w), r;

    if (build_request(w, lines, nlines, body, body_len) != 0)
        return fail(w, "NetworkError", PROTO_APPLIED_NO, "transient",
                    "out of memory building the request");
    if (!reused && (r = connect_to(w, o, url, deadline)) != WIRE_OK)
        return r;
    if ((r = send_all(w, o, url, deadline, reused)) != WIRE_OK)
        return r;
    if ((r = receive(w, deadline, o->max_answer, a)) != WIRE_OK)
        return r;
    if (a->head.close)
        ddb_wire_disconnect(w);   /* the answer stays readable: its buffers are kept */
    return WIRE_OK;
}
