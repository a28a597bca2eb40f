#include "media/speak_msg.h"

#include <opus.h>

#include "http/ws.h"

void speak_rx_init(struct speak_rx *rx)
{
    *rx = (struct speak_rx){0};
}

/* The packet's shape, checked as libopus reads it: its TOC and frame lengths must parse and
 * its duration be 2.5..120 ms. 0 or a close code. */
static int check_opus(const uint8_t *p, size_t len, struct speak_packet *out, const char **why)
{
    if (len > SPEAK_MAX_PACKET) {
        *why = "an Opus packet is at most 1275 bytes";
        return 1009;
    }
    const unsigned char *frames[48];
    opus_int16 sizes[48];
    int nb = opus_packet_parse(p, (opus_int32)len, NULL, frames, sizes, NULL);
    int samples = nb > 0 ? opus_packet_get_nb_samples(p, (opus_int32)len, 48000) : -1;
    if (nb <= 0 || samples < 120 || samples > 5760) {
        *why = "not an Opus packet (48 kHz, 2.5 to 120 ms)";
        return 1003;
    }
    out->data = p;
    out->len = len;
    out->samples = samples;
    out->channels = opus_packet_get_nb_channels(p);
    return 0;
}

int speak_rx_check(struct speak_rx *rx, bool is_text, const uint8_t *msg, size_t len,
                   struct speak_packet *out, const char **why)
{
    uint32_t seq;
    uint64_t ts;
    if (is_text) {
        *why = "text messages are not accepted: send binary audio messages";
        return 1003;
    }
    if (len >= 1 && msg[0] != WS_MSG_AUDIO) {
        *why = "unknown message type (1 is audio)";
        return 1003;
    }
    if (len <= WS_AUDIO_HDR || ws_audio_parse(msg, len, &seq, &ts) < 0) {
        *why = "an audio message is a 13-byte header and one Opus packet";
        return 1002;
    }
    int err = check_opus(msg + WS_AUDIO_HDR, len - WS_AUDIO_HDR, out, why);
    if (err) return err;
    int32_t ahead = rx->has_seq ? (int32_t)(seq - rx->next_seq) : 0;
    if (ahead < 0) {
        rx->dropped++;
        return SPEAK_DROP;
    }
    rx->lost += (uint64_t)ahead;
    out->lost = ahead > SPEAK_MAX_CONCEAL ? SPEAK_MAX_CONCEAL : (unsigned)ahead;
    rx->has_seq = true;
    rx->next_seq = seq + 1;
    rx->accepted++;
    return SPEAK_ACCEPT;
}
