/* Target URLs for tribune-load: parsing and the loopback-only rule.
 *
 * Contract: url_parse() fills a struct load_target from "http://HOST[:PORT]/PATH"
 * without touching the network (no DNS: "localhost" means 127.0.0.1). It refuses
 * any host that is not in 127.0.0.0/8, ::1 or "localhost", so that a load run can
 * never be pointed at someone else's machine. Returns 0, -EINVAL for a malformed
 * URL, or -EPERM for a host that is not loopback; `err` (size `cap`) receives a
 * message for the user either way.
 */
#ifndef TRIBUNE_TOOLS_LOAD_URL_H
#define TRIBUNE_TOOLS_LOAD_URL_H

#include <stddef.h>

#include "load.h"

int url_parse(const char *url, struct load_target *t, char *err, size_t cap);

#endif
