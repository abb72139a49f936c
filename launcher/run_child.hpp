// Starting the interpreter. POSIX: execv, so the interpreter takes over the
// launcher's process (same pid, standard streams, exit status, signals).
// Windows: CreateProcessW with a command line quoted by the MSVCRT rules,
// the standard handles inherited, the child placed in a job object that
// kills it if the launcher is killed (as BOINC does on abort), then wait and
// return the child's exit code. No shell and no batch file on either side.
#pragma once

#include "platform.hpp"

namespace launcher {

// Runs `program` with `args` (not including argv[0]); returns its exit
// status (Windows) or does not return (POSIX). Throws LaunchError if the
// program cannot be started. Windows only: a non-empty `stderr_log` gets the
// child's stderr appended (relayed through a pipe, so each write lands at the
// end of the file even where append-only handles are not honoured).
int run_child(const fs::path& program, const std::vector<native_string>& args,
              const fs::path& stderr_log = fs::path());

// One argument quoted so that CommandLineToArgvW and the MSVC runtime give
// it back unchanged: backslashes are literal except before a double quote,
// where they are doubled, and the quote is escaped.
std::wstring quote_windows_argument(const std::wstring& arg);

}  // namespace launcher
