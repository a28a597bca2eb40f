#include "http/route.h"

#include <stdio.h>
#include <string.h>

/* Matches one pattern segment against one path segment. */
static int match_segment(const char *pat, size_t plen, const char *seg, size_t slen,
                         struct route_match *m)
{
    if (plen >= 2 && pat[0] == '{' && pat[1] == '}') {
        size_t suffix = plen - 2;
        if (slen <= suffix) return 0;
        if (memcmp(seg + slen - suffix, pat + 2, suffix) != 0) return 0;
        if (m->ncaptures == ROUTE_MAX_CAPTURES) return 0;
        m->captures[m->ncaptures].s = seg;
        m->captures[m->ncaptures].len = slen - suffix;
        m->ncaptures++;
        return 1;
    }
    return plen == slen && memcmp(pat, seg, slen) == 0;
}

static int match_path(const char *pattern, const char *path, size_t len, struct route_match *m)
{
    const char *p = pattern, *pe = pattern + strlen(pattern);
    const char *s = path, *se = path + len;
    m->ncaptures = 0;
    while (p < pe && s < se) {
        if (*p != '/' || *s != '/') return 0;
        p++, s++;
        const char *pn = memchr(p, '/', (size_t)(pe - p));
        const char *sn = memchr(s, '/', (size_t)(se - s));
        if (!pn) pn = pe;
        if (!sn) sn = se;
        if (!match_segment(p, (size_t)(pn - p), s, (size_t)(sn - s), m)) return 0;
        p = pn, s = sn;
    }
    return p == pe && s == se;
}

int route_find(const struct route *table, size_t n, unsigned method, const char *path, size_t len,
               struct route_match *m)
{
    memset(m, 0, sizeof(*m));
    struct route_match tmp = {0};
    for (size_t i = 0; i < n; i++) {
        if (!match_path(table[i].pattern, path, len, &tmp)) continue;
        if (table[i].methods & method) {
            unsigned allowed = m->allowed | table[i].methods;
            *m = tmp;
            m->route = &table[i];
            m->is_method_allowed = 1;
            m->allowed = allowed;
            return 0;
        }
        if (!m->route) {
            m->ncaptures = tmp.ncaptures;
            memcpy(m->captures, tmp.captures, sizeof(m->captures));
        }
        m->route = &table[i];
        m->is_method_allowed = 0;
        m->allowed |= table[i].methods;
    }
    return 0;
}

char *route_allow_header(unsigned methods, char *out, size_t cap)
{
    static const char *const names[] = {"GET",    "HEAD",   "POST",   "PUT",
                                        "SOURCE", "DELETE", "OPTIONS"};
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!(methods & (1u << i))) continue;
        int w = snprintf(out + o, cap - o, "%s%s", o ? ", " : "", names[i]);
        if (w < 0 || (size_t)w >= cap - o) break;
        o += (size_t)w;
    }
    return out;
}

bool route_query(const char *url, size_t len, const char *name, const char **v, size_t *vlen)
{
    const char *q = memchr(url, '?', len);
    if (!q) return false;
    const char *end = url + len;
    const char *p = q + 1;
    /* the fragment, should a client send one, is not part of the query */
    const char *hash = memchr(p, '#', (size_t)(end - p));
    if (hash) end = hash;
    size_t nl = strlen(name);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
            *v = p + nl + 1;
            *vlen = (size_t)(stop - p - nl - 1);
            return true;
        }
        if (!amp) break;
        p = amp + 1;
    }
    return false;
}
