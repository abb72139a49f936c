#include "platform.hpp"

#ifdef _WIN32
#include <windows.h>
#endif

namespace launcher {

native_string native_from_utf8(const std::string& text) {
#ifdef _WIN32
    if (text.empty()) return native_string();
    int size = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, text.data(),
                                   static_cast<int>(text.size()), nullptr, 0);
    if (size <= 0) throw LaunchError("text is not valid UTF-8: " + text);
    std::wstring wide(static_cast<size_t>(size), L'\0');
    MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, text.data(),
                        static_cast<int>(text.size()), wide.data(), size);
    return wide;
#else
    return text;
#endif
}

std::string utf8_from_path(const fs::path& path) {
#ifdef _WIN32
    const std::wstring& wide = path.native();
    if (wide.empty()) return std::string();
    int size = WideCharToMultiByte(CP_UTF8, 0, wide.data(), static_cast<int>(wide.size()),
                                   nullptr, 0, nullptr, nullptr);
    std::string text(static_cast<size_t>(size > 0 ? size : 0), '\0');
    if (size > 0)
        WideCharToMultiByte(CP_UTF8, 0, wide.data(), static_cast<int>(wide.size()),
                            text.data(), size, nullptr, nullptr);
    return text;
#else
    return path.native();
#endif
}

std::FILE* open_file(const fs::path& path, const char* mode) {
#ifdef _WIN32
    std::wstring wide_mode(mode, mode + std::char_traits<char>::length(mode));
    return _wfopen(path.c_str(), wide_mode.c_str());
#else
    return std::fopen(path.c_str(), mode);
#endif
}

std::vector<unsigned char> read_whole_file(const fs::path& path, const std::string& what) {
    std::FILE* file = open_file(path, "rb");
    if (!file) throw LaunchError(what + " not found or unreadable: " + utf8_from_path(path));
    std::vector<unsigned char> content;
    unsigned char buffer[65536];
    size_t got;
    while ((got = std::fread(buffer, 1, sizeof buffer, file)) > 0)
        content.insert(content.end(), buffer, buffer + got);
    bool failed = std::ferror(file) != 0;
    std::fclose(file);
    if (failed) throw LaunchError("error reading " + what + ": " + utf8_from_path(path));
    return content;
}

}  // namespace launcher
