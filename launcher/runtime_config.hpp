// boinc_pymw_runtime.cfg, at the top of the runtime archive: which program
// in the unpacked runtime to start and the arguments that come before the
// ones BOINC passed. UTF-8 text, one "key = value" per line, '#' comments:
//   interpreter = bin/python3        (relative to the runtime directory, '/')
//   arg = -m                         (one argument per line, taken verbatim)
//   arg = boinc_pymw.worker
#pragma once

#include "platform.hpp"

namespace launcher {

constexpr const char* kRuntimeConfigName = "boinc_pymw_runtime.cfg";

struct RuntimeConfig {
    std::string interpreter;        // UTF-8, relative to the runtime directory
    std::vector<std::string> args;  // UTF-8, in order
};

// Reads and checks the config; throws LaunchError naming the bad line.
RuntimeConfig read_runtime_config(const fs::path& path);

}  // namespace launcher
