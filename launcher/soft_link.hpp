// BOINC's soft-link files. In a slot directory the client does not create OS
// links: it writes, under each logical name, a small text file
//   <soft_link>../../projects/<project dir>/<physical name></soft_link>
// whose path is relative to the slot. A file without that tag is the real
// file (copy_file inputs, standalone runs, tests).
#pragma once

#include "platform.hpp"

namespace launcher {

// The path a logical name stands for, relative to `slot_dir` unless the link
// holds an absolute path. Throws LaunchError if the name is not in the slot
// or the link points at a file that does not exist.
fs::path resolve_logical_name(const fs::path& slot_dir, const std::string& logical_name);

}  // namespace launcher
