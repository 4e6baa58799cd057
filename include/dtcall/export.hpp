// Which symbols libdtcall.so exports. The library is built with hidden
// visibility: only what is marked DTCALL_API is part of the ABI, so internal
// classes can change without breaking embedders.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define DTCALL_API __attribute__((visibility("default")))
#else
#define DTCALL_API
#endif

// For the private parts of exported classes (their pimpl), which would
// otherwise inherit the class's default visibility.
#if defined(__GNUC__) || defined(__clang__)
#define DTCALL_HIDDEN __attribute__((visibility("hidden")))
#else
#define DTCALL_HIDDEN
#endif
