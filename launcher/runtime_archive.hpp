// The runtime archive: a zip (stored or deflated entries) holding the
// interpreter, its libraries and boinc_pymw_runtime.cfg. BOINC app versions
// are flat lists of files, so a whole runtime travels as one file and is
// unpacked once, next to the archive, into a directory named after the
// archive and a checksum of its zip directory; a new archive gets a new
// directory. Unpacking goes to a temporary directory that is renamed into
// place, so concurrent tasks of the same app never see a half-written runtime.
#pragma once

#include "platform.hpp"

namespace launcher {

// The directory holding the unpacked runtime, unpacking it first if needed.
// With `replace_existing`, an existing copy (found incomplete: files deleted
// by a virus scanner or a user) is discarded and unpacked again.
fs::path ensure_unpacked(const fs::path& archive, bool replace_existing = false);

// CRC-32 (the zip/gzip polynomial) of a byte range, continuing from `crc`.
std::uint32_t crc32_update(std::uint32_t crc, const unsigned char* data, std::size_t size);

}  // namespace launcher
