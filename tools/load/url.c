/* Target URL parsing; see url.h for the contract. */
#include "url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Splits "HOST[:PORT]" or "[V6][:PORT]" into a bare host and a port number. */
static int split_authority(const char *auth, size_t len, char *host, size_t cap, unsigned *port)
{
    const char *colon = NULL;
    size_t host_len;

    *port = 80;
    if (len > 0 && auth[0] == '[') {
        const char *close = memchr(auth, ']', len);
        if (close == NULL) return -EINVAL;
        host_len = (size_t)(close - auth - 1);
        if (host_len >= cap) return -EINVAL;
        memcpy(host, auth + 1, host_len);
        if (close + 1 < auth + len) colon = close + 1;
        if (colon != NULL && *colon != ':') return -EINVAL;
    } else {
        colon = memchr(auth, ':', len);
        host_len = colon != NULL ? (size_t)(colon - auth) : len;
        if (host_len == 0 || host_len >= cap) return -EINVAL;
        memcpy(host, auth, host_len);
    }
    host[host_len] = '\0';
    if (colon != NULL) {
        char *end;
        unsigned long p = strtoul(colon + 1, &end, 10);
        if (end != auth + len || colon + 1 == end || p == 0 || p > 65535) return -EINVAL;
        *port = (unsigned)p;
    }
    return 0;
}

/* Resolves a bare loopback host into t->addr; -EPERM for anything else. */
static int resolve_loopback(const char *host, unsigned port, struct load_target *t)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)&t->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&t->addr;

    memset(&t->addr, 0, sizeof(t->addr));
    if (strcasecmp(host, "localhost") == 0) host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        if ((ntohl(v4->sin_addr.s_addr) >> 24) != 127) return -EPERM;
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        t->addr_len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr)) return -EPERM;
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        t->addr_len = sizeof(*v6);
        return 0;
    }
    return -EPERM;
}

int url_parse(const char *url, struct load_target *t, char *err, size_t cap)
{
    static const char scheme[] = "http://";
    char host[64];
    unsigned port;
    const char *auth, *slash;
    size_t auth_len;
    int rc;

    memset(t, 0, sizeof(*t));
    if (strncasecmp(url, scheme, sizeof(scheme) - 1) != 0) {
        snprintf(err, cap, "URL must start with http:// (got '%.80s')", url);
        return -EINVAL;
    }
    auth = url + sizeof(scheme) - 1;
    slash = strchr(auth, '/');
    auth_len = slash != NULL ? (size_t)(slash - auth) : strlen(auth);
    if (split_authority(auth, auth_len, host, sizeof(host), &port) < 0 ||
        auth_len >= sizeof(t->host) || strlen(url) >= sizeof(t->url) ||
        (slash != NULL && strlen(slash) >= sizeof(t->path))) {
        snprintf(err, cap, "malformed URL '%.80s'", url);
        return -EINVAL;
    }
    for (const char *c = slash; c != NULL && *c != '\0'; c++) {
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            snprintf(err, cap, "URL path has a space or control character");
            return -EINVAL;
        }
    }
    rc = resolve_loopback(host, port, t);
    if (rc < 0) {
        snprintf(err, cap,
                 "refusing target host '%s': only loopback (127.0.0.0/8, ::1, localhost) is "
                 "allowed",
                 host);
        return rc;
    }
    memcpy(t->host, auth, auth_len);
    snprintf(t->path, sizeof(t->path), "%s", slash != NULL ? slash : "/");
    snprintf(t->url, sizeof(t->url), "%s", url);
    return 0;
}
