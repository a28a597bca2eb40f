/* HTTP Range requests (RFC 9110, section 14): a pure parser of the Range
 * header for `bytes` ranges, for serving recordings (GET .../recording.opus).
 *
 *   "bytes=0-499"        first 500 bytes          "bytes=500-"   from 500 to the end
 *   "bytes=-500"         the last 500 bytes       "bytes=0-0,-1" first and last byte
 *
 * Ranges are resolved against the representation's size: an end past the
 * size is clipped, a start at or past the size makes that range unsatisfiable
 * (it is left out). Allocation-free; the caller gives the output array.
 */
#ifndef TRIBUNE_HTTP_RANGE_H
#define TRIBUNE_HTTP_RANGE_H

#include <stddef.h>
#include <stdint.h>

enum { RANGE_MAX = 8 }; /* more ranges than this in one request: served whole (200) */

struct byte_range {
    uint64_t first, last; /* inclusive, last < size */
};

enum range_verdict {
    RANGE_NONE = 0,           /* no usable Range (absent, malformed, not bytes, too many): 200 */
    RANGE_OK = 1,             /* *n ranges in out[], each satisfiable: 206 */
    RANGE_UNSATISFIABLE = -1, /* well formed, but no range overlaps the size: 416 */
};

/* Parses the value of a Range header (`v`, `len` bytes, not NUL-terminated)
 * against a representation of `size` bytes. On RANGE_OK, out[0..*n) holds the
 * satisfiable ranges in request order (1 <= *n <= cap, cap <= RANGE_MAX);
 * overlapping or adjacent ranges are merged when there are several, so
 * `*n == 1` means one part. */
enum range_verdict range_parse(const char *v, size_t len, uint64_t size, struct byte_range *out,
                               size_t cap, size_t *n);

#endif
