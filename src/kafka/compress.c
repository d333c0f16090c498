/* Kafka batch decompression (compress.h). Every codec writes into @out in
 * steps, so the output never exceeds @max whatever the input claims. */
#include "kafka/compress.h"

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "kafka/errors.h"
#include "lib/err.h"

#define COMPRESS__STEP (64u << 10)

static int compress__gzip(const uint8_t *p, size_t n, size_t max, struct buf *out, char *errmsg)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        err_printf(errmsg, "gzip: cannot start zlib");
        return KAFKA_UNKNOWN_SERVER_ERROR;
    }
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    size_t start = out->len;
    int zr = Z_OK;
    while (zr != Z_STREAM_END) {
        uint8_t *dst = buf_reserve(out, COMPRESS__STEP);
        if (dst == NULL || out->len - start > max) {
            break;
        }
        z.next_out = dst;
        z.avail_out = COMPRESS__STEP;
        zr = inflate(&z, Z_NO_FLUSH);
        buf_commit(out, COMPRESS__STEP - z.avail_out);
        if (zr != Z_OK && zr != Z_STREAM_END) {
            break;
        }
        if (zr == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
            zr = Z_DATA_ERROR; /* input ended inside the stream */
            break;
        }
    }
    inflateEnd(&z);
    if (zr != Z_STREAM_END || out->len - start > max) {
        err_printf(errmsg, "gzip: damaged, or more than %zu bytes", max);
        return KAFKA_CORRUPT_MESSAGE;
    }
    return 0;
}

static int compress__snappy_raw(const uint8_t *p, size_t n, size_t max, struct buf *out,
                                char *errmsg)
{
    size_t len;
    if (snappy_uncompressed_length((const char *)p, n, &len) != SNAPPY_OK || len > max) {
        err_printf(errmsg, "snappy: damaged, or more than %zu bytes", max);
        return KAFKA_CORRUPT_MESSAGE;
    }
    uint8_t *dst = buf_reserve(out, len + 1);
    if (dst == NULL) {
        err_printf(errmsg, "out of memory");
        return KAFKA_UNKNOWN_SERVER_ERROR;
    }
    if (snappy_uncompress((const char *)p, n, (char *)dst, &len) != SNAPPY_OK) {
        err_printf(errmsg, "snappy: damaged block");
        return KAFKA_CORRUPT_MESSAGE;
    }
    buf_commit(out, len);
    return 0;
}

/* The xerial framing of the Java client: an 8-byte magic "\x82SNAPPY\0",
 * two int32 versions, then blocks of int32 (big-endian) length + raw
 * snappy. Anything else is raw snappy. */
static int compress__snappy(const uint8_t *p, size_t n, size_t max, struct buf *out,
                            char *errmsg)
{
    static const uint8_t magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
    if (n < 16 || memcmp(p, magic, 8) != 0) {
        return compress__snappy_raw(p, n, max, out, errmsg);
    }
    size_t start = out->len, pos = 16;
    while (pos < n) {
        if (n - pos < 4) {
            err_printf(errmsg, "snappy: truncated xerial block length");
            return KAFKA_CORRUPT_MESSAGE;
        }
        uint32_t len = (uint32_t)p[pos] << 24 | (uint32_t)p[pos + 1] << 16 |
                       (uint32_t)p[pos + 2] << 8 | p[pos + 3];
        pos += 4;
        if (len > n - pos) {
            err_printf(errmsg, "snappy: xerial block of %u bytes past the end", len);
            return KAFKA_CORRUPT_MESSAGE;
        }
        size_t used = out->len - start;
        int rv = compress__snappy_raw(p + pos, len, max - used, out, errmsg);
        if (rv != 0) {
            return rv;
        }
        pos += len;
    }
    return 0;
}

static int compress__lz4(const uint8_t *p, size_t n, size_t max, struct buf *out, char *errmsg)
{
    LZ4F_dctx *d;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION))) {
        err_printf(errmsg, "lz4: cannot start liblz4");
        return KAFKA_UNKNOWN_SERVER_ERROR;
    }
    size_t start = out->len, pos = 0, hint = 1;
    int rv = 0;
    while (hint != 0) {
        uint8_t *dst = buf_reserve(out, COMPRESS__STEP);
        if (dst == NULL || out->len - start > max) {
            rv = KAFKA_CORRUPT_MESSAGE;
            break;
        }
        size_t dst_len = COMPRESS__STEP, src_len = n - pos;
        hint = LZ4F_decompress(d, dst, &dst_len, p + pos, &src_len, NULL);
        if (LZ4F_isError(hint)) {
            rv = KAFKA_CORRUPT_MESSAGE;
            break;
        }
        buf_commit(out, dst_len);
        pos += src_len;
        if (hint != 0 && src_len == 0 && dst_len == 0) {
            rv = KAFKA_CORRUPT_MESSAGE; /* no progress: input ended inside the frame */
            break;
        }
    }
    LZ4F_freeDecompressionContext(d);
    if (rv == 0 && out->len - start > max) {
        rv = KAFKA_CORRUPT_MESSAGE;
    }
    if (rv != 0) {
        err_printf(errmsg, "lz4: damaged frame, or more than %zu bytes", max);
    }
    return rv;
}

static int compress__zstd(const uint8_t *p, size_t n, size_t max, struct buf *out, char *errmsg)
{
    ZSTD_DStream *z = ZSTD_createDStream();
    if (z == NULL) {
        err_printf(errmsg, "zstd: cannot start libzstd");
        return KAFKA_UNKNOWN_SERVER_ERROR;
    }
    ZSTD_initDStream(z);
    ZSTD_inBuffer in = {p, n, 0};
    size_t start = out->len, hint = 1;
    int rv = 0;
    while (hint != 0) {
        uint8_t *dst = buf_reserve(out, COMPRESS__STEP);
        if (dst == NULL || out->len - start > max) {
            rv = KAFKA_CORRUPT_MESSAGE;
            break;
        }
        ZSTD_outBuffer o = {dst, COMPRESS__STEP, 0};
        size_t in_before = in.pos;
        hint = ZSTD_decompressStream(z, &o, &in);
        if (ZSTD_isError(hint)) {
            rv = KAFKA_CORRUPT_MESSAGE;
            break;
        }
        buf_commit(out, o.pos);
        if (hint != 0 && in.pos == in_before && o.pos == 0) {
            rv = KAFKA_CORRUPT_MESSAGE; /* input ended inside the frame */
            break;
        }
    }
    ZSTD_freeDStream(z);
    if (rv == 0 && out->len - start > max) {
        rv = KAFKA_CORRUPT_MESSAGE;
    }
    if (rv != 0) {
        err_printf(errmsg, "zstd: damaged frame, or more than %zu bytes", max);
    }
    return rv;
}

int kafka_decompress(int codec, const uint8_t *p, size_t n, size_t max, struct buf *out,
                     char *errmsg)
{
    switch (codec) {
    case KAFKA_CODEC_GZIP:
        return compress__gzip(p, n, max, out, errmsg);
    case KAFKA_CODEC_SNAPPY:
        return compress__snappy(p, n, max, out, errmsg);
    case KAFKA_CODEC_LZ4:
        return compress__lz4(p, n, max, out, errmsg);
    case KAFKA_CODEC_ZSTD:
        return compress__zstd(p, n, max, out, errmsg);
    }
    err_printf(errmsg, "compression type %d does not exist", codec);
    return KAFKA_UNSUPPORTED_COMPRESSION_TYPE;
}
