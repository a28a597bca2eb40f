/* Fuzz driver for http/range.c: the Range header of replay requests.
 *
 * Input: 8 bytes of representation size (little endian, reduced modulo 2^40), then the header
 * value. Invariants (abort on violation):
 * - RANGE_OK: 1 <= n <= RANGE_MAX, each range first <= last < size; with several ranges they are
 *   sorted, disjoint and not adjacent (merged);
 * - RANGE_NONE and RANGE_UNSATISFIABLE: n == 0;
 * - the value with "bytes=" removed is never RANGE_OK (the unit is required). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL() fail_at(__LINE__)
__attribute__((noreturn)) static void fail_at(int line)
{
    fprintf(stderr, "%s:%d: invariant broken\n", __FILE__, line);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8) return 0;
    uint64_t rep = 0;
    for (int i = 7; i >= 0; i--)
        rep = rep << 8 | data[i];
    rep &= ((uint64_t)1 << 40) - 1;
    const char *v = (const char *)data + 8;
    size_t len = size - 8;
    struct byte_range out[RANGE_MAX];
    size_t n = 12345;
    enum range_verdict verdict = range_parse(v, len, rep, out, RANGE_MAX, &n);
    if (verdict != RANGE_OK) {
        if (n != 0) FAIL();
        if (verdict != RANGE_NONE && verdict != RANGE_UNSATISFIABLE) FAIL();
    } else {
        if (n < 1 || n > RANGE_MAX) FAIL();
        for (size_t i = 0; i < n; i++) {
            if (out[i].first > out[i].last || out[i].last >= rep) FAIL();
            if (i > 0 && out[i].first <= out[i - 1].last + 1) FAIL();
        }
        if (len >= 6 && memcmp(v, "bytes=", 6) == 0 &&
            range_parse(v + 6, len - 6, rep, out, RANGE_MAX, &n) == RANGE_OK)
            FAIL();
    }
    return 0;
}
