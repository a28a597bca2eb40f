/* Fuzz driver for pkg/hls_pkg.c: hls_pkg_parse_name, the file name of a request under
 * /spaces/{id}/hls/ (any bytes a client sends).
 *
 * Input: the name. The packager's run is fixed (started at 1,700,000,000,000 ms: run
 * "18bcfe56800"). Invariants (abort on violation):
 * - the verdict is 0, 1 or 2;
 * - 1 only for exactly "init.mp4" or "init-<run>.mp4";
 * - 2 only when the name is byte for byte what hls_pkg_segment_name writes for the msn parsed
 *   (one spelling per segment: no leading zero, no sign, no suffix, this run only). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkg/hls_pkg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL() fail_at(__LINE__)
__attribute__((noreturn)) static void fail_at(int line)
{
    fprintf(stderr, "%s:%d: invariant broken\n", __FILE__, line);
    abort();
}

static struct hls_pkg pkg;
static int is_ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!is_ready) {
        hls_pkg_init(&pkg, 0, 0);
        if (hls_pkg_start(&pkg, 1, 312, 1700000000000) < 0) FAIL();
        is_ready = 1;
    }
    const char *name = (const char *)data;
    uint64_t msn = 0;
    int kind = hls_pkg_parse_name(&pkg, name, size, &msn);
    char want[64];
    switch (kind) {
    case 0:
        break;
    case 1:
        snprintf(want, sizeof(want), "init-%s.mp4", pkg.run);
        if (!(size == 8 && memcmp(name, "init.mp4", 8) == 0) &&
            !(size == strlen(want) && memcmp(name, want, size) == 0))
            FAIL();
        break;
    case 2: {
        int n = hls_pkg_segment_name(&pkg, msn, want, sizeof(want));
        if (n < 0 || (size_t)n != size || memcmp(name, want, size) != 0) FAIL();
        break;
    }
    default:
        FAIL();
    }
    return 0;
}
