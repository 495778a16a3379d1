/* What every libcurl handle of the module shares (both transports' and wire.c's): libcurl's
 * global initialisation, the options, and the callbacks that fill a transfer's curl_sink. */
#include "curl_handle.h"
#include "http1.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

/* CURLOPT_PREREQFUNCTION, which refuses libcurl's silent resends (on_prereq) */
#if LIBCURL_VERSION_NUM < 0x075000
#error "ddb-optimistic needs libcurl 7.80 or later"
#endif

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_ALL);
}

CURLcode ddb_curl_handle_global_init(void)
{
    pthread_once(&global_once, global_init);
    return global_rc;
}

static int body_fits(size_t have, size_t n, size_t max)
{
    return n > max || have > max - n ? SINK_BODY_TOO_LARGE : SINK_FITS;
}

static int head_fits(size_t have, size_t n)
{
    return n > HTTP1_MAX_HEAD || have > HTTP1_MAX_HEAD - n ? SINK_HEAD_TOO_LARGE : SINK_FITS;
}

/* The callbacks of both transports, given a curl_sink. Returning less than asked makes
 * libcurl abort the transfer (CURLE_WRITE_ERROR). */
static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    curl_sink *s = ud;
    if ((s->too_large = body_fits(s->body.len, size * n, s->max_answer)) != SINK_FITS)
        return 0;
    return buf_add(&s->body, p, size * n) == 0 ? size * n : 0;
}

/* libcurl calls this each time it is about to send the request. A second call within one
 * transfer is libcurl's silent retry after a reused connection died without an answer; the
 * first copy may have reached DynamoDB and been applied, so sending another behind the
 * caller's back (and max_attempts) could apply the operation twice. Refused here, the
 * transfer fails (CURLE_ABORTED_BY_CALLBACK) and the caller's retry policy decides. */
static int on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port,
                     int local_port)
{
    curl_sink *s = ud;
    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    return ++s->sends > 1 ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    curl_sink *s = ud;
    size_t len = size * n;
    /* a new status line (after 100 Continue or a proxy's CONNECT reply) starts over */
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0)
        s->head.len = 0;
    if ((s->too_large = head_fits(s->head.len, len)) != SINK_FITS)
        return 0;
    return buf_add(&s->head, p, len) == 0 ? len : 0;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

void ddb_curl_handle_setup(CURL *e, curl_sink *sink, char *errbuf, const char *ca_bundle)
{
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink != NULL ? on_body : discard);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, sink != NULL ? on_header : discard);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, sink);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    if (sink != NULL) {
        curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
        curl_easy_setopt(e, CURLOPT_PREREQDATA, sink);
    }
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);       /* threads: no SIGALRM for timeouts */
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (ca_bundle != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, ca_bundle);
}

void ddb_curl_handle_connect_only(CURL *e, const char *url, char *errbuf, const char *ca_bundle,
                                  long connect_timeout_ms, long timeout_ms)
{
    errbuf[0] = '\0';
    ddb_curl_handle_setup(e, NULL, errbuf, ca_bundle);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
    /* ALPN must offer HTTP/1.1 alone: a server that picks h2 for a CONNECT_ONLY connection
     * leaves libcurl decoding HTTP/2 frames under curl_easy_recv (it crashes there) */
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     connect_timeout_ms < timeout_ms ? connect_timeout_ms : timeout_ms);
}

int ddb_curl_still_open(CURL *e, int fd)
{
    struct pollfd p;
    char c;
    size_t n = 0;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    if (poll(&p, 1, 0) == 0)
        return 1;
    if (e == NULL)
        return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && (errno == EAGAIN ||
                                                                 errno == EWOULDBLOCK);
    return curl_easy_recv(e, &c, 1, &n) == CURLE_AGAIN;
}
