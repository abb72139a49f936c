#include "runtime_config.hpp"

namespace launcher {

namespace {

std::string strip(const std::string& text) {
    size_t begin = text.find_first_not_of(" \t\r");
    if (begin == std::string::npos) return std::string();
    size_t end = text.find_last_not_of(" \t\r");
    return text.substr(begin, end - begin + 1);
}

}  // namespace

RuntimeConfig read_runtime_config(const fs::path& path) {
    std::vector<unsigned char> bytes = read_whole_file(path, "runtime config");
    std::string text(bytes.begin(), bytes.end());
    if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);  // tolerate a BOM
    RuntimeConfig config;
    size_t line_start = 0;
    int line_number = 0;
    while (line_start <= text.size()) {
        size_t line_end = text.find('\n', line_start);
        if (line_end == std::string::npos) line_end = text.size();
        std::string line = strip(text.substr(line_start, line_end - line_start));
        ++line_number;
        line_start = line_end + 1;
        if (line.empty() || line[0] == '#') continue;
        size_t equals = line.find('=');
        if (equals == std::string::npos)
            throw LaunchError(std::string(kRuntimeConfigName) + " line " + std::to_string(line_number) +
                              ": expected 'key = value'");
        std::string key = strip(line.substr(0, equals));
        std::string value = strip(line.substr(equals + 1));
        if (key == "interpreter") {
            config.interpreter = value;
        } else if (key == "arg") {
            config.args.push_back(value);
        } else {
            throw LaunchError(std::string(kRuntimeConfigName) + " line " + std::to_string(line_number) +
                              ": unknown key '" + key + "'");
        }
    }
    if (config.interpreter.empty())
        throw LaunchError(std::string(kRuntimeConfigName) + " names no interpreter");
    if (config.interpreter[0] == '/' || config.interpreter.find("..") != std::string::npos)
        throw LaunchError(std::string(kRuntimeConfigName) +
                          ": interpreter must be a path inside the runtime");
    return config;
}

}  // namespace launcher
