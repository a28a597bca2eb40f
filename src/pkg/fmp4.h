/* fMP4 (CMAF) boxes for Opus: the init segment and media fragments that HLS
 * (issue 9) serves, built by hand because no Debian library writes ISO BMFF
 * fragments for Opus without pulling in libavformat.
 *
 * Layout (ISO/IEC 14496-12; "Encapsulation of Opus in ISO Base Media File
 * Format", the Opus sample entry and its dOps box):
 *
 *   init.mp4:  ftyp  moov( mvhd  trak( tkhd  mdia( mdhd  hdlr(soun)
 *                          minf( smhd dinf(dref(url)) stbl( stsd(Opus(dOps))
 *                          stts stsc stsz stco ))))  mvex(trex) )
 *   fragment:  moof( mfhd(sequence)  traf( tfhd  tfdt(base decode time)
 *                    trun(sample sizes, data offset) ) )  mdat(packets)
 *
 * One sample is one Opus packet; the timescale is 48,000 (Opus always runs
 * at 48 kHz), so a sample's duration is its packet's sample count (960 for
 * 20 ms). dOps carries the stream's pre-skip; every sample is a sync sample.
 * Pure functions writing into caller buffers, no allocation; any thread.
 * Each returns the bytes written, or 0 if `cap` is too small.
 */
#ifndef TRIBUNE_PKG_FMP4_H
#define TRIBUNE_PKG_FMP4_H

#include <stddef.h>
#include <stdint.h>

enum { FMP4_TIMESCALE = 48000, FMP4_TRACK_ID = 1 };

/* One Opus packet of a fragment. */
struct fmp4_sample {
    const uint8_t *data;
    uint32_t len;
    uint32_t duration; /* 48 kHz samples (960 for 20 ms) */
};

/* The init segment for an Opus track of `channels` (1 or 2) and `pre_skip`
 * samples. */
size_t fmp4_init_emit(uint8_t *out, size_t cap, int channels, uint16_t pre_skip);

/* One fragment (moof + mdat) numbered `sequence` (1, 2, ...) whose first
 * sample decodes at `base_time` (48 kHz samples since the stream's start). */
size_t fmp4_fragment_emit(uint8_t *out, size_t cap, uint32_t sequence, uint64_t base_time,
                          const struct fmp4_sample *samples, size_t n);

/* The bytes fmp4_fragment_emit needs for `n` samples holding `payload`
 * bytes in all. */
size_t fmp4_fragment_size(size_t n, size_t payload);

#endif
