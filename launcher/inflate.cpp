// Decoding follows RFC 1951 directly: canonical Huffman codes are decoded
// one bit at a time by walking the per-length code counts, which is slower
// than table lookup but short and easy to check; the runtime is unpacked
// once per app version, so simplicity wins.
#include "inflate.hpp"

#include "platform.hpp"

namespace launcher {

namespace {

constexpr int kMaxBits = 15;

struct BitReader {
    const std::uint8_t* data;
    std::size_t size;
    std::size_t pos = 0;
    std::uint32_t buffer = 0;
    int count = 0;

    int bits(int need) {
        while (count < need) {
            if (pos >= size) throw LaunchError("runtime archive: deflate data ends early");
            buffer |= static_cast<std::uint32_t>(data[pos++]) << count;
            count += 8;
        }
        int value = static_cast<int>(buffer & ((1u << need) - 1));
        buffer >>= need;
        count -= need;
        return value;
    }

    void align_to_byte() {
        buffer = 0;
        count = 0;
    }
};

// A canonical Huffman code: how many codes have each length, and the symbols
// ordered by (length, symbol value).
struct Huffman {
    int count[kMaxBits + 1] = {};
    std::vector<int> symbols;

    Huffman(const int* lengths, int n) : symbols(static_cast<std::size_t>(n)) {
        for (int s = 0; s < n; ++s) count[lengths[s]]++;
        count[0] = 0;
        int left = 1;  // codes still available at the current length
        for (int len = 1; len <= kMaxBits; ++len) {
            left = left * 2 - count[len];
            if (left < 0) throw LaunchError("runtime archive: over-subscribed Huffman code");
        }
        int offsets[kMaxBits + 2] = {};
        for (int len = 1; len <= kMaxBits; ++len) offsets[len + 1] = offsets[len] + count[len];
        for (int s = 0; s < n; ++s)
            if (lengths[s]) symbols[static_cast<std::size_t>(offsets[lengths[s]]++)] = s;
    }

    int decode(BitReader& in) const {
        int code = 0, first = 0, index = 0;
        for (int len = 1; len <= kMaxBits; ++len) {
            code |= in.bits(1);
            int n = count[len];
            if (code - first < n) return symbols[static_cast<std::size_t>(index + code - first)];
            index += n;
            first = (first + n) << 1;
            code <<= 1;
        }
        throw LaunchError("runtime archive: invalid Huffman code");
    }
};

const int kLengthBase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                             31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
const int kLengthExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                              2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
const int kDistBase[30] = {1,    2,    3,    4,    5,    7,     9,     13,    17,  25,
                           33,   49,   65,   97,   129,  193,   257,   385,   513, 769,
                           1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
const int kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                            6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

void inflate_block(BitReader& in, std::vector<std::uint8_t>& out, const Huffman& lit,
                   const Huffman& dist) {
    for (;;) {
        int symbol = lit.decode(in);
        if (symbol < 256) {
            out.push_back(static_cast<std::uint8_t>(symbol));
        } else if (symbol == 256) {
            return;
        } else {
            symbol -= 257;
            if (symbol >= 29) throw LaunchError("runtime archive: bad length symbol");
            int length = kLengthBase[symbol] + in.bits(kLengthExtra[symbol]);
            int dsym = dist.decode(in);
            if (dsym >= 30) throw LaunchError("runtime archive: bad distance symbol");
            std::size_t distance =
                static_cast<std::size_t>(kDistBase[dsym] + in.bits(kDistExtra[dsym]));
            if (distance > out.size()) throw LaunchError("runtime archive: distance too far back");
            std::size_t from = out.size() - distance;
            for (int i = 0; i < length; ++i) out.push_back(out[from + static_cast<std::size_t>(i)]);
        }
    }
}

void inflate_stored(BitReader& in, std::vector<std::uint8_t>& out) {
    in.align_to_byte();
    if (in.pos + 4 > in.size) throw LaunchError("runtime archive: stored block ends early");
    unsigned len = in.data[in.pos] | (in.data[in.pos + 1] << 8);
    unsigned nlen = in.data[in.pos + 2] | (in.data[in.pos + 3] << 8);
    in.pos += 4;
    if (len != (~nlen & 0xffffu)) throw LaunchError("runtime archive: corrupt stored block");
    if (in.pos + len > in.size) throw LaunchError("runtime archive: stored block ends early");
    out.insert(out.end(), in.data + in.pos, in.data + in.pos + len);
    in.pos += len;
}

void inflate_fixed(BitReader& in, std::vector<std::uint8_t>& out) {
    static const Huffman* lit = nullptr;
    static const Huffman* dist = nullptr;
    if (!lit) {
        int lengths[288];
        for (int s = 0; s < 144; ++s) lengths[s] = 8;
        for (int s = 144; s < 256; ++s) lengths[s] = 9;
        for (int s = 256; s < 280; ++s) lengths[s] = 7;
        for (int s = 280; s < 288; ++s) lengths[s] = 8;
        lit = new Huffman(lengths, 288);
        int dlengths[30];
        for (int& l : dlengths) l = 5;
        dist = new Huffman(dlengths, 30);
    }
    inflate_block(in, out, *lit, *dist);
}

void inflate_dynamic(BitReader& in, std::vector<std::uint8_t>& out) {
    static const int kOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    int nlen = in.bits(5) + 257;
    int ndist = in.bits(5) + 1;
    int ncode = in.bits(4) + 4;
    if (nlen > 286 || ndist > 30) throw LaunchError("runtime archive: bad dynamic block header");
    int code_lengths[19] = {};
    for (int i = 0; i < ncode; ++i) code_lengths[kOrder[i]] = in.bits(3);
    Huffman code_code(code_lengths, 19);

    int lengths[286 + 30] = {};
    int filled = 0;
    while (filled < nlen + ndist) {
        int symbol = code_code.decode(in);
        if (symbol < 16) {
            lengths[filled++] = symbol;
            continue;
        }
        int repeat_value = 0, repeat;
        if (symbol == 16) {
            if (filled == 0) throw LaunchError("runtime archive: repeat with no previous length");
            repeat_value = lengths[filled - 1];
            repeat = 3 + in.bits(2);
        } else if (symbol == 17) {
            repeat = 3 + in.bits(3);
        } else {
            repeat = 11 + in.bits(7);
        }
        if (filled + repeat > nlen + ndist) throw LaunchError("runtime archive: too many lengths");
        while (repeat--) lengths[filled++] = repeat_value;
    }
    if (lengths[256] == 0) throw LaunchError("runtime archive: block has no end code");
    Huffman lit(lengths, nlen);
    Huffman dist(lengths + nlen, ndist);
    inflate_block(in, out, lit, dist);
}

}  // namespace

std::vector<std::uint8_t> inflate_raw(const std::uint8_t* data, std::size_t size,
                                      std::size_t expected_size) {
    std::vector<std::uint8_t> out;
    out.reserve(expected_size);
    BitReader in{data, size};
    int last;
    do {
        last = in.bits(1);
        int type = in.bits(2);
        if (type == 0)
            inflate_stored(in, out);
        else if (type == 1)
            inflate_fixed(in, out);
        else if (type == 2)
            inflate_dynamic(in, out);
        else
            throw LaunchError("runtime archive: invalid deflate block type");
        if (out.size() > expected_size)
            throw LaunchError("runtime archive: entry is larger than its directory says");
    } while (!last);
    return out;
}

}  // namespace launcher
