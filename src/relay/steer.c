/* Steering of new listeners to edges; see steer.h. */
#include "relay/steer.h"

#include <string.h>

int steer_pick(const struct steer_edge *e, size_t n)
{
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        if (!e[i].is_fresh) continue;
        if (e[i].capacity && e[i].listeners >= e[i].capacity) continue;
        if (best < 0 || e[i].listeners < e[best].listeners) best = (int)i;
    }
    return best;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

size_t steer_parse(const char *csv, struct steer_edge *out, size_t max)
{
    size_t n = 0;
    const char *p = csv;
    while (*p && n < max) {
        while (is_space(*p) || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && is_space(end[-1]))
            end--;
        size_t len = (size_t)(end - start);
        if (len == 0 || len > STEER_URL_MAX) continue;
        out[n] = (struct steer_edge){.url = start, .url_len = len};
        n++;
    }
    return n;
}

bool steer_matches(const struct steer_edge *e, const char *edge_id)
{
    const char *dash = strchr(edge_id, '-');
    if (!dash) return false;
    const char *hp = e->url;
    size_t len = e->url_len;
    const char *scheme = memchr(hp, ':', len);
    if (scheme && len - (size_t)(scheme - hp) >= 3 && memcmp(scheme, "://", 3) == 0) {
        len -= (size_t)(scheme + 3 - hp);
        hp = scheme + 3;
    }
    if (len && hp[len - 1] == '/') len--;
    return strlen(dash + 1) == len && memcmp(dash + 1, hp, len) == 0;
}
