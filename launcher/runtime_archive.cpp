#include "runtime_archive.hpp"

#include <cstdint>
#include <cstring>

#include "inflate.hpp"

#ifdef _WIN32
#include <windows.h>
#else
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace launcher {

namespace {

struct Entry {
    std::string name;  // UTF-8, forward slashes
    std::uint16_t method;
    std::uint32_t crc;
    std::uint32_t compressed_size;
    std::uint32_t size;
    std::uint32_t local_header_offset;
    std::uint32_t unix_mode;  // 0 when the archive was not written on Unix
};

std::uint16_t u16(const unsigned char* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }
std::uint32_t u32(const unsigned char* p) {
    return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
           (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

const std::uint32_t kEndOfDirectory = 0x06054b50;
const std::uint32_t kDirectoryEntry = 0x02014b50;
const std::uint32_t kLocalHeader = 0x04034b50;

std::vector<unsigned char> read_range(std::FILE* file, long offset, std::size_t size) {
    std::vector<unsigned char> bytes(size);
    if (std::fseek(file, offset, SEEK_SET) != 0 ||
        (size && std::fread(bytes.data(), 1, size, file) != size))
        throw LaunchError("runtime archive: cannot read its zip directory");
    return bytes;
}

// Entries of the zip's central directory, and the directory's CRC-32, which
// identifies the archive content (it lists every entry's name, size and CRC).
// Only the end of the file is read, so a launch with the runtime already
// unpacked stays cheap.
std::vector<Entry> read_directory(const fs::path& archive, std::uint32_t& directory_crc) {
    std::FILE* file = open_file(archive, "rb");
    if (!file) throw LaunchError("runtime archive not found or unreadable: " + utf8_from_path(archive));
    struct Closer {
        std::FILE* f;
        ~Closer() { std::fclose(f); }
    } closer{file};
    if (std::fseek(file, 0, SEEK_END) != 0) throw LaunchError("runtime archive: cannot seek");
    long file_size = std::ftell(file);
    if (file_size < 22) throw LaunchError("runtime archive is not a zip file (too short)");
    long tail_start = file_size > 22 + 65535 ? file_size - 22 - 65535 : 0;
    std::vector<unsigned char> tail = read_range(file, tail_start, static_cast<std::size_t>(file_size - tail_start));

    std::size_t eocd = std::string::npos;
    for (std::size_t at = tail.size() - 22 + 1; at-- > 0;)
        if (u32(&tail[at]) == kEndOfDirectory) {
            eocd = at;
            break;
        }
    if (eocd == std::string::npos) throw LaunchError("runtime archive is not a zip file");
    std::uint16_t count = u16(&tail[eocd + 10]);
    std::uint32_t dir_size = u32(&tail[eocd + 12]);
    std::uint32_t dir_offset = u32(&tail[eocd + 16]);
    if (count == 0xffff || dir_offset == 0xffffffffu)
        throw LaunchError("runtime archive uses zip64, which the launcher does not read");
    if (std::uint64_t(dir_offset) + dir_size > std::uint64_t(tail_start) + eocd)
        throw LaunchError("runtime archive: corrupt central directory");
    std::vector<unsigned char> dir = read_range(file, static_cast<long>(dir_offset), dir_size);
    directory_crc = crc32_update(0, dir.data(), dir.size());

    std::vector<Entry> entries;
    std::size_t at = 0;
    for (unsigned i = 0; i < count; ++i) {
        if (at + 46 > dir.size() || u32(&dir[at]) != kDirectoryEntry)
            throw LaunchError("runtime archive: corrupt central directory entry");
        Entry e;
        std::uint16_t made_by = u16(&dir[at + 4]);
        std::uint16_t flags = u16(&dir[at + 8]);
        e.method = u16(&dir[at + 10]);
        e.crc = u32(&dir[at + 16]);
        e.compressed_size = u32(&dir[at + 20]);
        e.size = u32(&dir[at + 24]);
        std::uint16_t name_len = u16(&dir[at + 28]);
        std::uint16_t extra_len = u16(&dir[at + 30]);
        std::uint16_t comment_len = u16(&dir[at + 32]);
        std::uint32_t external = u32(&dir[at + 38]);
        e.local_header_offset = u32(&dir[at + 42]);
        if (flags & 1) throw LaunchError("runtime archive: encrypted entries are not supported");
        if (at + 46 + name_len > dir.size()) throw LaunchError("runtime archive: corrupt entry name");
        e.name.assign(reinterpret_cast<const char*>(&dir[at + 46]), name_len);
        e.unix_mode = (made_by >> 8) == 3 ? (external >> 16) : 0;
        entries.push_back(e);
        at += 46u + name_len + extra_len + comment_len;
    }
    return entries;
}

// Rejects names that could write outside the target directory.
void check_entry_name(const std::string& name) {
    bool bad = name.empty() || name[0] == '/' || name[0] == '\\' ||
               name.find('\\') != std::string::npos || name.find(':') != std::string::npos;
    std::size_t start = 0;
    while (!bad && start <= name.size()) {
        std::size_t slash = name.find('/', start);
        std::string part = name.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
        if (part == "..") bad = true;
        if (slash == std::string::npos) break;
        start = slash + 1;
    }
    if (bad) throw LaunchError("runtime archive: unsafe entry name '" + name + "'");
}

std::vector<std::uint8_t> entry_data(const std::vector<unsigned char>& zip, const Entry& e) {
    std::size_t at = e.local_header_offset;
    if (at + 30 > zip.size() || u32(&zip[at]) != kLocalHeader)
        throw LaunchError("runtime archive: corrupt local header for '" + e.name + "'");
    std::size_t data_at = at + 30 + u16(&zip[at + 26]) + u16(&zip[at + 28]);
    if (data_at + e.compressed_size > zip.size())
        throw LaunchError("runtime archive: data of '" + e.name + "' runs past the end");
    const std::uint8_t* data = &zip[data_at];
    std::vector<std::uint8_t> out;
    if (e.method == 0) {
        out.assign(data, data + e.compressed_size);
    } else if (e.method == 8) {
        out = inflate_raw(data, e.compressed_size, e.size);
    } else {
        throw LaunchError("runtime archive: '" + e.name + "' uses compression method " +
                          std::to_string(e.method) + " (only stored and deflate are read)");
    }
    if (out.size() != e.size || crc32_update(0, out.data(), out.size()) != e.crc)
        throw LaunchError("runtime archive: '" + e.name + "' fails its CRC check");
    return out;
}

void write_file(const fs::path& path, const std::vector<std::uint8_t>& data) {
    std::FILE* file = open_file(path, "wb");
    if (!file) throw LaunchError("cannot create " + utf8_from_path(path));
    bool ok = data.empty() || std::fwrite(data.data(), 1, data.size(), file) == data.size();
    ok = (std::fclose(file) == 0) && ok;
    if (!ok) throw LaunchError("cannot write " + utf8_from_path(path) + " (disk full?)");
}

void extract_all(const std::vector<unsigned char>& zip, const std::vector<Entry>& entries,
                 const fs::path& target) {
    fs::create_directories(target);
    for (const Entry& e : entries) {
        check_entry_name(e.name);
        fs::path out_path = target / fs::path(native_from_utf8(e.name));
        bool is_dir = e.name.back() == '/';
        if (is_dir) {
            fs::create_directories(out_path);
            continue;
        }
        fs::create_directories(out_path.parent_path());
        std::vector<std::uint8_t> data = entry_data(zip, e);
#ifndef _WIN32
        if ((e.unix_mode & 0170000) == 0120000) {  // a symbolic link; data is its target
            std::string link_target(data.begin(), data.end());
            if (link_target.empty() || link_target[0] == '/' || link_target.find("..") != std::string::npos)
                throw LaunchError("runtime archive: unsafe symbolic link '" + e.name + "'");
            if (symlink(link_target.c_str(), out_path.c_str()) != 0)
                throw LaunchError("cannot create symbolic link " + utf8_from_path(out_path));
            continue;
        }
#endif
        write_file(out_path, data);
#ifndef _WIN32
        mode_t mode = (e.unix_mode & 0777) ? (e.unix_mode & 0777) : 0644;
        chmod(out_path.c_str(), mode | 0400);
#endif
    }
}

std::string hex32(std::uint32_t value) {
    char text[9];
    std::snprintf(text, sizeof text, "%08x", value);
    return text;
}

unsigned long process_id() {
#ifdef _WIN32
    return GetCurrentProcessId();
#else
    return static_cast<unsigned long>(getpid());
#endif
}

}  // namespace

std::uint32_t crc32_update(std::uint32_t crc, const unsigned char* data, std::size_t size) {
    static std::uint32_t table[256];
    static bool ready = false;
    if (!ready) {
        for (std::uint32_t n = 0; n < 256; ++n) {
            std::uint32_t c = n;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        ready = true;
    }
    crc = ~crc;
    for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

fs::path ensure_unpacked(const fs::path& archive, bool replace_existing) {
    std::uint32_t directory_crc = 0;
    std::vector<Entry> entries = read_directory(archive, directory_crc);

    fs::path final_dir = archive;
    final_dir += native_from_utf8(".unpacked-" + hex32(directory_crc));
    std::error_code ec;
    if (fs::is_directory(final_dir, ec)) {
        if (!replace_existing) return final_dir;
        // Move the damaged copy aside first, so no other task starts from it.
        fs::path damaged = archive;
        damaged += native_from_utf8(".damaged-" + std::to_string(process_id()));
        fs::rename(final_dir, damaged, ec);
        if (ec && fs::is_directory(final_dir))
            throw LaunchError("the unpacked runtime " + utf8_from_path(final_dir) +
                              " is incomplete and cannot be replaced: " + ec.message());
        fs::remove_all(damaged, ec);
    }

    fs::path temp_dir = archive;
    temp_dir += native_from_utf8(".unpacking-" + std::to_string(process_id()));
    fs::remove_all(temp_dir, ec);
    try {
        std::vector<unsigned char> zip = read_whole_file(archive, "runtime archive");
        extract_all(zip, entries, temp_dir);
    } catch (...) {
        fs::remove_all(temp_dir, ec);
        throw;
    }
    fs::rename(temp_dir, final_dir, ec);
    if (ec) {
        // Another task unpacked the same archive first: use its copy.
        std::error_code ignored;
        fs::remove_all(temp_dir, ignored);
        if (!fs::is_directory(final_dir, ignored))
            throw LaunchError("cannot move unpacked runtime into place at " +
                              utf8_from_path(final_dir) + ": " + ec.message());
    }
    return final_dir;
}

}  // namespace launcher
