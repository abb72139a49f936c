// Platform glue: the native string type for paths and arguments, UTF-8
// conversion, and error reporting. Windows uses wide strings throughout so
// that paths with non-ASCII characters survive; POSIX uses bytes as they are.
#pragma once

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace launcher {

namespace fs = std::filesystem;

using native_string = fs::path::string_type;  // std::wstring on Windows

// An error that ends the launcher with a message on stderr and a non-zero
// status; thrown wherever a file is missing or malformed.
struct LaunchError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// UTF-8 text (soft-link files, the runtime config) to a native string.
native_string native_from_utf8(const std::string& text);

// A path as UTF-8, for messages.
std::string utf8_from_path(const fs::path& path);

// fopen that takes a native path (wide on Windows).
std::FILE* open_file(const fs::path& path, const char* mode);

// The whole content of a file; throws LaunchError naming `what` if unreadable.
std::vector<unsigned char> read_whole_file(const fs::path& path, const std::string& what);

}  // namespace launcher
