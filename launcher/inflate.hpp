// A small raw-DEFLATE decoder (RFC 1951) so the launcher can unpack the
// runtime archive without linking zlib: mingw-w64 on Debian ships no zlib,
// and the launcher must stay a single dependency-free executable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace launcher {

// Decompress `size` bytes of raw DEFLATE data; `expected_size` is the size
// the zip directory promises. Throws LaunchError on corrupt input.
std::vector<std::uint8_t> inflate_raw(const std::uint8_t* data, std::size_t size,
                                      std::size_t expected_size);

}  // namespace launcher
