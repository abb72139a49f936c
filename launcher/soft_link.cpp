#include "soft_link.hpp"

#include <cstring>

namespace launcher {

namespace {

const char kOpenTag[] = "<soft_link>";
const char kCloseTag[] = "</soft_link>";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string trim(const std::string& text) {
    size_t begin = 0, end = text.size();
    while (begin < end && is_space(text[begin])) ++begin;
    while (end > begin && is_space(text[end - 1])) --end;
    return text.substr(begin, end - begin);
}

}  // namespace

fs::path resolve_logical_name(const fs::path& slot_dir, const std::string& logical_name) {
    fs::path slot_file = slot_dir / fs::path(native_from_utf8(logical_name));
    std::error_code ec;
    if (!fs::is_regular_file(slot_file, ec))
        throw LaunchError("required file '" + logical_name + "' is missing from the slot directory " +
                          utf8_from_path(fs::absolute(slot_dir, ec)));
    // A soft-link file is tiny; read at most a few KB to decide.
    std::FILE* file = open_file(slot_file, "rb");
    if (!file) throw LaunchError("cannot read '" + logical_name + "' in the slot directory");
    char head[4096];
    size_t got = std::fread(head, 1, sizeof head, file);
    std::fclose(file);
    std::string text = trim(std::string(head, got));
    if (text.compare(0, std::strlen(kOpenTag), kOpenTag) != 0) return slot_file;

    size_t close = text.find(kCloseTag);
    if (close == std::string::npos)
        throw LaunchError("soft-link file '" + logical_name + "' has no closing </soft_link> tag");
    std::string target = trim(text.substr(std::strlen(kOpenTag), close - std::strlen(kOpenTag)));
    if (target.empty()) throw LaunchError("soft-link file '" + logical_name + "' is empty");
    fs::path target_path(native_from_utf8(target));
    fs::path resolved = target_path.is_absolute() ? target_path : slot_dir / target_path;
    if (!fs::is_regular_file(resolved, ec))
        throw LaunchError("'" + logical_name + "' links to " + target + ", which does not exist");
    return resolved;
}

}  // namespace launcher
