/* Route table matching: a pure function from (method, path) to a route.
 *
 * A pattern is a path whose segments are literals or `{}` (one non-empty
 * segment, captured) and whose last segment may be `{}.opus` (a capture with a
 * fixed suffix). Matching allocates nothing: captures are spans of the path.
 * Query strings must be cut off by the caller.
 */
#ifndef TRIBUNE_HTTP_ROUTE_H
#define TRIBUNE_HTTP_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

enum { ROUTE_MAX_CAPTURES = 4 };

enum route_method {
    ROUTE_GET = 1 << 0,
    ROUTE_HEAD = 1 << 1,
    ROUTE_POST = 1 << 2,
    ROUTE_PUT = 1 << 3,
    ROUTE_SOURCE = 1 << 4,
    ROUTE_DELETE = 1 << 5,
    ROUTE_OPTIONS = 1 << 6,
    ROUTE_OTHER = 1 << 7,
};

struct route {
    const char *pattern;
    unsigned methods; /* mask of enum route_method */
    int id;           /* the caller's handler number */
};

struct route_capture {
    const char *s;
    size_t len;
};

struct route_match {
    const struct route *route; /* NULL: no route matched the path */
    int is_method_allowed;     /* 0: the path matched but not the method (405) */
    unsigned allowed;          /* methods allowed on the matched path */
    size_t ncaptures;
    struct route_capture captures[ROUTE_MAX_CAPTURES];
};

/* Finds the route for `path` (len bytes, no query) and `method`. Returns 0 and
 * fills *m (route NULL when nothing matched: 404). */
int route_find(const struct route *table, size_t n, unsigned method, const char *path, size_t len,
               struct route_match *m);
/* Finds query parameter `name` in a request target (`url`, len bytes): the
 * value of the first "name=value" between '?' and '#', split at '&', not
 * decoded. True with *v, *vlen (a span of url) when present. Pure. */
bool route_query(const char *url, size_t len, const char *name, const char **v, size_t *vlen);

/* Writes "GET, HEAD, ..." for an Allow header. Returns `out`. */
char *route_allow_header(unsigned methods, char *out, size_t cap);

#endif
