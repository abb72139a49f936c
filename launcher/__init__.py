"""Sources of the small C++ launcher BOINC starts as the app's main program."""
