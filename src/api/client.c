#include "api/client.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int client_split_url(const char *url, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    else if (strstr(p, "://"))
        return -EINVAL;
    size_t n = strcspn(p, "/?#");
    char hostport[256];
    if (n == 0 || n >= sizeof(hostport)) return -EINVAL;
    memcpy(hostport, p, n);
    hostport[n] = '\0';
    const char *h = hostport;
    char *colon;
    if (hostport[0] == '[') {
        char *end = strchr(hostport, ']');
        if (!end) return -EINVAL;
        *end = '\0';
        h = hostport + 1;
        if (end[1] != '\0' && end[1] != ':') return -EINVAL;
        colon = end[1] == ':' ? end + 1 : NULL;
    } else {
        colon = strrchr(hostport, ':');
        if (colon) *colon = '\0';
    }
    if (!*h) return -EINVAL;
    if (colon) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (!colon[1] || *end || v <= 0 || v > 65535) return -EINVAL;
    }
    if ((size_t)snprintf(host, hostlen, "%s", h) >= hostlen) return -EINVAL;
    snprintf(port, portlen, "%s", colon ? colon + 1 : "80");
    return 0;
}

int client_parse_response(char *resp, size_t len, int *status, char **body, size_t *body_len)
{
    int st;
    if (len < 12 || strncmp(resp, "HTTP/1.", 7) != 0 || sscanf(resp + 7, "%*d %d", &st) != 1 ||
        st < 100 || st > 999)
        return -EPROTO;
    char *end = memmem(resp, len, "\r\n\r\n", 4);
    if (!end) return -EPROTO;
    char *b = end + 4;
    size_t bl = len - (size_t)(b - resp);
    /* Content-Length, when present, bounds the body. */
    for (char *line = strstr(resp, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "Content-Length:", 15) == 0) {
            unsigned long long cl = strtoull(line + 17, NULL, 10);
            if (cl < bl) bl = (size_t)cl;
            break;
        }
    }
    *status = st;
    *body = b;
    *body_len = bl;
    return 0;
}

static int connect_to(const char *host, const char *port, int timeout_s, char *err, size_t errcap)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int gerr = getaddrinfo(host, port, &hints, &ai);
    if (gerr != 0) {
        snprintf(err, errcap, "cannot resolve %s: %s", host, gai_strerror(gerr));
        return -EHOSTUNREACH;
    }
    int fd = -1, last = ECONNREFUSED;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        struct timeval tv = {.tv_sec = timeout_s};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        last = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        snprintf(err, errcap, "cannot connect to %s:%s: %s", host, port, strerror(last));
        return -last;
    }
    return fd;
}

int client_request(const char *url, const char *method, const char *path, const char *content_type,
                   const char *body, size_t body_len, int timeout_s, int *status, char **resp_body,
                   size_t *resp_len, char *err, size_t errcap)
{
    char host[256], port[16];
    *resp_body = NULL;
    *resp_len = 0;
    if (client_split_url(url, host, sizeof(host), port, sizeof(port)) < 0) {
        snprintf(err, errcap, "bad server URL %s (expected http://HOST:PORT)", url);
        return -EINVAL;
    }
    int fd = connect_to(host, port, timeout_s, err, errcap);
    if (fd < 0) return fd;
    char head[1024];
    int hl;
    if (content_type)
        hl = snprintf(head, sizeof(head),
                      "%s %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      method, path, host, port, content_type, body_len);
    else
        hl = snprintf(head, sizeof(head),
                      "%s %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n", method, path,
                      host, port);
    if (hl < 0 || (size_t)hl >= sizeof(head) || send(fd, head, (size_t)hl, MSG_NOSIGNAL) != hl ||
        (body_len && send(fd, body, body_len, MSG_NOSIGNAL) != (ssize_t)body_len)) {
        snprintf(err, errcap, "cannot send the request to %s", url);
        close(fd);
        return -EIO;
    }
    size_t cap = 16384, got = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0) {
        if (got + 1 == cap) {
            char *nb = cap < CLIENT_MAX_RESPONSE ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                rc = -EFBIG;
                snprintf(err, errcap, "the answer of %s is too large", url);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + got, cap - 1 - got, 0);
        if (r == 0) break;
        if (r < 0) {
            if (errno == EINTR) continue;
            rc = -errno;
            snprintf(err, errcap, "reading from %s: %s", url,
                     errno == EAGAIN ? "timed out" : strerror(errno));
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[got] = '\0';
    char *b;
    size_t bl;
    if (client_parse_response(buf, got, status, &b, &bl) < 0) {
        snprintf(err, errcap, "%s did not answer HTTP", url);
        free(buf);
        return -EPROTO;
    }
    memmove(buf, b, bl);
    buf[bl] = '\0';
    *resp_body = buf;
    *resp_len = bl;
    return 0;
}
